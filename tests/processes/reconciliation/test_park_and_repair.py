"""A reconciliation parked on a billing outage, repaired through ``/deadLetters``.

The bug that made every process stand on one runtime: the reconciliation parked its
``billing.get_tariffs`` step, and ``POST /deadLetters/{id}/retry`` answered 409 "Update
handler for 'decide' expected but not found". Now the park is a dead letter and a task in the
operators' inbox, and retry, abort and a cancel of the run each close both.

Real dev server, simulators and worker (the suite's ``hub`` fixture); billing gets two tries,
so a run parks in about a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from hub import search_attributes as sa
from hub.models import DeadLetterStatus, HumanTask, HumanTaskCandidate, TaskState
from hub.settings import Settings
from tests.conftest import FAST_RETRY, Hub, Simulators, eventually
from tests.reconciliation.runs import RUNS, finished, make_data, start

LETTERS = "/deadLetters"
STEP = "billing.get_tariffs"
#: Tries of a billing call before it parks (the dev server runs each retry about a second
#: after the last, whatever the backoff asks).
BILLING_ATTEMPTS = 2


@pytest.fixture
def hub_settings(hub_settings: Settings) -> Settings:
    hub_settings.retry["billing"] = FAST_RETRY.model_copy(
        update={"maximum_attempts": BILLING_ATTEMPTS}
    )
    return hub_settings


async def letter(hub: Hub, letter_id: str) -> dict[str, Any]:
    return dict((await hub.api.get(f"{LETTERS}/{letter_id}")).json())


async def task_of(hub: Hub, letter_id: str) -> tuple[HumanTask, set[str]] | None:
    """The inbox row of a parked step's task, and its candidate groups."""
    async with hub.sessions() as session:
        task = (
            await session.exec(select(HumanTask).where(HumanTask.dead_letter_id == letter_id))
        ).one_or_none()
        if task is None:
            return None
        groups = await session.exec(
            select(HumanTaskCandidate.group_name).where(HumanTaskCandidate.task_id == task.id)
        )
        return task, set(groups)


async def parked_run(hub: Hub, sims: Simulators, tmp_path: Path) -> tuple[dict[str, Any], ...]:
    """A reconciliation parked on ``GetTariffs``; answers the run, its letter and its rule."""
    make_data(tmp_path / "data", records=200)
    outage = await sims.fault("billing", operation="GetTariffs", kind="transient")
    run = await start(
        hub,
        networkSource=str(tmp_path / "data" / "network"),
        billingSource=str(tmp_path / "data" / "billing"),
    )

    async def find() -> dict[str, Any] | None:
        rows = (
            await hub.api.get(
                LETTERS, params={"process": "billing-reconciliation", "status": "parked"}
            )
        ).json()
        return next((r for r in rows if r["workflowId"] == run["workflowId"]), None)

    parked = await eventually(find, timeout=30)
    assert parked["step"] == STEP and parked["system"] == "billing"
    assert parked["activity"] == STEP and parked["compensation"] is False
    assert parked["errorType"] == "TransientError" and "gave up retrying" in parked["lastError"]
    assert parked["attempts"] == BILLING_ATTEMPTS
    assert parked["skippable"] is False  # the run needs the tariffs
    return run, parked, outage


async def assert_parked_with_task(hub: Hub, run: dict[str, Any], parked: dict[str, Any]) -> str:
    """The park is an open ``dead-letter`` task for ops, and the Temporal UI shows both."""
    found = await eventually(lambda: task_of(hub, parked["id"]), timeout=10)
    task, groups = found
    assert task.kind == "dead-letter" and task.state == TaskState.CREATED
    assert groups == {"ops"}
    assert task.workflow_id == run["workflowId"] and task.process == "billing-reconciliation"
    assert task.decisions == ["retry", "abort"]  # not skippable
    assert task.evidence["step"] == STEP and task.evidence["deadLetterId"] == parked["id"]
    handle = hub.client.get_workflow_handle(run["workflowId"])

    async def shown() -> bool:
        attributes = (await handle.describe()).typed_search_attributes
        return (
            attributes.get(sa.HUB_STATUS) == sa.HubStatus.PARKED.value
            and attributes.get(sa.OPEN_TASK) == task.id
        )

    # The rows are written by activities, the search attributes by the workflow task after.
    await eventually(shown, timeout=10)
    assert (await hub.api.get(f"{RUNS}/{run['id']}")).json()["status"] == "running"
    return task.id


