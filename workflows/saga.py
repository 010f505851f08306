"""Saga steps with compensations, and park-and-repair for steps that cannot go on alone.

A process workflow owns one :class:`Saga`. ``call`` runs a step as an activity with its
system's retry policy. When the step exhausts its retries (an outage longer than the retry
budget) or fails for a technical reason a person must repair (credentials refused), the saga
*parks*: it writes a dead letter, marks the process ``parked``, and waits for an operator's
decision, which arrives as a workflow update:

- ``retry``: run the step again, possibly with corrected input fields;
- ``skip``: treat the step as done by hand (only where the step allows it);
- ``abort``: give up; the workflow compensates and fails.

A park has a deadline (setting ``park_timeout``); past it the saga aborts on its own. A
business rejection (credit declined, unknown plan, any other permanent error) does not park:
it fails the step at once, and the workflow compensates. Compensations park too when they
cannot run, and are always skippable (an operator may undo a thing by hand).

Alarms (X.733, sent as SNMP notifications by the ``alarms.raise`` activity, see
``docs/alarms.md``) come with the saga, so every process raises them alike:

- a parked step raises ``major`` (kind ``dead-letter/<step>``), cleared when it is retried to
  success, skipped or aborted;
- a compensation that is parked or given up raises ``critical`` (kind ``compensation/<step>``),
  cleared when it is retried to success or skipped; given up, it stays for a person;
- the process reports its own failure with :meth:`Saga.alarm_failed` (``major``, kind
  ``failed``), and calls :meth:`Saga.settle_alarms` before it returns.

The alarm key is ``<workflow id>/<kind>``, so a clear carries the notification id of the
alarm it clears. Alarms run in the background with a small retry policy: one that cannot be
delivered is logged and given up, it never fails or holds up the process.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import temporalio.activity
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, RetryState

with workflow.unsafe.imports_passed_through():
    from activities.alarms import AlarmActivities, RaiseAlarmInput
    from activities.dead_letters import DeadLetterStore, DeadLetterUpdate, ParkInput
    from activities.policies import ProcessPolicies, SystemPolicy
    from hub import search_attributes as sa
    from hub.alarms import EventType, PerceivedSeverity, ProbableCause
    from hub.models import DeadLetterAction, DeadLetterStatus
    from hub.redact import SECRET_FIELDS
    from hub.settings import ALARMS

#: Permanent failures that are technical, not business: a person repairs them, so they park.
TECHNICAL_FAILURES = frozenset({"AuthenticationError"})

#: ``workflow.patched`` id: runs started before alarms existed replay without them.
ALARMS_PATCH = "saga-alarms"
#: Used when the policies a run recorded have none for alarms (they predate it): alarms are
#: always tried a few times only, never without end.
ALARM_FALLBACK_POLICY = SystemPolicy(
    initial_interval=1.0,
    backoff_coefficient=2.0,
    maximum_interval=10.0,
    maximum_attempts=3,
    attempt_timeout=30.0,
    schedule_to_close=60.0,
)


@dataclass
class DeadLetterDecision:
    """An operator's decision on a parked step (the ``decide`` update's argument)."""

    dead_letter_id: str
    action: str  # retry | skip | abort
    decided_by: str
    reason: str | None = None
    #: For ``retry``: fields of the step's input to replace (scalars only, never keys).
    input: dict[str, Any] | None = None


@dataclass
class DecisionResult:
    dead_letter_id: str
    action: str
    step: str


@dataclass
class ParkedStep:
    dead_letter_id: str
    step: str
    system: str
    skippable: bool
    compensation: bool
    error: str
    deadline: datetime
    arg: Any = field(default=None, repr=False)


class SagaCancelled(Exception):
    """The process was asked to stop (between steps, or while parked)."""


class StepAborted(Exception):
    """An operator (or the park deadline) gave up on a parked step."""

    def __init__(self, step: str, error: str, decided_by: str) -> None:
        super().__init__(f"{step}: aborted by {decided_by} after: {error}")
        self.step = step
        self.decided_by = decided_by

    @property
    def error(self) -> BaseException | None:
        """The failure that parked the step."""
        return self.__cause__


@dataclass
class _Compensation:
    step: str
    system: str
    activity: Callable[..., Awaitable[Any]]
    arg: Any


def describe(err: BaseException) -> str:
    """The innermost cause's message, saying so when retries ran out."""
    cause: BaseException = err
    while isinstance(cause, FailureError) and cause.cause is not None:
        cause = cause.cause
    message = str(cause.message if isinstance(cause, FailureError) else cause)
    if isinstance(err, ActivityError) and err.retry_state in (
        RetryState.MAXIMUM_ATTEMPTS_REACHED,
        RetryState.TIMEOUT,
    ):
        message = f"gave up retrying ({err.retry_state.name.lower()}): {message}"
    return message


