"""A report whose worker dies with the SubmitReport call in flight is submitted once.

The worst moment for a crash: the regulator has received the document and answered, and the
worker that asked never hears it. The regulator is slowed down (its latency), the worker is
frozen (SIGSTOP) once its SubmitReport request is on the wire, so the portal records the
submission and answers into a socket nobody reads; then the worker is SIGKILLed and a new one
started. The new worker retries the step once its attempt timeout has passed, with the same
idempotency key: the regulator answers the receipt it gave the first time, the report ends
``accepted`` with that receipt, and the regulator holds exactly one submission of the version.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState

from activities.definitions import name_of
from activities.reporting import RegulatorActivities
from bench import chaos
from bench.stack import BenchStack
from simulators.usage import UsageSpec, generate
from tests.chaos.conftest import Chaos, chaos_handle
from tests.conftest import eventually
from tests.processes.reporting.conftest import PEOPLE, SCOPES, as_, key_of
from tests.processes.reporting.reports import END, PERIOD, REPORTS, START

#: The regulator's latency while the first SubmitReport is in flight: long enough to freeze
#: the worker before the portal answers, shorter than the worker's HTTP timeout (3 s).
LATENCY_MS = 2_000
SUBMIT = name_of(RegulatorActivities.submit_report)
STARTED = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED


@pytest.fixture
async def reporting_hub(tmp_path: Path) -> AsyncIterator[Chaos]:
    """A stack of its own, with the reporting people's keys and a regulator that answers fast."""
    stack = BenchStack(tmp_path, latency_ms=0, extra_env=chaos.retry_env(5))
    clients = [
        {"name": name, "key": key_of(name), "scopes": SCOPES, "groups": groups}
        for name, groups in PEOPLE.items()
    ]
    stack.extra_env |= {
        "HUB_API_CLIENTS": json.dumps(clients),
        "HUB_REGULATOR_URL": stack.simulator_url("regulator") + "/regulator",
        "HUB_REPORTING_VERDICT_POLL": "0.2",
        "HUB_REPORTING_VERDICT_TIMEOUT": "60",
    }
    try:
        await stack.start()
        async with chaos_handle(stack) as handle:
            yield handle
    finally:
        stack.stop()


def sockets_of_group(group: int) -> set[str]:
    """The socket inodes the processes of one process group hold open."""
    inodes: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            # The field after the parenthesised name: state, ppid, pgrp.
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2]) != group:
                continue
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return inodes


def connections_to(port: int, group: int) -> int:
    """The process group's open TCP connections to a loopback port (a request on the wire)."""
    mine = sockets_of_group(group)
    established = 0
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            remote, state, inode = fields[2], fields[3], fields[9]
            if int(remote.rsplit(":", 1)[1], 16) == port and state == "01" and inode in mine:
                established += 1
    return established


async def submissions(hub: Chaos, report: dict[str, Any]) -> list[dict[str, Any]]:
    url = f"{hub.stack.simulator_url('regulator')}/_sim/state"
    state = (await hub.http.get(url)).json()
    return [
        s
        for s in state["submissions"]
        if (s["operatorId"], s["period"], s["version"])
        == (report["operatorId"], report["period"], report["version"])
    ]


async def report_in(hub: Chaos, report_id: str, *statuses: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body = (await hub.api.get(f"{REPORTS}/{report_id}", headers=as_("preparer"))).json()
        assert body["status"] not in ("rejected", "failed"), body
        return body if body["status"] in statuses else None

    return await eventually(check, timeout=90, interval=0.1)


async def test_a_worker_killed_mid_submission_submits_the_version_once(
    reporting_hub: Chaos,
) -> None:
    hub = reporting_hub
    usage = hub.stack.workdir / "usage"
    generate(UsageSpec(START, END, records=1_000, records_per_file=1_000, rates={}), usage)
    started = await hub.api.post(
        REPORTS,
        json={
            "reportType": "kev-mobile-quarterly",
            "period": PERIOD,
            "networkSource": str(usage / "network"),
            "billingSource": str(usage / "billing"),
            "manualFigures": {"employees": 412, "investments": "1250000.00"},
        },
        headers=as_("preparer"),
    )
    assert started.status_code == 201, started.text
    report = started.json()
    task_id = (await report_in(hub, report["id"], "awaitingApproval"))["taskId"]

    regulator_port = hub.stack.ports.simulators["regulator"]
    worker = hub.stack.children["worker"]
    assert worker.pid is not None  # its process group: the worker runs in a session of its own
    group = worker.pid
    # Nothing has talked to the regulator yet: a connection will be the SubmitReport request.
    assert connections_to(regulator_port, group) == 0
    await hub.stack.configure_simulators(latency_ms=LATENCY_MS)
    approved = await hub.api.post(
        f"/tasks/{task_id}/complete",
        json={"decision": "approve", "fields": {"findingsAcknowledged": True}, "comment": "ok"},
        headers=as_("approver"),
    )
    assert approved.status_code == 200, approved.text

    # The SubmitReport request is on the wire: freeze the worker before the portal answers.
    handle = hub.client.get_workflow_handle(report["workflowId"])

    async def submit_in_flight() -> bool:
        pending = (await handle.describe()).raw_description.pending_activities
        started_submit = any(a.activity_type.name == SUBMIT and a.state == STARTED for a in pending)
        return started_submit and connections_to(regulator_port, group) > 0

    await eventually(submit_in_flight, timeout=30, interval=0.02)
    os.killpg(group, signal.SIGSTOP)
    frozen_at = datetime.now(UTC)

    # The portal records the submission and answers; the frozen worker never reads it.
    async def received() -> list[dict[str, Any]]:
        return await submissions(hub, report)

    [first] = await eventually(received, timeout=10, interval=0.1)
    await hub.stack.configure_simulators(latency_ms=0)
    killed = worker.pid
    hub.stack.kill("worker")
    assert worker.returncode == -9
    await hub.stack.restart("worker")
    assert worker.pid != killed
    accepted = await report_in(hub, report["id"], "accepted")
    assert accepted["receiptId"] == first["receiptId"], (accepted, first)
    # Exactly one submission of the version: the retry was answered from the idempotency key.
    assert [s["receiptId"] for s in await submissions(hub, report)] == [first["receiptId"]]
    assert first["idempotencyKey"] == f"{report['workflowId']}/submit"
    assert datetime.fromisoformat(first["receivedAt"]) >= frozen_at.replace(microsecond=0)
    # And it was a retry: the frozen worker's first attempt (eager, on the main queue) timed
    # out, and the new worker's attempt on the regulator's queue completed the step.
    history = await handle.fetch_history()
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.task_queue.name
        for e in history.events
        if e.activity_task_scheduled_event_attributes.activity_type.name == SUBMIT
    }
    timed_out = {
        e.activity_task_timed_out_event_attributes.scheduled_event_id
        for e in history.events
        if e.HasField("activity_task_timed_out_event_attributes")
    }
    completed = {
        e.activity_task_completed_event_attributes.scheduled_event_id
        for e in history.events
        if e.HasField("activity_task_completed_event_attributes")
    }
    first, retry = sorted(scheduled)
    assert first in timed_out and retry in completed
    assert scheduled[retry].endswith(".regulator") and not scheduled[first].endswith(".regulator")
