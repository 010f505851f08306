"""A parked order's task survives a worker killed with SIGKILL and a Temporal restart.

The task lives in two places: the workflow's state (rebuilt from history by whichever worker
picks the run up next) and its row in the hub database (for the inbox). After the worker that
held the run in its cache is killed and the dev server has stopped and started again on its
SQLite file, both still show the task open, and a person's decision through the workflow's
``complete_task`` update releases the order, which completes with one subscriber everywhere.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError

from bench import chaos
from bench.stack import BenchStack
from hub import search_attributes as sa
from tests.chaos.conftest import Chaos, chaos_handle
from tests.conftest import eventually
from workflows.runtime import ProcessWorkflow, TaskDecision, TaskOutcome, TaskView
from workflows.service_activation import workflow_id_for

#: Tries of a call before its step parks: few, so the order parks within seconds.
ATTEMPTS = 3


@pytest.fixture
async def durable_hub(tmp_path: Path) -> AsyncIterator[Chaos]:
    """A stack of its own (Temporal on a SQLite file, so it can restart), short retries."""
    stack = BenchStack(
        tmp_path, latency_ms=0, temporal_db_file=True, extra_env=chaos.retry_env(ATTEMPTS)
    )
    try:
        await stack.start()
        async with chaos_handle(stack) as handle:
            yield handle
    finally:
        stack.stop()


def task_rows(database: Path, workflow_id: str) -> list[dict[str, Any]]:
    """The hub database's tasks of one workflow, read-only (the worker keeps writing)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT t.id, t.kind, t.state, t.dead_letter_id, t.decision, t.decided_by,"
            " group_concat(c.group_name) AS groups FROM human_task t"
            " LEFT JOIN human_task_candidate c ON c.task_id = t.id"
            " WHERE t.workflow_id = ? GROUP BY t.id",
            (workflow_id,),
        )
        return [dict(row) for row in rows]


async def open_tasks(handle: WorkflowHandle[Any, Any]) -> list[TaskView] | None:
    """The run's answer to ``open_tasks``; None while no worker answers yet."""
    try:
        return await handle.query(ProcessWorkflow.open_tasks)
    except (RPCError, WorkflowQueryFailedError):
        return None


async def test_a_parked_orders_task_survives_a_worker_kill_and_a_temporal_restart(
    durable_hub: Chaos,
) -> None:
    hub = durable_hub
    [identity] = chaos.new_identities(1)
    outage = await hub.fault(
        "hss", operation="createSubscriber", match=identity.imsi, kind="transient"
    )
    accepted = await hub.api.post(chaos.ORDERS_PATH, json=chaos.order_body(identity))
    assert accepted.status_code == 201, accepted.text
    order_id = accepted.json()["id"]
    workflow_id = workflow_id_for(order_id)

    async def parked_task() -> dict[str, Any] | None:
        rows = task_rows(hub.database, workflow_id)
        return rows[0] if rows else None

    task = await eventually(parked_task, timeout=60)
    assert task["kind"] == "dead-letter" and task["state"] == "created"
    assert task["groups"] == "ops"
    [letter] = (await hub.api.get("/deadLetters", params={"orderId": order_id})).json()
    assert letter["status"] == "parked" and letter["id"] == task["dead_letter_id"]
    assert letter["step"] == "1/hss.create_subscriber" and letter["attempts"] == ATTEMPTS

    # The worker that holds the run dies without a word; a new one takes over.
    worker = hub.stack.children["worker"]
    killed = worker.pid
    hub.stack.kill("worker")
    assert worker.returncode == -9
    await hub.stack.restart("worker")
    assert worker.pid != killed
    # Temporal stops and starts again on its SQLite file.
    assert hub.stack.stop_one("temporal") == 0
    await hub.stack.restart("temporal")

    client = await hub.stack.client()
    handle = client.get_workflow_handle(workflow_id)
    # Asked after the restart: the new worker rebuilds the run from history to answer.
    views = await eventually(lambda: open_tasks(handle), timeout=60, interval=0.25)
    assert [(v.task_id, v.kind, v.state, v.candidate_groups) for v in views] == [
        (task["id"], "dead-letter", "created", ["ops"])
    ]
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(sa.HUB_STATUS) == sa.HubStatus.PARKED.value
    assert attributes.get(sa.OPEN_TASK) == task["id"]
    assert [row["state"] for row in task_rows(hub.database, workflow_id)] == ["created"]

    # The HSS is back; an operator decides the task itself (the inbox's route to it).
    await hub.http.delete(f"{hub.stack.simulator_url('hss')}/_sim/faults/{outage['id']}")
    outcome: TaskOutcome = await handle.execute_update(
        ProcessWorkflow.complete_task,
        TaskDecision(task["id"], "retry", decided_by="noc-jane", groups=["ops"]),
    )
    assert outcome.decision == "retry" and outcome.decided_by == "noc-jane"

    async def completed() -> bool:
        return [o.state for o in hub.orders([identity])] == ["completed"]

    await eventually(completed, timeout=60)
    [done] = task_rows(hub.database, workflow_id)
    assert done["state"] == "completed" and done["decision"] == "retry"
    assert done["decided_by"] == "noc-jane"
    resolved = (await hub.api.get(f"/deadLetters/{letter['id']}")).json()
    assert resolved["status"] == "resolved" and resolved["decidedBy"] == "noc-jane"
    # Provisioned once: one subscriber in the HSS, one of everything else, nothing left over.
    states = await chaos.simulator_states(hub.http, hub.simulator_urls)
    assert chaos.records(states)["hss subscriber", identity.imsi] == 1
    ledger = await hub.audit([identity])
    assert ledger.ok, ledger.summary()
