"""Every workflow the worker registers answers the messages people send it.

The motivating bug: a run parked and ``POST /deadLetters/{id}/retry`` answered 409 "Update
handler for 'decide' expected but not found", because that workflow had no ``decide`` update.
Every process stands on :class:`~workflows.runtime.ProcessWorkflow`, whose ``decide``,
``claim_task``, ``unclaim_task`` and ``complete_task`` updates each have a validator (a refused
message is an immediate error and no trace in history), and whose ``open_tasks`` query lists
the run's tasks. Temporal's Python SDK has no public reader of a class's workflow definition
(``temporalio.workflow._Definition`` is private), so the check is in two parts, both through
public API: each registered class must inherit those handlers from the runtime unchanged
(:func:`people_handlers_missing`), and the runtime's handlers, served by a real worker, must
be found by name and refuse a bad message in their validator
(``test_the_runtime_validates_every_message_on_a_real_worker``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from worker import WORKFLOWS
from workflows.runtime import (
    DeadLetterDecision,
    DecisionResult,
    ProcessWorkflow,
    TaskClaim,
    TaskDecision,
)

#: The updates a person sends a run: by reference, so a rename shows here.
PEOPLE_UPDATES: tuple[Callable[..., Any], ...] = (
    ProcessWorkflow.decide,
    ProcessWorkflow.claim_task,
    ProcessWorkflow.unclaim_task,
    ProcessWorkflow.complete_task,
)
PEOPLE_QUERIES: tuple[Callable[..., Any], ...] = (ProcessWorkflow.open_tasks,)


def people_handlers_missing(cls: type) -> list[str]:
    """What ``cls`` lacks of the messages people send a run (empty: it answers them all).

    The handlers must be the runtime's own: a subclass that overrides one with a new
    ``@workflow.update`` drops the validator the runtime pairs with it, and the SDK already
    refuses an override that is not an update of the same name."""
    problems = []
    if not issubclass(cls, ProcessWorkflow):
        problems.append(f"{cls.__name__} is not a ProcessWorkflow")
    for handler in (*PEOPLE_UPDATES, *PEOPLE_QUERIES):
        name = handler.__name__
        own = getattr(cls, name, None)
        if own is None:
            problems.append(f"no {name}")
        elif own is not handler:
            problems.append(f"{name} is not ProcessWorkflow.{name} (overridden)")
    for update in PEOPLE_UPDATES:
        own = getattr(cls, update.__name__, None)
        if own is not None and not isinstance(own, workflow.UpdateMethodMultiParam):
            problems.append(f"{update.__name__} is not a workflow update")
    return problems


def test_the_worker_registers_workflows() -> None:
    assert WORKFLOWS  # an empty list would pass the test below for nothing


@pytest.mark.parametrize("cls", WORKFLOWS, ids=lambda cls: cls.__name__)
def test_every_registered_workflow_answers_people(cls: type) -> None:
    assert people_handlers_missing(cls) == []


# --- the check fails where it should: workflows that do not answer ----------------------------


@workflow.defn(name="registry-test-not-a-process")
class NotAProcess:
    """What the reconciliation was before the runtime: no ``decide``, no task updates."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@workflow.defn(name="registry-test-unvalidated-decide")
class UnvalidatedDecide(ProcessWorkflow):
    """A process that replaced the runtime's ``decide`` with one that has no validator."""

    @workflow.update
    async def decide(self, decision: DeadLetterDecision) -> DecisionResult:  # type: ignore[override]
        return DecisionResult(decision.dead_letter_id, decision.action, "anything")

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


def test_the_check_fails_a_workflow_without_the_runtime() -> None:
    assert people_handlers_missing(NotAProcess) == [
        "NotAProcess is not a ProcessWorkflow",
        "no decide",
        "no claim_task",
        "no unclaim_task",
        "no complete_task",
        "no open_tasks",
    ]


def test_the_check_fails_a_workflow_that_overrides_a_handler() -> None:
    assert people_handlers_missing(UnvalidatedDecide) == [
        "decide is not ProcessWorkflow.decide (overridden)"
    ]


# --- the runtime's handlers, as Temporal serves them --------------------------------------------


@workflow.defn(name="registry-test-process")
class WaitingProcess(ProcessWorkflow):
    """The runtime's handlers and nothing else: a run that waits and has parked nothing."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def refused(call: Any) -> ApplicationError:
    """The error a validator answered with (an update that is not refused fails the test)."""
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await asyncio.wait_for(call, timeout=10)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


async def test_the_runtime_validates_every_message_on_a_real_worker(
    temporal_client: Client,
) -> None:
    queue = f"registry-{uuid.uuid4()}"
    async with Worker(
        temporal_client,
        task_queue=queue,
        workflows=[WaitingProcess, NotAProcess],
        # The test module is not importable inside the sandbox; these runs call nothing.
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        process: WorkflowHandle[Any, Any] = await temporal_client.start_workflow(
            WaitingProcess.run, id=f"registry-process-{uuid.uuid4()}", task_queue=queue
        )
        claim = TaskClaim("task-nope", "noc-jane", ["ops"])
        not_parked = await refused(
            process.execute_update(
                ProcessWorkflow.decide, DeadLetterDecision("dl-nope", "retry", "noc-jane")
            )
        )
        assert not_parked.type == "NotParked"
        tasks: list[tuple[Any, TaskClaim | TaskDecision]] = [
            (ProcessWorkflow.claim_task, claim),
            (ProcessWorkflow.unclaim_task, claim),
            (ProcessWorkflow.complete_task, TaskDecision("task-nope", "retry", "noc-jane")),
        ]
        for update, arg in tasks:
            assert (await refused(process.execute_update(update, arg))).type == "NoSuchTask"
        assert await process.query(ProcessWorkflow.open_tasks) == []
        # Refused by validators: not one of them was accepted into history.
        events = [event.event_type async for event in process.fetch_history_events()]
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED not in events

        # The bug the runtime fixed, as an operator met it.
        bare: WorkflowHandle[Any, Any] = await temporal_client.start_workflow(
            NotAProcess.run, id=f"registry-bare-{uuid.uuid4()}", task_queue=queue
        )
        missing = await refused(
            bare.execute_update(
                ProcessWorkflow.decide, DeadLetterDecision("dl-nope", "retry", "noc-jane")
            )
        )
        assert "Update handler for 'decide' expected but not found" in missing.message
        for handle in (process, bare):
            await handle.terminate("test over")