def activity_name(activity: Callable[..., Any]) -> str:
    definition = temporalio.activity._Definition.from_callable(activity)
    return definition.name if definition and definition.name else getattr(activity, "__name__", "?")


def _cause(err: ActivityError) -> ApplicationError | None:
    cause = err.cause
    return cause if isinstance(cause, ApplicationError) else None


def parkable(err: ActivityError) -> bool:
    if err.retry_state in (RetryState.MAXIMUM_ATTEMPTS_REACHED, RetryState.TIMEOUT):
        return True
    cause = _cause(err)
    return cause is not None and cause.type in TECHNICAL_FAILURES


def alarm_cause(err: BaseException | None) -> tuple[EventType, ProbableCause]:
    """X.733 event type and probable cause of a step's failure (the table in docs/alarms.md)."""
    if isinstance(err, StepAborted):
        err = err.error
    if not isinstance(err, ActivityError):
        return EventType.PROCESSING_ERROR_ALARM, ProbableCause.SOFTWARE_ERROR
    cause = _cause(err)
    if cause is not None and cause.type == "AuthenticationError":
        return (
            EventType.SECURITY_SERVICE_OR_MECHANISM_VIOLATION,
            ProbableCause.AUTHENTICATION_FAILURE,
        )
    if err.retry_state == RetryState.TIMEOUT:
        return EventType.COMMUNICATIONS_ALARM, ProbableCause.TIMEOUT_EXPIRED
    if err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED:
        return EventType.COMMUNICATIONS_ALARM, ProbableCause.COMMUNICATIONS_SUBSYSTEM_FAILURE
    if cause is not None:  # refused: a 4xx, a SOAP fault, a business rejection
        return EventType.PROCESSING_ERROR_ALARM, ProbableCause.APPLICATION_SUBSYSTEM_FAILURE
    return EventType.PROCESSING_ERROR_ALARM, ProbableCause.SOFTWARE_ERROR


