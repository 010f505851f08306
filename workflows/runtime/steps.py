"""Steps and compensations: run a step as an activity, remember how to undo it, undo in reverse.

A step's activity options come from its system (derived from the activity,
:mod:`workflows.runtime.options`). The first attempt of a call to a system the run's policies
name ``eager`` (``HUB_EAGER_FIRST_ATTEMPT``) runs on the workflow's own task queue, so the
worker completing the workflow task starts it at once (Temporal's eager activity start: no
wait for a poller of the system's queue); when it fails in a way that would be retried, the
step goes on on the system's queue with the attempts and time left: the retries, and every
call while the system's circuit breaker is open, go through the queue the breaker holds (a
worker that knows the breaker open refuses the first attempt, ``EagerRefused``, without calling,
and that refusal costs no attempt). A failure that a person can repair parks the step
(:mod:`workflows.runtime.parking`); any other permanent failure raises ``ActivityError`` to
the process, which compensates. Compensations park too when they cannot run, are always
skippable (an operator may undo a thing by hand), and run even when the process was
cancelled: nothing stops them but an operator's abort.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, RetryState

from workflows.runtime.alarms import Alarms
from workflows.runtime.failures import (
    ProcessCancelled,
    StepAborted,
    application_cause,
    describe,
    parkable,
)
from workflows.runtime.options import activity_options
from workflows.runtime.parking import DoneStep, Parking, held_elsewhere, park_alarm_kind

with workflow.unsafe.imports_passed_through():
    from activities.breaker import EAGER_REFUSED
    from activities.definitions import system_of
    from activities.policies import ProcessPolicies
    from hub import search_attributes as sa
    from hub.alarms import EventType, PerceivedSeverity, ProbableCause
    from hub.models import DeadLetterAction, DeadLetterStatus


@dataclass
class _Compensation:
    step: str
    activity: Callable[..., Awaitable[Any]]
    arg: Any


async def _execute(
    activity: Callable[..., Awaitable[Any]],
    arg: Any,
    summary: str,
    options: dict[str, Any],
    *,
    eager: bool,
    attempts: list[int],
) -> Any:
    """Run ``activity`` once with its retries: on its system's queue, or first one attempt
    eagerly on the workflow's own queue (see the module). ``attempts`` gets the attempts made
    before the system's queue took over (0 or 1), for the dead letter's count."""
    args = [] if arg is None else [arg]
    retry: RetryPolicy | None = options.get("retry_policy")
    if eager and (retry is None or retry.maximum_attempts != 1):
        started = workflow.now()
        try:
            return await workflow.execute_activity_method(
                activity,
                args=args,
                summary=summary,
                **{
                    **options,
                    "task_queue": workflow.info().task_queue,
                    "retry_policy": dataclasses.replace(retry or RetryPolicy(), maximum_attempts=1),
                },
            )
        except ActivityError as err:
            if err.retry_state != RetryState.MAXIMUM_ATTEMPTS_REACHED:
                raise  # a failure no retry would change: the step's answer
            cause = application_cause(err)
            refused = cause is not None and cause.type == EAGER_REFUSED
            if not refused:
                # The pause a retry would have made: the system's hint (Retry-After), or the
                # policy's first interval.
                pause = (cause.next_retry_delay if cause is not None else None) or (
                    retry.initial_interval if retry is not None else None
                )
                if pause:
                    await workflow.sleep(pause)
            rest = _after_first_attempt(options, refused, workflow.now() - started)
            if rest is None:
                raise
            attempts.append(0 if refused else 1)
            options = rest
    return await workflow.execute_activity_method(activity, args=args, summary=summary, **options)


def _after_first_attempt(
    options: dict[str, Any], refused: bool, spent: timedelta
) -> dict[str, Any] | None:
    """The options of the step's queue after its eager first attempt failed: the attempts and
    time left (``refused``, an ``EagerRefused``, costs no attempt), or None when none is left."""
    options = dict(options)
    retry: RetryPolicy | None = options.get("retry_policy")
    if retry is not None and retry.maximum_attempts and not refused:
        options["retry_policy"] = dataclasses.replace(
            retry, maximum_attempts=retry.maximum_attempts - 1
        )
    total: timedelta | None = options.get("schedule_to_close_timeout")
    if total is not None:
        left = total - spent
        if left <= timedelta(0):
            return None
        options["schedule_to_close_timeout"] = left
    return options


class Steps:
    """The steps of one run, and the stack of what undoes them."""

    def __init__(
        self,
        *,
        policies: ProcessPolicies,
        alarms: Alarms,
        parking: Parking,
        stop_requested: Callable[[], bool],
    ) -> None:
        self.policies = policies
        self.alarms = alarms
        self.parking = parking
        self.stop_requested = stop_requested
        self.current_step: str | None = None
        self.current_system: str | None = None
        self.compensating = False
        self._compensations: list[_Compensation] = []
        #: The steps that have run, so a parked step knows which of its fields they hold.
        self.done: list[DoneStep] = []
        #: The steps being run (more than one when run :meth:`together`), parked ones too.
        self.in_flight: list[str] = []
        #: Steps run :meth:`together` park one at a time (a run has one parked step at most).
        self._parking = asyncio.Lock()

    @property
    def compensations_pending(self) -> int:
        return len(self._compensations)

    async def call(
        self, step: str, activity: Callable[..., Awaitable[Any]], arg: Any = None, **kw: Any
    ) -> Any:
        """Run one step (see :meth:`_call`), counted in :attr:`in_flight` meanwhile."""
        self.in_flight.append(step)
        try:
            return await self._call(step, activity, arg, **kw)
        finally:
            self.in_flight.remove(step)

    async def _call(
        self,
        step: str,
        activity: Callable[..., Awaitable[Any]],
        arg: Any = None,
        *,
        cancellable: bool = True,
        skippable: bool = False,
        skip_result: Any = None,
        compensation: bool = False,
        shared_fields: Mapping[str, Sequence[Callable[..., Any]]] | None = None,
        **options: Any,
    ) -> Any:
        """Run one step; park it when it cannot go on alone. Raises ``ActivityError`` for a
        failure that does not park, :class:`StepAborted`, or :class:`ProcessCancelled`.

        ``shared_fields``: fields of ``arg`` whose value other systems hold too, each with the
        activities of the steps (earlier or later) that put it there; a parked step refuses a
        correction of them, as of any field an earlier step had with the same value.
        ``options`` override the system's activity options (a longer timeout, a heartbeat)."""
        system = system_of(activity)
        first_attempt = workflow.now()
        eager = system in self.policies.eager
        while True:
            earlier: list[int] = []
            if cancellable and self.stop_requested():
                raise ProcessCancelled()
            self.current_step, self.current_system = step, system
            workflow.set_current_details(f"calling **{system}**: `{step}`")
            try:
                result = await _execute(
                    activity,
                    arg,
                    f"{'compensate ' if compensation else ''}{system}: {step}",
                    {**activity_options(self.policies, activity), **options},
                    eager=eager,
                    attempts=earlier,
                )
            except ActivityError as err:
                # The step the process fails at (another may have started meanwhile).
                self.current_step, self.current_system = step, system
                if not parkable(err):
                    if not compensation:  # after a retry: the process reports its failure
                        self.alarms.clear_alarm(
                            park_alarm_kind(step, False), f"{step} failed: {describe(err)}"
                        )
                    raise
                async with self._parking:
                    self.current_step, self.current_system = step, system
                    decision = await self.parking.park(
                        step,
                        activity,
                        arg,
                        err,
                        first_attempt,
                        skippable=skippable,
                        compensation=compensation,
                        cancellable=cancellable,
                        stop_requested=self.stop_requested,
                        resume_status=(
                            sa.HubStatus.COMPENSATING if self.compensating else sa.HubStatus.RUNNING
                        ),
                        refused_fields=held_elsewhere(
                            step, system, arg, self.done, shared_fields or {}
                        ),
                        earlier_attempts=sum(earlier),
                    )
                if decision.action == DeadLetterAction.RETRY:
                    eager = False  # an operator's retry goes through the system's queue
                    if decision.input:
                        arg = dataclasses.replace(arg, **decision.input)
                    continue
                if decision.action == DeadLetterAction.SKIP:
                    if not compensation:
                        self.done.append(DoneStep(step, system, arg))
                    return skip_result
                self.current_step, self.current_system = step, system
                raise StepAborted(step, describe(err), decision.decided_by) from err
            if step in self.parking.letters:
                await self.parking.close_letter(step, DeadLetterStatus.RESOLVED)
                self.alarms.clear_alarm(
                    park_alarm_kind(step, compensation), f"{step} retried successfully"
                )
            if not compensation:
                self.done.append(DoneStep(step, system, arg))
            return result

    async def together(self, *work: Coroutine[Any, Any, Any]) -> list[Any]:
        """Run independent steps (each a coroutine of :meth:`call` and :meth:`push`) at the
        same time; answers their results in order. Every one runs to its end (pushing its
        compensation if it succeeded) before a failure is raised, so a roll-back undoes all
        that was done; the first failure in ``work``'s order is raised, with
        :attr:`current_step` the step it failed at. A failing step parks as in :meth:`call`,
        one at a time."""
        failed_at: dict[int, tuple[str | None, str | None]] = {}

        async def one(index: int, steps: Coroutine[Any, Any, Any]) -> Any:
            try:
                return await steps
            except BaseException:
                failed_at[index] = (self.current_step, self.current_system)
                raise

        results = await asyncio.gather(
            *(one(i, steps) for i, steps in enumerate(work)), return_exceptions=True
        )
        for index, result in enumerate(results):
            if isinstance(result, BaseException):
                self.current_step, self.current_system = failed_at[index]
                raise result
        return list(results)

    def push(self, step: str, activity: Callable[..., Awaitable[Any]], arg: Any) -> None:
        """Remember how to undo a step that has succeeded."""
        self._compensations.append(_Compensation(step, activity, arg))

    def forget_compensations(self) -> None:
        """Past a point of no return there is nothing left to undo."""
        self._compensations.clear()

    async def compensate(self) -> list[str]:
        """Undo every step done, newest first. Returns the compensations given up on
        (they need manual repair); one that fails does not stop the others."""
        self.compensating = True
        failures: list[str] = []
        while self._compensations:
            compensation = self._compensations.pop()
            try:
                await self.call(
                    compensation.step,
                    compensation.activity,
                    compensation.arg,
                    cancellable=False,
                    skippable=True,
                    compensation=True,
                )
            except (StepAborted, ActivityError) as err:
                failure = (
                    str(err)
                    if isinstance(err, StepAborted)
                    else f"{compensation.step}: {describe(err)}"
                )
                failures.append(failure)
                # Systems now disagree (something done is not undone): a person must repair.
                self.alarms.raise_alarm(
                    park_alarm_kind(compensation.step, True),
                    PerceivedSeverity.CRITICAL,
                    EventType.PROCESSING_ERROR_ALARM,
                    ProbableCause.DATABASE_INCONSISTENCY,
                    f"compensation given up, repair by hand: {failure}",
                    step=compensation.step,
                    system=system_of(compensation.activity),
                )
        return failures
