"""Parking: a step that cannot go on alone waits for an operator's decision.

When a step exhausts its retries (an outage longer than the retry budget) or fails for a
technical reason a person must repair (credentials refused), it *parks*: a dead letter is
written, the process shows ``parked``, a ``major`` alarm is raised (``critical`` for a
compensation), and a human task offers the operator the decisions:

- ``retry``: run the step again, possibly with corrected input fields (the task's form),
  except a field whose value other systems hold too (:func:`held_elsewhere`): corrected, it
  would reach this step's system alone and leave the systems disagreeing, so it is refused,
  naming them;
- ``skip``: treat the step as done by hand (only where the step allows it);
- ``abort``: give up; the process compensates and fails.

The decision arrives either as the task's completion (``/tasks``, one inbox for every kind of
decision) or as the ``decide`` update (``/deadLetters``); both go through a validator, so a
refused decision never reaches history. A park has a deadline (setting ``park_timeout``): the
task's due time, when it expires with ``abort``.

A process that shows people its own state (an order's TMF641 ``held``) hears of both ends of a
park through :class:`ParkListener`: ``on_park`` once the dead letter is written, ``on_resume``
once the decision is taken (or the process cancelled), before the step goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from workflows.runtime.alarms import Alarms
from workflows.runtime.failures import ProcessCancelled, alarm_cause, application_cause, describe
from workflows.runtime.status import set_hub_status
from workflows.runtime.tasks import (
    ANY_GROUP,
    FIELD_TYPES,
    FormField,
    HumanTasks,
    TaskDecision,
    TaskSpec,
)

with workflow.unsafe.imports_passed_through():
    from activities.dead_letters import DeadLetterStore, DeadLetterUpdate, ParkInput
    from activities.definitions import name_of, system_of
    from activities.policies import ProcessPolicies
    from hub import search_attributes as sa
    from hub.alarms import PerceivedSeverity
    from hub.models import DeadLetterAction, DeadLetterStatus
    from hub.redact import SECRET_FIELDS

#: ``workflow.patched`` id: a park is a human task too. Runs parked before it replay without.
PARK_TASKS_PATCH = "park-tasks"
#: The group that repairs parked steps unless the settings name another.
OPERATORS_GROUP = "ops"
#: Fields of a step's input an operator may never correct.
NOT_CORRECTABLE = frozenset({"idempotency_key"})


@dataclass
class DeadLetterDecision:
    """An operator's decision on a parked step (the ``decide`` update's argument)."""

    dead_letter_id: str
    action: str  # retry | skip | abort
    decided_by: str
    reason: str | None = None
    #: For ``retry``: fields of the step's input to replace (scalars only, never keys).
    input: dict[str, Any] | None = None
    #: The decider's groups, as the API authenticated them; None: the caller's permission to
    #: decide dead letters is enough, whatever its groups (``/deadLetters``).
    groups: list[str] | None = None


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
    #: The park is a human task (every park since the tasks patch); its id once it exists.
    as_task: bool = False
    task_id: str | None = None
    #: Fields a retry may not correct because other systems hold them, with the reason.
    held_elsewhere: dict[str, str] = field(default_factory=dict)


@dataclass
class DoneStep:
    """A step that has run (or was skipped: done by hand): its system holds its input."""

    step: str
    system: str
    arg: Any


def park_alarm_kind(step: str, compensation: bool) -> str:
    return f"{'compensation' if compensation else 'dead-letter'}/{step}"


def correctable_fields(arg: Any) -> list[FormField]:
    """The fields of a step's input an operator may correct on retry: plain values, never a
    secret or the idempotency key."""
    if not dataclasses.is_dataclass(arg) or isinstance(arg, type):
        return []
    fields = []
    for item in dataclasses.fields(arg):
        if item.name.lower() in SECRET_FIELDS or item.name in NOT_CORRECTABLE:
            continue
        kind = _VALUE_KINDS.get(type(getattr(arg, item.name)))
        if kind is None:  # unset: what the annotation says it may hold
            annotation = str(item.type).replace(" ", "").split("|")
            kind = next((_ANNOTATION_KINDS[a] for a in annotation if a in _ANNOTATION_KINDS), None)
        if kind is not None:
            fields.append(FormField(item.name, kind))
    return fields


def held_elsewhere(
    step: str,
    system: str,
    arg: Any,
    done: Sequence[DoneStep],
    shared: Mapping[str, Sequence[Callable[..., Any]]],
) -> dict[str, str]:
    """The correctable fields of a parked step's input that other systems hold too, each with
    the refusal an operator reads: a field an earlier step (``done``) had with the same value,
    or one the process declares shared (``shared``: field -> the activities of the other steps
    whose systems hold its value, earlier or later)."""
    refused = {}
    for item in correctable_fields(arg):
        value = getattr(arg, item.name)
        holders: dict[str, str] = {}
        # A flag says how to call, not what a system holds; an empty value holds nothing.
        if value is not None and value != "" and not isinstance(value, bool):
            for earlier in done:
                if earlier.step != step and getattr(earlier.arg, item.name, None) == value:
                    holders.setdefault(earlier.system, f"{earlier.system} ({earlier.step})")
        for activity in shared.get(item.name, ()):
            other = system_of(activity)
            holders.setdefault(other, f"{other} ({name_of(activity)})")
        if holders:
            refused[item.name] = (
                f"input field {item.name!r} cannot be corrected here: "
                f"{', '.join(holders.values())} hold(s) its value too, and a correction would "
                f"reach {system} alone and leave the systems disagreeing. Retry without it, or "
                "abort and start again with the corrected value"
            )
    return refused


_VALUE_KINDS = {str: "string", bool: "boolean", int: "integer", float: "number"}
_ANNOTATION_KINDS = {"str": "string", "bool": "boolean", "int": "integer", "float": "number"}


#: What hears that a step parked, or that its park ended (:class:`Parking`'s hooks).
ParkListener = Callable[[ParkedStep], Awaitable[None]]


class Parking:
    """The park of one run's steps: at most one parked step at a time."""

    def __init__(
        self,
        *,
        process: str,
        reference: str | None,
        policies: ProcessPolicies,
        alarms: Alarms,
        tasks: HumanTasks,
        record: Callable[[Callable[..., Awaitable[Any]], Any, str], Awaitable[Any]],
        on_park: ParkListener | None = None,
        on_resume: ParkListener | None = None,
    ) -> None:
        self.process = process
        self.on_park = on_park
        self.on_resume = on_resume
        self.reference = reference
        self.policies = policies
        self.alarms = alarms
        self.tasks = tasks
        self._record = record
        self.parked: ParkedStep | None = None
        self._decision: DeadLetterDecision | None = None
        #: One dead letter per step incident: a retried step that fails again re-opens it.
        self.letters: dict[str, str] = {}

    async def park(
        self,
        step: str,
        activity: Callable[..., Awaitable[Any]],
        arg: Any,
        err: ActivityError,
        first_attempt: datetime,
        *,
        skippable: bool,
        compensation: bool,
        cancellable: bool,
        stop_requested: Callable[[], bool],
        resume_status: sa.HubStatus,
        refused_fields: dict[str, str] | None = None,
        earlier_attempts: int = 0,
    ) -> DeadLetterDecision:
        """Write the dead letter, raise the alarm, wait for the decision, record it.

        ``refused_fields``: fields a retry may not correct (:func:`held_elsewhere`);
        ``earlier_attempts``: attempts before ``err``'s retries (an eager first attempt)."""
        refused_fields = dict(refused_fields or {})
        info = workflow.info()
        system = system_of(activity)
        letter_id = self.letters.setdefault(step, f"dl-{workflow.uuid4().hex}")
        cause = application_cause(err)
        details = cause.details[0] if cause and cause.details else {}
        details = details if isinstance(details, dict) else {}
        now = workflow.now()
        deadline = now + timedelta(seconds=self.policies.park_timeout)
        error = describe(err)
        step_input = (
            dataclasses.asdict(arg)
            if dataclasses.is_dataclass(arg) and not isinstance(arg, type)
            else {}
        )
        await self._record(
            DeadLetterStore.park,
            ParkInput(
                id=letter_id,
                workflow_id=info.workflow_id,
                run_id=info.run_id,
                process=self.process,
                order_id=self.reference,
                step=step,
                system=system,
                activity=name_of(activity),
                compensation=compensation,
                skippable=skippable,
                input=step_input,
                error_type=(cause.type or "ApplicationError")
                if cause
                else type(err.cause).__name__,
                last_error=error,
                attempts=int(details.get("attempt") or 0) + earlier_attempts,
                first_failure_at=first_attempt,
                last_failure_at=(
                    datetime.fromisoformat(details["failed_at"]) if "failed_at" in details else now
                ),
                deadline=deadline,
            ),
            f"hub: park {step}",
        )
        as_task = workflow.patched(PARK_TASKS_PATCH)
        self.parked = ParkedStep(
            letter_id,
            step,
            system,
            skippable,
            compensation,
            error,
            deadline,
            arg,
            as_task=as_task,
            held_elsewhere=refused_fields,
        )
        set_hub_status(sa.HubStatus.PARKED)
        details = f"**parked** at `{step}` ({letter_id}): {error}"
        workflow.set_current_details(details)
        workflow.logger.warning("step parked", extra={"step": step, "dead_letter": letter_id})
        alarm = park_alarm_kind(step, compensation)
        if alarm not in self.alarms.active:  # a retry that failed again: the NMS knows already
            self.alarms.raise_alarm(
                alarm,
                PerceivedSeverity.CRITICAL if compensation else PerceivedSeverity.MAJOR,
                *alarm_cause(err),
                f"{'compensation ' if compensation else ''}{step} parked as {letter_id}, "
                f"waits for an operator: {error}",
                step=step,
                system=system,
            )
        parked = self.parked
        assert parked is not None
        if self.on_park is not None:
            await self.on_park(parked)

        def stopping() -> bool:
            return cancellable and stop_requested()

        cancelled = False
        status = DeadLetterStatus.PARKED
        if as_task:
            decision, status, cancelled = await self._wait_for_task(
                letter_id,
                step,
                system,
                arg,
                step_input,
                error,
                skippable,
                compensation,
                stopping,
                details,
                refused_fields,
            )
        else:  # parked before parks were tasks: the decide update and the deadline alone
            try:
                await workflow.wait_condition(
                    lambda: self._decision is not None or stopping(),
                    timeout=timedelta(seconds=self.policies.park_timeout),
                )
            except TimeoutError:
                decision = DeadLetterDecision(
                    letter_id, DeadLetterAction.ABORT, "hub: park deadline passed"
                )
                status = DeadLetterStatus.EXPIRED
            else:
                if self._decision is None:
                    cancelled = True
                    decision = DeadLetterDecision(
                        letter_id, DeadLetterAction.ABORT, "cancel request"
                    )
                else:
                    decision = self._decision
        if status == DeadLetterStatus.PARKED:
            status = {
                DeadLetterAction.RETRY: DeadLetterStatus.RETRYING,
                DeadLetterAction.SKIP: DeadLetterStatus.SKIPPED,
                DeadLetterAction.ABORT: DeadLetterStatus.ABORTED,
            }[DeadLetterAction(decision.action)]
        self._decision = None
        self.parked = None
        await self._record(
            DeadLetterStore.update,
            DeadLetterUpdate(
                id=letter_id,
                status=status,
                decision=decision.action,
                decided_by=decision.decided_by,
                decided_at=workflow.now(),
                reason=decision.reason,
            ),
            f"hub: {decision.action} {step}",
        )
        if status != DeadLetterStatus.RETRYING:
            self.letters.pop(step, None)
        if status == DeadLetterStatus.SKIPPED:
            self.alarms.clear_alarm(alarm, f"{step} skipped by {decision.decided_by}")
        elif status != DeadLetterStatus.RETRYING and not compensation:
            # The process goes on to compensate; how it ends is reported on its own. An
            # aborted compensation stays raised: the compensation reports it as given up.
            self.alarms.clear_alarm(alarm, f"{step} aborted by {decision.decided_by}")
        if self.on_resume is not None:
            await self.on_resume(parked)
        set_hub_status(resume_status)
        if cancelled:
            raise ProcessCancelled()
        return decision

    async def _wait_for_task(
        self,
        letter_id: str,
        step: str,
        system: str,
        arg: Any,
        step_input: dict[str, Any],
        error: str,
        skippable: bool,
        compensation: bool,
        stopping: Callable[[], bool],
        details: str,
        refused_fields: dict[str, str],
    ) -> tuple[DeadLetterDecision, DeadLetterStatus, bool]:
        """The park as a human task in the operators' inbox; ``decide`` completes it too."""
        decisions = [DeadLetterAction.RETRY.value]
        if skippable:
            decisions.append(DeadLetterAction.SKIP.value)
        decisions.append(DeadLetterAction.ABORT.value)
        what = "compensation " if compensation else ""
        assert self.parked is not None
        # Due at the dead letter's deadline, which counts from the park, not from this task:
        # recording the park (in the hub database) may have taken a while.
        due_after = max(0.0, (self.parked.deadline - workflow.now()).total_seconds())
        spec = TaskSpec(
            kind="dead-letter",
            title=f"Repair {what}{step} ({system})",
            description=(
                f"The {what}step {step} of {self.process} cannot go on alone: {error}. "
                "Retry it (correcting its input if that is what is wrong), "
                + ("skip it if it was done by hand, " if skippable else "")
                + "or abort the process."
            ),
            decisions=decisions,
            candidate_groups=list(self.policies.operator_groups or [OPERATORS_GROUP]),
            reference=self.reference or workflow.info().workflow_id,
            form=[f for f in correctable_fields(arg) if f.name not in refused_fields],
            form_decisions=[DeadLetterAction.RETRY.value],
            priority=80 if compensation else 70,
            due_after=due_after,
            expiry_decision=DeadLetterAction.ABORT.value,
            evidence={
                "deadLetterId": letter_id,
                "step": step,
                "system": system,
                "compensation": compensation,
                "error": error,
                "input": step_input,
                "heldElsewhere": sorted(refused_fields),
            },
            dead_letter_id=letter_id,
            refused_fields=refused_fields,
        )
        try:
            task = await self.tasks.open(spec, waiting=sa.HubStatus.PARKED, details=details)
            assert self.parked is not None
            self.parked.task_id = task.id
            outcome = await self.tasks.outcome(task.id, stop=stopping)
        except ProcessCancelled:
            return (
                DeadLetterDecision(letter_id, DeadLetterAction.ABORT, "cancel request"),
                DeadLetterStatus.ABORTED,
                True,
            )
        except (asyncio.CancelledError, ActivityError) as err:
            if isinstance(err, ActivityError) and not is_cancelled_exception(err):
                raise
            # Cancelled through Temporal (while the task was being recorded, the cancelled
            # record is an ActivityError): the inbox and the dead letter must say so too.
            task_id = self.tasks.task_of_dead_letter(letter_id)
            if task_id is not None:
                await self.tasks.cancel(task_id, "the process was cancelled")
            await self._record(
                DeadLetterStore.update,
                DeadLetterUpdate(
                    id=letter_id,
                    status=DeadLetterStatus.ABORTED,
                    decision=DeadLetterAction.ABORT.value,
                    decided_by="cancel request",
                    decided_at=workflow.now(),
                ),
                f"hub: abort {step}",
            )
            self.letters.pop(step, None)
            parked, self.parked = self.parked, None
            self.alarms.clear_alarm(
                park_alarm_kind(step, compensation), f"{step}: the process was cancelled"
            )
            if self.on_resume is not None and parked is not None:
                await self.on_resume(parked)
            raise
        decision = DeadLetterDecision(
            letter_id,
            outcome.decision,
            outcome.decided_by if not outcome.expired else "hub: park deadline passed",
            reason=outcome.comment,
            input=outcome.fields or None,
        )
        return (
            decision,
            DeadLetterStatus.EXPIRED if outcome.expired else DeadLetterStatus.PARKED,
            False,
        )

    async def close_letter(self, step: str, status: DeadLetterStatus) -> None:
        """Close the dead letter of a step that succeeded on retry."""
        letter_id = self.letters.pop(step)
        await self._record(
            DeadLetterStore.update,
            DeadLetterUpdate(id=letter_id, status=status),
            f"hub: {status.value} {step}",
        )

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
            held = sorted(decision.input.keys() & parked.held_elsewhere.keys())
            if held:
                raise ApplicationError(parked.held_elsewhere[held[0]], type="HeldElsewhere")
            allowed = {f.name: f for f in correctable_fields(parked.arg)}
            for name, value in decision.input.items():
                if name not in allowed:
                    raise ApplicationError(
                        f"input field {name!r} cannot be corrected; fields: "
                        f"{', '.join(sorted(allowed))}",
                        type="BadDecision",
                    )
                if not isinstance(value, str | int | float | bool):
                    raise ApplicationError(
                        f"input field {name!r}: only plain values can be corrected",
                        type="BadDecision",
                    )
                types = FIELD_TYPES[allowed[name].type]
                if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                    raise ApplicationError(
                        f"input field {name!r} must be of type {allowed[name].type}",
                        type="BadDecision",
                    )
        # The task exists before its record lands (and ``parked.task_id`` is set): a decision
        # in between is checked against it all the same.
        task_id = parked.task_id or self.tasks.task_of_dead_letter(parked.dead_letter_id)
        if task_id is not None:
            self.tasks.validate_decision(self._as_task_decision(decision, task_id))

    async def accept_decision(self, decision: DeadLetterDecision) -> DecisionResult:
        parked = self.parked
        assert parked is not None
        step = parked.step
        if parked.as_task:
            # A decision that came while the task was being recorded waits for it.
            await workflow.wait_condition(lambda: parked.task_id is not None)
            assert parked.task_id is not None
            await self.tasks.complete(self._as_task_decision(decision, parked.task_id))
        else:
            self._decision = decision
        return DecisionResult(decision.dead_letter_id, decision.action, step)

    @staticmethod
    def _as_task_decision(decision: DeadLetterDecision, task_id: str) -> TaskDecision:
        return TaskDecision(
            task_id=task_id,
            decision=decision.action,
            decided_by=decision.decided_by,
            groups=[ANY_GROUP] if decision.groups is None else list(decision.groups),
            comment=decision.reason,
            fields=dict(decision.input) if decision.input else None,
        )