class Saga:
    """Steps, compensations and parking for one process run."""

    def __init__(
        self,
        *,
        process: str,
        order_id: str | None,
        policies: ProcessPolicies,
        stop_requested: Callable[[], bool],
    ) -> None:
        self.process = process
        self.order_id = order_id
        self.policies = policies
        self.stop_requested = stop_requested
        self.current_step: str | None = None
        self.current_system: str | None = None
        self.compensating = False
        self.parked: ParkedStep | None = None
        self._compensations: list[_Compensation] = []
        self._decision: DeadLetterDecision | None = None
        #: One dead letter per step incident: a retried step that fails again re-opens it.
        self._letters: dict[str, str] = {}
        #: Alarms raised and not cleared, by kind: a clear repeats what it clears.
        self.active_alarms: dict[str, RaiseAlarmInput] = {}
        #: The last alarm being sent; each waits for the one before, so the NMS sees a raise
        #: before its clear.
        self._alarm_sending: asyncio.Task[None] | None = None
        self._alarms_enabled: bool | None = None

    @property
    def compensations_pending(self) -> int:
        return len(self._compensations)

    # --- activity options -----------------------------------------------------------------

    def options(self, system: str) -> dict[str, Any]:
        """Task queue, timeouts and retry policy of one system's activities."""
        queue = workflow.info().task_queue
        # Each outside system has its own task queue, so it can be rate-limited on its own.
        options: dict[str, Any] = {"task_queue": queue if system == "hub" else f"{queue}.{system}"}
        policy = self.policies.systems.get(system)
        if policy is None:
            return {**options, "start_to_close_timeout": timedelta(seconds=30)}
        return {**options, **policy_options(policy)}

    async def record(self, activity: Callable[..., Awaitable[Any]], arg: Any, summary: str) -> Any:
        """A write to the hub's own database (retried without limit: it is our store)."""
        return await workflow.execute_activity_method(
            activity, arg, summary=summary, **self.options("hub")
        )

    # --- steps ----------------------------------------------------------------------------

    async def call(
        self,
        step: str,
        system: str,
        activity: Callable[..., Awaitable[Any]],
        arg: Any = None,
        *,
        cancellable: bool = True,
        skippable: bool = False,
        skip_result: Any = None,
        compensation: bool = False,
        **options: Any,
    ) -> Any:
        """Run one step; park it when it cannot go on alone. Raises ``ActivityError`` for a
        failure that does not park, :class:`StepAborted`, or :class:`SagaCancelled`.

        ``options`` override the system's activity options (a longer timeout, a heartbeat)."""
        first_attempt = workflow.now()
        while True:
            if cancellable and self.stop_requested():
                raise SagaCancelled()
            self.current_step, self.current_system = step, system
            workflow.set_current_details(f"calling **{system}**: `{step}`")
            try:
                result = await workflow.execute_activity_method(
                    activity,
                    args=[] if arg is None else [arg],
                    summary=f"{'compensate ' if compensation else ''}{system}: {step}",
                    **{**self.options(system), **options},
                )
            except ActivityError as err:
                if not parkable(err):
                    if not compensation:  # after a retry: the process reports its failure
                        self.clear_alarm(
                            self._park_alarm_kind(step, False), f"{step} failed: {describe(err)}"
                        )
                    raise
                decision = await self._park(
                    step,
                    system,
                    activity,
                    arg,
                    err,
                    first_attempt,
                    skippable=skippable,
                    compensation=compensation,
                    cancellable=cancellable,
                )
                if decision.action == DeadLetterAction.RETRY:
                    if decision.input:
                        arg = dataclasses.replace(arg, **decision.input)
                    continue
                if decision.action == DeadLetterAction.SKIP:
                    return skip_result
                raise StepAborted(step, describe(err), decision.decided_by) from err
            if step in self._letters:
                await self._close_letter(step, DeadLetterStatus.RESOLVED)
                self.clear_alarm(
                    self._park_alarm_kind(step, compensation), f"{step} retried successfully"
                )
            return result

    def push(
        self, step: str, system: str, activity: Callable[..., Awaitable[Any]], arg: Any
    ) -> None:
        """Remember how to undo a step that has succeeded."""
        self._compensations.append(_Compensation(step, system, activity, arg))

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
                    compensation.system,
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
                self.raise_alarm(
                    self._park_alarm_kind(compensation.step, True),
                    PerceivedSeverity.CRITICAL,
                    EventType.PROCESSING_ERROR_ALARM,
                    ProbableCause.DATABASE_INCONSISTENCY,
                    f"compensation given up, repair by hand: {failure}",
                    step=compensation.step,
                    system=compensation.system,
                )
        return failures

    # --- parking --------------------------------------------------------------------------

    async def _park(
        self,
        step: str,
        system: str,
        activity: Callable[..., Awaitable[Any]],
        arg: Any,
        err: ActivityError,
        first_attempt: datetime,
        *,
        skippable: bool,
        compensation: bool,
        cancellable: bool,
    ) -> DeadLetterDecision:
        info = workflow.info()
        letter_id = self._letters.setdefault(step, f"dl-{workflow.uuid4().hex}")
        cause = _cause(err)
        details = cause.details[0] if cause and cause.details else {}
        details = details if isinstance(details, dict) else {}
        now = workflow.now()
        deadline = now + timedelta(seconds=self.policies.park_timeout)
        error = describe(err)
        await self.record(
            DeadLetterStore.park,
            ParkInput(
                id=letter_id,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                process=self.process,
                order_id=self.order_id,
                step=step,
                system=system,
                activity=activity_name(activity),
                compensation=compensation,
                skippable=skippable,
                input=(
                    dataclasses.asdict(arg)
                    if dataclasses.is_dataclass(arg) and not isinstance(arg, type)
                    else {}
                ),
                error_type=(cause.type or "ApplicationError")
                if cause
                else type(err.cause).__name__,
                last_error=error,
                attempts=int(details.get("attempt") or 0),
                first_failure_at=first_attempt,
                last_failure_at=(
                    datetime.fromisoformat(details["failed_at"]) if "failed_at" in details else now
                ),
                deadline=deadline,
            ),
            summary=f"hub: park {step}",
        )
        self.parked = ParkedStep(
            letter_id, step, system, skippable, compensation, error, deadline, arg
        )
        set_hub_status(sa.HubStatus.PARKED)
        workflow.set_current_details(f"**parked** at `{step}` ({letter_id}): {error}")
        workflow.logger.warning("step parked", extra={"step": step, "dead_letter": letter_id})
        alarm = self._park_alarm_kind(step, compensation)
        if alarm not in self.active_alarms:  # a retry that failed again: the NMS knows already
            self.raise_alarm(
                alarm,
                PerceivedSeverity.CRITICAL if compensation else PerceivedSeverity.MAJOR,
                *alarm_cause(err),
                f"{'compensation ' if compensation else ''}{step} parked as {letter_id}, "
                f"waits for an operator: {error}",
                step=step,
                system=system,
            )
        cancelled = False
        try:
            await workflow.wait_condition(
                lambda: self._decision is not None or (cancellable and self.stop_requested()),
                timeout=timedelta(seconds=self.policies.park_timeout),
            )
        except TimeoutError:
            decision = DeadLetterDecision(
                letter_id, DeadLetterAction.ABORT, "hub: park deadline passed"
            )
            status = DeadLetterStatus.EXPIRED
        else:
            if self._decision is None:  # asked to stop while parked
                cancelled = True
                decision = DeadLetterDecision(letter_id, DeadLetterAction.ABORT, "cancel request")
            else:
                decision = self._decision
            status = {
                DeadLetterAction.RETRY: DeadLetterStatus.RETRYING,
                DeadLetterAction.SKIP: DeadLetterStatus.SKIPPED,
                DeadLetterAction.ABORT: DeadLetterStatus.ABORTED,
            }[DeadLetterAction(decision.action)]
        self._decision = None
        self.parked = None
        await self.record(
            DeadLetterStore.update,
            DeadLetterUpdate(
                id=letter_id,
                status=status,
                decision=decision.action,
                decided_by=decision.decided_by,
                decided_at=workflow.now(),
                reason=decision.reason,
            ),
            summary=f"hub: {decision.action} {step}",
        )
        if status != DeadLetterStatus.RETRYING:
            self._letters.pop(step, None)
        if status == DeadLetterStatus.SKIPPED:
            self.clear_alarm(alarm, f"{step} skipped by {decision.decided_by}")
        elif status != DeadLetterStatus.RETRYING and not compensation:
            # The process goes on to compensate; how it ends is reported on its own. An
            # aborted compensation stays raised: compensate() reports it as given up.
            self.clear_alarm(alarm, f"{step} aborted by {decision.decided_by}")
        set_hub_status(sa.HubStatus.COMPENSATING if self.compensating else sa.HubStatus.RUNNING)
        if cancelled:
            raise SagaCancelled()
        return decision

    async def _close_letter(self, step: str, status: DeadLetterStatus) -> None:
        letter_id = self._letters.pop(step)
        await self.record(
            DeadLetterStore.update,
            DeadLetterUpdate(id=letter_id, status=status),
            summary=f"hub: {status.value} {step}",
        )

    # --- alarms ---------------------------------------------------------------------------

    def managed_object(self, step: str | None = None, system: str | None = None) -> str:
        """X.733 managed object: what the alarm is about, most specific last."""
        parts = [
            f"order={self.order_id}"
            if self.order_id
            else f"{self.process}={workflow.info().workflow_id}"
        ]
        if step:
            parts.append(f"step={step}")
        if system:
            parts.append(f"system={system}")
        return "/".join(parts)

    @staticmethod
    def _park_alarm_kind(step: str, compensation: bool) -> str:
        return f"{'compensation' if compensation else 'dead-letter'}/{step}"

    def raise_alarm(
        self,
        kind: str,
        severity: PerceivedSeverity,
        event_type: EventType,
        probable_cause: ProbableCause,
        text: str,
        *,
        step: str | None = None,
        system: str | None = None,
    ) -> None:
        """Raise (or raise again, with new text) the alarm ``kind`` of this run; it is sent in
        the background. ``kind`` names the matter (``failed``, ``dead-letter/<step>``)."""
        alarm = RaiseAlarmInput(
            managed_object=self.managed_object(step, system),
            severity=severity,
            event_type=event_type,
            probable_cause=probable_cause,
            text=text,
            alarm_key=f"{workflow.info().workflow_id}/{kind}",
            event_time=workflow.now(),
        )
        self.active_alarms[kind] = alarm
        self._send_alarm(alarm)

    def clear_alarm(self, kind: str, text: str) -> None:
        """Clear the alarm ``kind`` if it is raised: same key, so same notification id."""
        raised = self.active_alarms.pop(kind, None)
        if raised is not None:
            self._send_alarm(
                dataclasses.replace(
                    raised, severity=PerceivedSeverity.CLEARED, text=text, event_time=workflow.now()
                )
            )

    def alarm_failed(self, err: BaseException, text: str) -> None:
        """The process's hook for its own failure: a ``major`` alarm naming the step (and
        system) it failed at, kind ``failed``. Call it before compensating."""
        self.raise_alarm(
            "failed",
            PerceivedSeverity.MAJOR,
            *alarm_cause(err),
            f"{self.process} failed: {text}",
            step=self.current_step,
            system=self.current_system,
        )

    async def settle_alarms(self) -> None:
        """Wait until the alarms raised so far are sent or given up. A process calls it before
        it returns: a workflow that closes abandons its activities, alarms among them."""
        while self._alarm_sending is not None and not self._alarm_sending.done():
            await self._alarm_sending

    def _send_alarm(self, alarm: RaiseAlarmInput) -> None:
        if self._alarms_enabled is None:
            # Asked at the first alarm, not at start: right after a local activity (the
            # policies) a replay has not yet been told of a patch marker a later workflow task
            # holds, and would answer False where the first run answered True.
            self._alarms_enabled = workflow.patched(ALARMS_PATCH)
        if not self._alarms_enabled:
            return
        self._alarm_sending = asyncio.create_task(self._deliver(self._alarm_sending, alarm))

    async def _deliver(self, previous: asyncio.Task[None] | None, alarm: RaiseAlarmInput) -> None:
        if previous is not None:
            await previous  # never raises: see below
        severity = PerceivedSeverity(alarm.severity).name.lower()
        try:
            await workflow.execute_activity_method(
                AlarmActivities.raise_alarm,
                alarm,
                summary=f"{ALARMS}: {severity} {alarm.managed_object}",
                **self._alarm_options(),
            )
        except ActivityError as err:
            # An alarm reports a failure; it must not become one. History keeps the attempts.
            workflow.logger.warning(
                "alarm not delivered",
                extra={"alarm_key": alarm.alarm_key, "severity": severity, "error": describe(err)},
            )

    def _alarm_options(self) -> dict[str, Any]:
        policy = self.policies.systems.get(ALARMS) or ALARM_FALLBACK_POLICY
        if not policy.maximum_attempts and not policy.schedule_to_close:
            policy = dataclasses.replace(policy, maximum_attempts=3)  # never retry forever
        return {"task_queue": f"{workflow.info().task_queue}.{ALARMS}", **policy_options(policy)}

    # --- the decide update ----------------------------------------------------------------

    def validate_decision(self, decision: DeadLetterDecision) -> None:
        parked = self.parked
        if parked is None or parked.dead_letter_id != decision.dead_letter_id:
            raise ApplicationError(
                f"not parked on dead letter {decision.dead_letter_id}", type="NotParked"
            )
        if decision.action not in {a.value for a in DeadLetterAction}:
            raise ApplicationError(f"unknown action {decision.action!r}", type="BadDecision")
        if decision.action == DeadLetterAction.SKIP and not parked.skippable:
            raise ApplicationError(
                f"step {parked.step} cannot be skipped: later steps need its result",
                type="NotSkippable",
            )
        if decision.input:
            if decision.action != DeadLetterAction.RETRY:
                raise ApplicationError("corrected input goes with retry only", type="BadDecision")
            fields = (
                {f.name: f for f in dataclasses.fields(parked.arg)}
                if dataclasses.is_dataclass(parked.arg)
                else {}
            )
            for name, value in decision.input.items():
                if name not in fields or name.lower() in SECRET_FIELDS or name == "idempotency_key":
                    allowed = sorted(
                        n
                        for n in fields
                        if n.lower() not in SECRET_FIELDS and n != "idempotency_key"
                    )
                    raise ApplicationError(
                        f"input field {name!r} cannot be corrected; fields: {', '.join(allowed)}",
                        type="BadDecision",
                    )
                if not isinstance(value, str | int | float | bool):
                    raise ApplicationError(
                        f"input field {name!r}: only plain values can be corrected",
                        type="BadDecision",
                    )

    def accept_decision(self, decision: DeadLetterDecision) -> DecisionResult:
        assert self.parked is not None
        self._decision = decision
        return DecisionResult(decision.dead_letter_id, decision.action, self.parked.step)


def policy_options(policy: SystemPolicy) -> dict[str, Any]:
    """Timeouts and retry policy of activity options, from a system's policy."""
    return {
        "start_to_close_timeout": timedelta(seconds=policy.attempt_timeout),
        "schedule_to_close_timeout": (
            timedelta(seconds=policy.schedule_to_close) if policy.schedule_to_close else None
        ),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=policy.initial_interval),
            backoff_coefficient=policy.backoff_coefficient,
            maximum_interval=timedelta(seconds=policy.maximum_interval),
            maximum_attempts=policy.maximum_attempts,
        ),
    }


def set_hub_status(status: sa.HubStatus) -> None:
    workflow.upsert_search_attributes([sa.HUB_STATUS.value_set(status.value)])
