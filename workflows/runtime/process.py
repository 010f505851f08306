"""One process run's runtime, and the base class of every process workflow.

:class:`Runtime` puts the pieces together for a run: steps and compensations
(:mod:`~workflows.runtime.steps`), parking (:mod:`~workflows.runtime.parking`), human tasks
(:mod:`~workflows.runtime.tasks`) and alarms (:mod:`~workflows.runtime.alarms`).
:class:`ProcessWorkflow` gives every workflow that stands on it the messages people use:
the ``decide`` update for a parked step, the task updates (claim, unclaim, complete) and the
``open_tasks`` query, each with a validator, so a refused message never reaches history. A
test enumerates the workflows the worker registers and fails if one does not answer them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from workflows.runtime.alarms import Alarms
from workflows.runtime.failures import alarm_cause
from workflows.runtime.options import activity_options, local_activity_options
from workflows.runtime.parking import (
    DeadLetterDecision,
    DecisionResult,
    ParkedStep,
    Parking,
    ParkListener,
)
from workflows.runtime.status import set_hub_status
from workflows.runtime.steps import Steps
from workflows.runtime.tasks import (
    HumanTasks,
    TaskClaim,
    TaskDecision,
    TaskOutcome,
    TaskSpec,
    TaskView,
)

with workflow.unsafe.imports_passed_through():
    from activities.definitions import name_of
    from activities.policies import ProcessPolicies
    from activities.tasks import TaskRecord, TaskStore
    from hub import search_attributes as sa
    from hub.alarms import PerceivedSeverity


class Runtime:
    """Steps, compensations, parking, human tasks and alarms of one process run."""

    def __init__(
        self,
        *,
        process: str,
        reference: str | None,
        policies: ProcessPolicies,
        stop_requested: Callable[[], bool] = lambda: False,
        reference_kind: str = "order",
        on_park: ParkListener | None = None,
        on_resume: ParkListener | None = None,
    ) -> None:
        self.process = process
        self.reference = reference
        self.policies = policies
        self.alarms = Alarms(
            process=process,
            reference=reference,
            policies=policies,
            reference_kind=reference_kind,
        )
        self.tasks = HumanTasks(process=process, alarms=self.alarms, record=self._record_task)
        self.parking = Parking(
            process=process,
            reference=reference,
            policies=policies,
            alarms=self.alarms,
            tasks=self.tasks,
            record=self.record,
            on_park=on_park,
            on_resume=on_resume,
        )
        self.steps = Steps(
            policies=policies,
            alarms=self.alarms,
            parking=self.parking,
            stop_requested=stop_requested,
        )
        self.stop_requested = stop_requested

    # --- the hub's own records ------------------------------------------------------------

    async def record(
        self,
        activity: Callable[..., Awaitable[Any]],
        arg: Any,
        summary: str,
        *,
        local: bool = False,
    ) -> Any:
        """A write to the hub's own database (retried without limit: it is our store).

        ``local``: as a local activity, run by this worker within the workflow task: no
        round trip through the server's queues, one marker in history instead of three
        events and a workflow task. The workflow goes on only once it is written, as with a
        normal activity, so a record made before a side effect still precedes it."""
        if local:
            try:
                return await workflow.execute_local_activity_method(
                    activity,
                    arg,
                    summary=summary,
                    **local_activity_options(self.policies, activity),
                )
            except ApplicationError as err:
                # A local activity's failure comes as the activity's own error; the callers
                # see it as they see a normal activity's, an ActivityError caused by it.
                raise ActivityError(
                    f"local activity {name_of(activity)} failed",
                    scheduled_event_id=0,
                    started_event_id=0,
                    identity="",
                    activity_type=name_of(activity),
                    activity_id="",
                    retry_state=RetryState.NON_RETRYABLE_FAILURE
                    if err.non_retryable
                    else RetryState.MAXIMUM_ATTEMPTS_REACHED,
                ) from err
        return await workflow.execute_activity_method(
            activity, arg, summary=summary, **activity_options(self.policies, activity)
        )

    async def _record_task(self, record: TaskRecord) -> None:
        await self.record(TaskStore.record, record, f"hub: task {record.action}")

    # --- steps ----------------------------------------------------------------------------

    async def call(
        self, step: str, activity: Callable[..., Awaitable[Any]], arg: Any = None, **kw: Any
    ) -> Any:
        """Run a step (see :meth:`Steps.call`)."""
        return await self.steps.call(step, activity, arg, **kw)

    async def together(self, *work: Coroutine[Any, Any, Any]) -> list[Any]:
        """Run independent steps at the same time (see :meth:`Steps.together`)."""
        return await self.steps.together(*work)

    def push(self, step: str, activity: Callable[..., Awaitable[Any]], arg: Any) -> None:
        self.steps.push(step, activity, arg)

    async def compensate(self) -> list[str]:
        return await self.steps.compensate()

    @property
    def current_step(self) -> str | None:
        return self.steps.current_step

    @current_step.setter
    def current_step(self, step: str | None) -> None:
        self.steps.current_step = step

    @property
    def compensating(self) -> bool:
        return self.steps.compensating

    @property
    def parked(self) -> ParkedStep | None:
        return self.parking.parked

    # --- people ---------------------------------------------------------------------------

    async def ask(
        self, spec: TaskSpec, *, waiting: sa.HubStatus = sa.HubStatus.AWAITING_APPROVAL
    ) -> TaskOutcome:
        """Open a human task and wait for its outcome (see :meth:`HumanTasks.ask`); the
        process shows ``running`` again once it has it."""
        outcome = await self.tasks.ask(spec, waiting=waiting, stop=self.stop_requested)
        set_hub_status(
            sa.HubStatus.COMPENSATING if self.steps.compensating else sa.HubStatus.RUNNING
        )
        return outcome

    # --- ending ---------------------------------------------------------------------------

    def alarm_failed(self, err: BaseException, text: str) -> None:
        """The process's own failure: a ``major`` alarm naming the step (and system) it failed
        at, kind ``failed``. Call it before compensating."""
        self.alarms.raise_alarm(
            "failed",
            PerceivedSeverity.MAJOR,
            *alarm_cause(err),
            f"{self.process} failed: {text}",
            step=self.steps.current_step,
            system=self.steps.current_system,
        )

    async def settle(self) -> None:
        """Before the run returns: task records and alarms delivered, every update handler
        finished (a workflow that closes abandons its activities and its callers)."""
        await self.tasks.settle()
        await self.alarms.settle()
        await workflow.wait_condition(workflow.all_handlers_finished)


class ProcessWorkflow:
    """Base class of the process workflows: the messages people send to a run.

    A subclass creates its runtime with :meth:`start_runtime` at the start of its run."""

    _runtime: Runtime | None = None

    def start_runtime(
        self,
        *,
        process: str,
        reference: str | None,
        policies: ProcessPolicies,
        stop_requested: Callable[[], bool] = lambda: False,
        reference_kind: str = "order",
        on_park: ParkListener | None = None,
        on_resume: ParkListener | None = None,
    ) -> Runtime:
        """``reference``: the business object (an order id), named ``<reference_kind>=...``
        in alarms; None: the run itself. ``on_park`` / ``on_resume``: what hears that a step
        parked and that its park ended (:class:`~workflows.runtime.parking.ParkListener`)."""
        self._runtime = Runtime(
            process=process,
            reference=reference,
            policies=policies,
            stop_requested=stop_requested,
            reference_kind=reference_kind,
            on_park=on_park,
            on_resume=on_resume,
        )
        return self._runtime

    @property
    def runtime(self) -> Runtime:
        assert self._runtime is not None, "the runtime starts with the run"
        return self._runtime

    def _started(self, kind: str = "NotParked") -> Runtime:
        if self._runtime is None:  # not started yet, or a process that never waits for people
            what = "no step of this run is parked" if kind == "NotParked" else "no such task"
            raise ApplicationError(what, type=kind)
        return self._runtime

    # --- a parked step --------------------------------------------------------------------

    @workflow.update
    async def decide(self, decision: DeadLetterDecision) -> DecisionResult:
        """An operator's retry / skip / abort of the step this process is parked on."""
        return await self.runtime.parking.accept_decision(decision)

    @decide.validator
    def _validate_decide(self, decision: DeadLetterDecision) -> None:
        self._started().parking.validate_decision(decision)

    # --- human tasks ----------------------------------------------------------------------

    @workflow.query
    def open_tasks(self) -> list[TaskView]:
        return self._runtime.tasks.open_tasks() if self._runtime else []

    @workflow.update
    async def claim_task(self, claim: TaskClaim) -> TaskView:
        return await self.runtime.tasks.claim(claim)

    @claim_task.validator
    def _validate_claim(self, claim: TaskClaim) -> None:
        self._started("NoSuchTask").tasks.validate_claim(claim)

    @workflow.update
    async def unclaim_task(self, claim: TaskClaim) -> TaskView:
        return await self.runtime.tasks.unclaim(claim)

    @unclaim_task.validator
    def _validate_unclaim(self, claim: TaskClaim) -> None:
        self._started("NoSuchTask").tasks.validate_unclaim(claim)

    @workflow.update
    async def complete_task(self, decision: TaskDecision) -> TaskOutcome:
        """A person's decision on a task (a parked step's task releases the step)."""
        return await self.runtime.tasks.complete(decision)

    @complete_task.validator
    def _validate_complete(self, decision: TaskDecision) -> None:
        self._started("NoSuchTask").tasks.validate_decision(decision)
