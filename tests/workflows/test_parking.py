"""Parking: a step that exhausts its retries waits for an operator as a dead-letter task.

The probe's step runs on the probe system's double, which is down for the run until the test
repairs it; the probe system's policy gives up after two attempts, so the step parks at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from temporalio.client import WorkflowHandle

from hub import search_attributes as sa
from hub.alarms import PerceivedSeverity
from hub.models import DeadLetterStatus
from tests.conftest import eventually
from tests.workflows.doubles import PROBE
from tests.workflows.harness import ProbeHub, accepted_updates
from tests.workflows.probes import PARK_PROCESS, ParkProbe, fast_policies
from workflows.runtime import DeadLetterDecision, TaskDecision, TaskView
from workflows.runtime.parking import park_alarm_kind

STEP = f"{PROBE}.step"
ALARM = park_alarm_kind(STEP, compensation=False)
OPS = ["ops"]


async def parked(probe: ProbeHub, handle: WorkflowHandle[Any, Any]) -> tuple[TaskView, str]:
    """The run's dead-letter task once it is open, and its dead letter's id."""
    task = await probe.open_task(handle, "dead-letter")
    [record] = probe.records(handle, task.task_id)
    assert record.dead_letter_id is not None
    return task, record.dead_letter_id


def statuses(probe: ProbeHub, handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [update.status for update in probe.hub.letter_updates[handle.id]]


async def test_a_step_that_exhausts_its_retries_parks_and_retries_with_corrected_input(
    probe: ProbeHub,
) -> None:
    handle = await probe.start_park()
    task, letter = await parked(probe, handle)
    step_input = probe.system.calls[handle.id][0]
    assert len(probe.system.calls[handle.id]) == 2  # the probe policy's maximum_attempts

    [park] = probe.hub.parks[handle.id]
    assert (park.id, park.process, park.step, park.system, park.activity) == (
        letter,
        PARK_PROCESS,
        STEP,
        PROBE,
        STEP,
    )
    assert (park.compensation, park.skippable, park.attempts) == (False, False, 2)
    assert park.error_type == "TransientError"
    assert "gave up retrying" in park.last_error and "probe system is down" in park.last_error
    assert park.input == dataclasses.asdict(step_input)

    [record] = probe.records(handle, task.task_id)
    assert (record.kind, record.decisions, record.candidate_groups) == (
        "dead-letter",
        ["retry", "abort"],  # not skippable
        OPS,
    )
    # The correctable fields: plain values, never the idempotency key or a secret.
    assert [(f["name"], f["type"]) for f in record.form] == [
        ("msisdn", "string"),
        ("plan", "string"),
        ("quantity", "integer"),
        ("note", "string"),
    ]
    assert record.evidence["deadLetterId"] == letter
    assert record.evidence["input"]["plan"] == "BASIC"
    assert record.due_at == park.deadline
    # The alarm is sent in the background: it lands soon after the task's record.
    raised = await eventually(lambda: _alarms(probe, handle.id), timeout=15)
    assert raised == [PerceivedSeverity.MAJOR]

    async def shown_parked() -> bool:  # set once the task's record has landed
        attributes = (await handle.describe()).typed_search_attributes
        return (attributes.get(sa.HUB_STATUS), attributes.get(sa.OPEN_TASK)) == (
            sa.HubStatus.PARKED.value,
            task.task_id,
        )

    await eventually(shown_parked, timeout=15)

    for fields, match in (
        ({"idempotency_key": "mine"}, "'idempotency_key' is not in the task's form"),
        ({"token": "guess"}, "'token' is not in the task's form"),
        ({"quantity": "2"}, "'quantity' must be of type integer"),
    ):
        await probe.refused(
            handle,
            ParkProbe.complete_task,
            TaskDecision(task.task_id, "retry", "olga", OPS, fields=fields),
            "BadDecision",
            match,
        )
    await probe.refused(
        handle,
        ParkProbe.complete_task,
        TaskDecision(task.task_id, "abort", "olga", OPS, fields={"plan": "PREMIUM"}),
        "BadDecision",
        "fields go with retry only",
    )
    await probe.refused(
        handle,
        ParkProbe.complete_task,
        TaskDecision(task.task_id, "retry", "sam", ["sales"]),
        "NotCandidate",
    )

    probe.repair(handle)
    await handle.execute_update(
        ParkProbe.complete_task,
        TaskDecision(
            task.task_id,
            "retry",
            "olga",
            OPS,
            comment="plan corrected",
            fields={"plan": "PREMIUM", "quantity": 2},
        ),
    )
    result = await handle.result()
    assert result.result is not None and result.result.done == "PREMIUM x2 for 436641234567"
    rerun = probe.system.calls[handle.id][-1]
    assert rerun == dataclasses.replace(step_input, plan="PREMIUM", quantity=2)
    assert rerun.idempotency_key == step_input.idempotency_key and rerun.token == "s3cret"

    retrying, resolved = probe.hub.letter_updates[handle.id]
    assert (retrying.id, retrying.status, retrying.decision) == (letter, "retrying", "retry")
    assert (retrying.decided_by, retrying.reason) == ("olga", "plan corrected")
    assert (resolved.id, resolved.status) == (letter, DeadLetterStatus.RESOLVED)
    completed = probe.records(handle, task.task_id)[-1]
    assert (completed.state, completed.decision, completed.decided_by) == (
        "completed",
        "retry",
        "olga",
    )
    assert completed.fields == {"plan": "PREMIUM", "quantity": 2}
    assert probe.alarms.of(handle.id, ALARM) == [PerceivedSeverity.MAJOR, PerceivedSeverity.CLEARED]


async def test_the_decide_update_retries_and_a_retry_that_fails_again_parks_the_same_letter(
    probe: ProbeHub,
) -> None:
    handle = await probe.start_park()
    first, letter = await parked(probe, handle)

    def decide(action: str, **kw: Any) -> DeadLetterDecision:
        return DeadLetterDecision(letter, action, "olga", **kw)

    for arg, error_type, match in (
        (DeadLetterDecision("dl-other", "retry", "olga"), "NotParked", "dl-other"),
        (decide("skip"), "NotSkippable", STEP),
        (decide("redo"), "BadDecision", "unknown action"),
        (decide("retry", input={"idempotency_key": "x"}), "BadDecision", "cannot be corrected"),
        (decide("retry", input={"quantity": "2"}), "BadDecision", "must be of type integer"),
        (decide("retry", input={"plan": ["A", "B"]}), "BadDecision", "only plain values"),
        (decide("abort", input={"plan": "PREMIUM"}), "BadDecision", "with retry only"),
        (decide("retry", groups=["sales"]), "NotCandidate", "none of the task's groups"),
    ):
        await probe.refused(handle, ParkProbe.decide, arg, error_type, match)

    # Still down: the retry fails again and parks on the same dead letter, in a new task.
    answer = await handle.execute_update(ParkProbe.decide, decide("retry"))
    assert (answer.dead_letter_id, answer.action, answer.step) == (letter, "retry", STEP)

    async def parked_again() -> TaskView | None:
        tasks = await handle.query(ParkProbe.open_tasks)
        return next((t for t in tasks if t.task_id != first.task_id), None)

    second = await eventually(parked_again, timeout=15)
    await probe.wait_for_record(handle, second.task_id, "created")
    assert [park.id for park in probe.hub.parks[handle.id]] == [letter, letter]
    assert probe.alarms.of(handle.id, ALARM) == [PerceivedSeverity.MAJOR]  # not raised again
    assert probe.records(handle, first.task_id)[-1].decided_by == "olga"

    probe.repair(handle)
    await handle.execute_update(ParkProbe.decide, decide("retry", groups=OPS))
    result = await handle.result()
    assert result.result is not None and result.result.done == "BASIC x1 for 436641234567"
    assert len(probe.system.calls[handle.id]) == 2 + 2 + 1
    assert statuses(probe, handle) == ["retrying", "retrying", "resolved"]
    assert probe.alarms.of(handle.id, ALARM) == [PerceivedSeverity.MAJOR, PerceivedSeverity.CLEARED]
    assert len(await accepted_updates(handle)) == 2


async def test_abort_raises_step_aborted_in_the_workflow(probe: ProbeHub) -> None:
    handle = await probe.start_park()
    task, letter = await parked(probe, handle)
    await handle.execute_update(
        ParkProbe.complete_task,
        TaskDecision(task.task_id, "abort", "olga", OPS, comment="customer withdrew"),
    )
    result = await handle.result()
    assert result.aborted_by == "olga"
    assert result.aborted is not None and result.aborted.startswith(f"{STEP}: aborted by olga")
    assert len(probe.system.calls[handle.id]) == 2  # not run again
    [update] = probe.hub.letter_updates[handle.id]
    assert (update.id, update.status, update.decision, update.reason) == (
        letter,
        DeadLetterStatus.ABORTED,
        "abort",
        "customer withdrew",
    )
    assert probe.alarms.of(handle.id, ALARM) == [PerceivedSeverity.MAJOR, PerceivedSeverity.CLEARED]


async def test_a_skippable_step_may_be_skipped(probe: ProbeHub) -> None:
    handle = await probe.start_park(skippable=True, policies=fast_policies(operator_groups=["noc"]))
    task, letter = await parked(probe, handle)
    assert task.decisions == ["retry", "skip", "abort"]
    assert task.candidate_groups == ["noc"]  # the operator groups of the settings
    await handle.execute_update(ParkProbe.decide, DeadLetterDecision(letter, "skip", "olga"))
    result = await handle.result()
    assert result.skipped and result.result is None
    assert statuses(probe, handle) == [DeadLetterStatus.SKIPPED]
    assert probe.records(handle, task.task_id)[-1].decision == "skip"
    assert probe.alarms.of(handle.id, ALARM) == [PerceivedSeverity.MAJOR, PerceivedSeverity.CLEARED]


async def test_the_park_deadline_aborts_the_step(probe: ProbeHub) -> None:
    handle = await probe.start_park(policies=fast_policies(park_timeout=2.0))
    task, letter = await parked(probe, handle)
    result = await handle.result()
    assert result.aborted_by == "hub: park deadline passed"
    [update] = probe.hub.letter_updates[handle.id]
    assert (update.id, update.status, update.decision) == (
        letter,
        DeadLetterStatus.EXPIRED,
        "abort",
    )
    expired = probe.records(handle, task.task_id)[-1]
    assert (expired.state, expired.decision) == ("expired", "abort")
    assert probe.alarms.of(handle.id, ALARM) == [PerceivedSeverity.MAJOR, PerceivedSeverity.CLEARED]


async def test_a_decision_while_the_park_task_is_being_recorded_is_checked_as_the_task(
    probe: ProbeHub,
) -> None:
    """The dead letter is written before its task: a decision that comes in between (the
    task's record is slow to land) is checked against the task all the same."""
    handle = await probe.start_park()
    release = probe.hub.held[handle.id] = asyncio.Event()

    async def holding() -> bool:
        return handle.id in probe.hub.holding

    await eventually(holding, timeout=15)
    [park] = probe.hub.parks[handle.id]
    try:
        await probe.refused(
            handle,
            ParkProbe.decide,
            DeadLetterDecision(park.id, "retry", "sam", groups=["sales"]),
            "NotCandidate",
        )
    finally:
        release.set()
    task, letter = await parked(probe, handle)
    assert letter == park.id
    probe.repair(handle)
    await handle.execute_update(
        ParkProbe.decide, DeadLetterDecision(letter, "retry", "olga", groups=OPS)
    )
    result = await handle.result()
    assert result.result is not None
    assert probe.records(handle, task.task_id)[-1].decided_by == "olga"


async def test_a_temporal_cancel_while_the_park_task_is_being_recorded_cancels_both(
    probe: ProbeHub,
) -> None:
    """Cancelled through Temporal before the park's task record has landed: the task is
    recorded cancelled all the same, and the dead letter aborted."""
    handle = await probe.start_park()
    release = probe.hub.held[handle.id] = asyncio.Event()

    async def holding() -> bool:
        return handle.id in probe.hub.holding

    await eventually(holding, timeout=15)
    [park] = probe.hub.parks[handle.id]
    try:
        await handle.cancel()

        async def letter_aborted() -> bool:
            return any(u.status == "aborted" for u in probe.hub.letter_updates[handle.id])

        await eventually(letter_aborted, timeout=15)
    finally:
        release.set()
    [update] = [u for u in probe.hub.letter_updates[handle.id] if u.status == "aborted"]
    assert (update.id, update.decided_by) == (park.id, "cancel request")

    async def task_cancelled() -> bool:
        return any(r.state == "cancelled" for r in probe.hub.task_records[handle.id])

    await eventually(task_cancelled, timeout=15)
    cancelled = next(r for r in probe.hub.task_records[handle.id] if r.state == "cancelled")
    assert cancelled.dead_letter_id == park.id and cancelled.action == "cancelled"


async def _alarms(probe: Any, workflow_id: str) -> list[Any]:
    return list(probe.alarms.of(workflow_id, ALARM))
