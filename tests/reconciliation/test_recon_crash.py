"""A worker killed mid-reconciliation: the next one goes on from where it stopped.

Separate processes, as in production (``bench/stack.py``): the Temporal dev server, the
simulators, ``python worker.py`` and the API. The run works one data activity at a time, the
worker is killed with SIGKILL in the middle of the splits and started again; the run must end
exact, with every split and partition run once, except the one in flight at the kill.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType

from bench.stack import BenchStack
from tests.conftest import eventually
from tests.reconciliation.runs import END, START, make_data, truth

FILES = 24


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[BenchStack]:
    stack = BenchStack(
        tmp_path / "stack",
        latency_ms=0,
        extra_env={
            "HUB_RECONCILIATION_THREADS": "1",
            "HUB_RECONCILIATION_PARALLELISM": "1",
            "HUB_RECONCILIATION_TASK_BYTES": "1",  # a split activity per file
            "HUB_RECONCILIATION_SOURCE_ROOTS": str(tmp_path),
            "HUB_RECONCILIATION_HEARTBEAT_TIMEOUT": "2",
            "HUB_RETRY__RECONCILIATION__INITIAL_INTERVAL": "0.1",
        },
    )
    stack.workdir.mkdir(parents=True)
    try:
        await stack.start()
        yield stack
    finally:
        stack.stop()


async def test_a_killed_worker_costs_only_what_was_in_flight(
    stack: BenchStack, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    make_data(data, records=FILES * 400, records_per_file=400)
    async with httpx.AsyncClient(
        base_url=stack.api_url, headers={"X-API-Key": stack.api_key}, timeout=30
    ) as api:
        reply = await api.post(
            "/reconciliations",
            json={
                "periodStart": START.isoformat(),
                "periodEnd": END.isoformat(),
                "networkSource": str(data / "network"),
                "billingSource": str(data / "billing"),
                "partitions": 8,
                "leakageThresholdPct": 100,
            },
        )
        assert reply.status_code == 201, reply.text
        run_id = reply.json()["id"]

        async def progress() -> dict[str, Any] | None:
            body = (await api.get(f"/reconciliations/{run_id}")).json()
            done = (body.get("progress") or {}).get("filesDone", 0)
            return body if done >= FILES // 2 else None

        before = await eventually(progress, timeout=60, interval=0.02)
        stack.kill("worker")
        done_at_kill = before["progress"]["filesDone"]
        assert done_at_kill < 2 * FILES  # killed in the middle of the splits
        # With no worker, the run still reads from the hub database, at once.
        orphaned = await api.get(f"/reconciliations/{run_id}", timeout=5)
        assert orphaned.json()["status"] == "running"
        await stack.restart("worker")

        async def finished() -> dict[str, Any] | None:
            body = (await api.get(f"/reconciliations/{run_id}")).json()
            return body if body["status"] != "running" else None

        run = await eventually(finished, timeout=120)
        assert run["status"] == "completed", run["errorMessage"]
        found = await api.get(f"/reconciliations/{run_id}/discrepancies", params={"limit": 10000})
        pairs = {(row["recordId"], row["category"]) for row in found.json()}
        assert pairs == truth(data)

    client = await stack.client()
    attempts: dict[str, list[int]] = {}
    scheduled: dict[int, str] = {}
    async for event in client.get_workflow_handle(run["workflowId"]).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            attempts.setdefault(scheduled[started.scheduled_event_id], []).append(started.attempt)
    # Each split and partition was scheduled once; only the one in flight ran twice.
    assert len(attempts["reconciliation.split"]) == 2 * FILES
    assert len(attempts["reconciliation.reconcile_partition"]) == 8
    reruns = [a for name in attempts for a in attempts[name] if a > 1]
    assert len(reruns) <= 1, attempts
