"""Steps run together (``Runtime.together``): both run to their end before a failure is raised,
so a roll-back undoes what the other did; a failing one parks as alone, one at a time.

The probe's two steps run on the probe system's double; a step whose idempotency key is in
``probe.system.down`` fails (twice: the probe policy's attempts) and parks.
"""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import WorkflowHandle

from tests.conftest import eventually
from tests.workflows.doubles import PROBE, StepInput
from tests.workflows.harness import ProbeHub
from tests.workflows.probes import (
    TogetherProbe,
    TogetherProbeInput,
    TogetherProbeResult,
    fast_policies,
    undo_of,
)
from workflows.runtime import TaskDecision, TaskView

OPS = ["ops"]


async def start(
    probe: ProbeHub, *down: str
) -> tuple[WorkflowHandle[TogetherProbe, TogetherProbeResult], dict[str, StepInput]]:
    """A run of the two steps, those named in ``down`` failing until repaired."""
    reference = f"together-{uuid.uuid4().hex[:12]}"
    workflow_id = f"probe-{reference}"
    steps = {
        name: StepInput(
            msisdn=f"43664{n}",
            plan=name.upper(),
            quantity=1,
            idempotency_key=f"{workflow_id}/{name}",
        )
        for n, name in enumerate(("first", "second"))
    }
    probe.system.down.update(steps[name].idempotency_key for name in down)
    handle = await probe.client.start_workflow(
        TogetherProbe.run,
        TogetherProbeInput(reference, steps["first"], steps["second"], fast_policies()),
        id=workflow_id,
        task_queue=probe.task_queue,
    )
    return handle, steps


def keys_called(probe: ProbeHub, handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [call.idempotency_key for call in probe.system.calls[handle.id]]


async def test_a_step_that_parks_does_not_hold_up_the_other_and_an_abort_undoes_it(
    probe: ProbeHub,
) -> None:
    handle, steps = await start(probe, "first")
    task = await probe.open_task(handle, "dead-letter")
    [park] = probe.hub.parks[handle.id]
    assert park.step == f"{PROBE}.first"

    async def second_done() -> bool:  # while the first waits for a person
        return steps["second"].idempotency_key in keys_called(probe, handle)

    await eventually(second_done, timeout=15)
    await handle.execute_update(
        TogetherProbe.complete_task, TaskDecision(task.task_id, "abort", "olga", OPS)
    )
    result = await handle.result()
    assert result.aborted is not None and result.aborted.startswith(f"{PROBE}.first: aborted")
    assert result.failed_step == f"{PROBE}.first"  # not the step that ran last
    calls = keys_called(probe, handle)
    # The second step's undo ran; the first, never done, has nothing to undo.
    assert calls.count(undo_of(steps["second"]).idempotency_key) == 1
    assert undo_of(steps["first"]).idempotency_key not in calls


async def test_two_failing_steps_park_one_after_the_other(probe: ProbeHub) -> None:
    handle, steps = await start(probe, "first", "second")
    first = await probe.open_task(handle, "dead-letter")

    async def both_gave_up() -> bool:  # each failed its two attempts
        calls = keys_called(probe, handle)
        return all(calls.count(step.idempotency_key) == 2 for step in steps.values())

    await eventually(both_gave_up, timeout=15)
    # Whichever gave up first parks; the other waits for its decision before it parks: one
    # dead letter, one task.
    [parked] = [park.step for park in probe.hub.parks[handle.id]]
    first_name = parked.removeprefix(f"{PROBE}.")
    other_name = next(name for name in steps if name != first_name)
    assert len(await handle.query(TogetherProbe.open_tasks)) == 1

    probe.system.down.discard(steps[first_name].idempotency_key)
    await handle.execute_update(
        TogetherProbe.complete_task, TaskDecision(first.task_id, "retry", "olga", OPS)
    )

    async def second_parked() -> TaskView | None:
        tasks = await handle.query(TogetherProbe.open_tasks)
        return next((t for t in tasks if t.task_id != first.task_id), None)

    second = await eventually(second_parked, timeout=15)
    await probe.wait_for_record(handle, second.task_id, "created")
    assert [park.step for park in probe.hub.parks[handle.id]] == [parked, f"{PROBE}.{other_name}"]
    probe.system.down.discard(steps[other_name].idempotency_key)
    await handle.execute_update(
        TogetherProbe.complete_task, TaskDecision(second.task_id, "retry", "olga", OPS)
    )
    result = await handle.result()
    assert [r.done for r in result.results] == ["FIRST x1 for 436640", "SECOND x1 for 436641"]