async def closed_task(hub: Hub, letter_id: str, state: TaskState) -> HumanTask:
    async def closed() -> HumanTask | None:
        found = await task_of(hub, letter_id)
        return found[0] if found and found[0].state == state else None

    return await eventually(closed, timeout=30)


async def test_retry_after_the_outage_completes_the_run(
    hub: Hub, sims: Simulators, tmp_path: Path
) -> None:
    run, parked, outage = await parked_run(hub, sims, tmp_path)
    task_id = await assert_parked_with_task(hub, run, parked)

    await sims.http.delete(f"{sims.urls['billing']}/_sim/faults/{outage['id']}")  # billing back
    response = await hub.api.post(
        f"{LETTERS}/{parked['id']}/retry", json={"reason": "billing is back"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] is True
    decider = response.json()["decidedBy"]  # the authenticated caller

    done = await finished(hub, run["id"])
    assert done["status"] == "completed", done["errorMessage"]
    assert done["currency"] == "EUR"
    resolved = await letter(hub, parked["id"])
    assert resolved["status"] == DeadLetterStatus.RESOLVED
    assert resolved["decision"] == "retry" and resolved["decidedBy"] == decider
    task = await closed_task(hub, parked["id"], TaskState.COMPLETED)
    assert task.id == task_id
    assert task.decision == "retry" and task.decided_by == decider
    assert task.comment == "billing is back"
    attributes = (
        await hub.client.get_workflow_handle(run["workflowId"]).describe()
    ).typed_search_attributes
    assert attributes.get(sa.HUB_STATUS) == sa.HubStatus.COMPLETED.value
    assert attributes.get(sa.OPEN_TASK) is None


async def test_abort_fails_the_run_naming_the_step(
    hub: Hub, sims: Simulators, tmp_path: Path
) -> None:
    run, parked, _ = await parked_run(hub, sims, tmp_path)
    await assert_parked_with_task(hub, run, parked)

    response = await hub.api.post(f"{LETTERS}/{parked['id']}/abort", json={"reason": "later"})
    assert response.status_code == 200, response.text
    decider = response.json()["decidedBy"]

    done = await finished(hub, run["id"])
    assert done["status"] == "failed"
    assert done["errorMessage"].startswith(f"{STEP}: aborted by {decider} after: ")
    aborted = await letter(hub, parked["id"])
    assert aborted["status"] == DeadLetterStatus.ABORTED and aborted["decidedBy"] == decider
    task = await closed_task(hub, parked["id"], TaskState.COMPLETED)
    assert task.decision == "abort" and task.decided_by == decider
    assert task.comment == "later"


async def test_cancelling_the_parked_run_cancels_its_task(
    hub: Hub, sims: Simulators, tmp_path: Path
) -> None:
    run, parked, _ = await parked_run(hub, sims, tmp_path)
    await assert_parked_with_task(hub, run, parked)

    response = await hub.api.post(f"{RUNS}/{run['id']}/cancel")
    assert response.status_code == 202, response.text

    done = await finished(hub, run["id"])
    assert done["status"] == "cancelled"
    task = await closed_task(hub, parked["id"], TaskState.CANCELLED)
    assert task.decision is None
    aborted = await letter(hub, parked["id"])
    assert aborted["status"] == DeadLetterStatus.ABORTED
    assert aborted["decidedBy"] == "cancel request"
    # A decision on what the cancel closed is refused, not lost.
    late = await hub.api.post(f"{LETTERS}/{parked['id']}/retry", json={})
    assert late.status_code == 409
