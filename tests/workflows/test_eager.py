"""Eager first attempts (``HUB_EAGER_FIRST_ATTEMPT``): a step's first attempt runs on the
workflow's own task queue; a retry, and a call the breaker holds, go to the system's queue
with the attempts left. The probe's step is a double that records the queue of each call;
its policy allows two attempts."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError

from tests.workflows.doubles import PROBE, StepInput
from tests.workflows.harness import ProbeHub
from tests.workflows.probes import ParkProbe, ParkProbeInput, ParkProbeResult, fast_policies


async def start(
    probe: ProbeHub,
    *,
    eager: bool = True,
    plan: str = "BASIC",
    down: bool = False,
    fail_first: bool = False,
    held: bool = False,
    retry_after: float | None = None,
) -> WorkflowHandle[ParkProbe, ParkProbeResult]:
    reference = f"eager-{uuid.uuid4().hex[:12]}"
    workflow_id = f"probe-{reference}"
    if retry_after is not None:
        probe.system.retry_after[workflow_id] = retry_after
    for wanted, runs in (
        (down, probe.system.down),
        (fail_first, probe.system.fail_first),
        (held, probe.system.held),
    ):
        if wanted:
            runs.add(workflow_id)
    step = StepInput(
        msisdn="436641234567", plan=plan, quantity=1, idempotency_key=f"{workflow_id}/step"
    )
    policies = dataclasses.replace(fast_policies(), eager=[PROBE] if eager else [])
    return await probe.client.start_workflow(
        ParkProbe.run,
        ParkProbeInput(reference, step, policies),
        id=workflow_id,
        task_queue=probe.task_queue,
    )


def queues(probe: ProbeHub, handle: WorkflowHandle[Any, Any]) -> list[str]:
    """Where each call went: ``main``, or the probe system's own queue."""
    named = {probe.task_queue: "main", f"{probe.task_queue}.{PROBE}": PROBE}
    return [named[queue] for queue in probe.system.queues[handle.id]]


async def test_the_first_attempt_runs_on_the_main_queue(probe: ProbeHub) -> None:
    handle = await start(probe)
    result = await handle.result()
    assert result.result is not None and result.result.done.startswith("BASIC")
    assert queues(probe, handle) == ["main"]


async def test_without_eager_every_attempt_is_on_the_systems_queue(probe: ProbeHub) -> None:
    handle = await start(probe, eager=False)
    assert (await handle.result()).result is not None
    assert queues(probe, handle) == [PROBE]


async def test_a_failed_first_attempt_is_retried_on_the_systems_queue(probe: ProbeHub) -> None:
    handle = await start(probe, fail_first=True)
    assert (await handle.result()).result is not None
    assert queues(probe, handle) == ["main", PROBE]


async def test_the_retry_on_the_systems_queue_waits_for_retry_after(probe: ProbeHub) -> None:
    handle = await start(probe, fail_first=True, retry_after=1.5)
    assert (await handle.result()).result is not None
    assert queues(probe, handle) == ["main", PROBE]
    first, second = probe.system.times[handle.id]
    assert second - first >= 1.5  # the system's hint, not the policy's 50 ms


async def test_the_eager_attempt_counts_against_the_policys_attempts(probe: ProbeHub) -> None:
    handle = await start(probe, down=True)
    await probe.open_task(handle, "dead-letter")  # two attempts in all, then it parks
    assert queues(probe, handle) == ["main", PROBE]
    [park] = probe.hub.parks[handle.id]
    assert park.attempts == 2 and park.error_type == "TransientError"
    await handle.terminate("test over")


async def test_a_call_the_breaker_holds_costs_no_attempt(probe: ProbeHub) -> None:
    handle = await start(probe, down=True, held=True)
    await probe.open_task(handle, "dead-letter")
    # Refused on the main queue without a call, then both attempts on the system's queue.
    assert queues(probe, handle) == ["main", PROBE, PROBE]
    assert len(probe.system.calls[handle.id]) == 2
    [park] = probe.hub.parks[handle.id]
    assert park.attempts == 2
    await handle.terminate("test over")


async def test_a_final_answer_on_the_first_attempt_is_not_tried_again(probe: ProbeHub) -> None:
    handle = await start(probe, plan="UNKNOWN")
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    activity_error = failed.value.cause
    assert isinstance(activity_error, ActivityError)
    assert isinstance(activity_error.cause, ApplicationError)
    assert activity_error.cause.type == "UnknownPlan"
    assert queues(probe, handle) == ["main"]
