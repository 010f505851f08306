"""Human tasks: a decision a process waits for from a person (like a BPMN user task).

A process asks with :meth:`HumanTasks.ask` and a :class:`TaskSpec` (title, the decisions it
offers, an optional form, candidate groups, priority, four-eyes exclusions, and the SLA times);
the task is recorded in the hub database for the inbox (``/tasks``) and the workflow waits.
People act on it through workflow updates whose validators refuse what may not be done, so a
refused claim or decision is an immediate error to the caller and never a change in history:

- **claim / unclaim**: a candidate (a member of a candidate group) takes the task, or gives it
  back; only the assignee may decide a claimed task;
- **complete**: a decision the task offers, the form's required fields present and typed, a
  comment where the decision needs one, no field the task refuses (``refused_fields``), and
  never by an identity the task excludes.

The SLA runs on durable timers, so it survives worker crashes and restarts: at the follow-up
time a ``warning`` alarm reminds; at the escalation time the task moves to the escalation groups
and raises ``major``; at the due time it expires with the outcome its process chose (reject,
abort; never approve by default) and raises ``minor``. Completing, cancelling or expiring the
task clears its reminder and escalation alarms; the expiry alarm is cleared when the process
has acted on it (:meth:`HumanTasks.settle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from workflows.runtime.alarms import Alarms
from workflows.runtime.failures import ProcessCancelled
from workflows.runtime.status import set_hub_status, set_open_task

with workflow.unsafe.imports_passed_through():
    from activities.tasks import TaskRecord
    from hub import search_attributes as sa
    from hub.alarms import EventType, PerceivedSeverity, ProbableCause
    from hub.models import TaskState

#: Types a form field may have, and the Python values each accepts.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}
#: The group name that stands for every group (an operator with every role).
ANY_GROUP = "*"
#: Who expiry is recorded as having decided.
EXPIRY_DECIDER = "hub: due time passed"


@dataclass
class FormField:
    """A field the decider fills in. ``type``: string, integer, number or boolean."""

    name: str
    type: str = "string"
    required: bool = False
    label: str | None = None
    #: The one value the field may have when given (an acknowledgement must be ``True``).
    equals: Any = None
    #: A string field's value must match it whole (``re.fullmatch``).
    pattern: str | None = None
    #: The least value a number field may have.
    minimum: float | None = None


@dataclass
class TaskSpec:
    """What a process asks a person. Times are seconds after the task is created."""

    kind: str
    title: str
    decisions: list[str]
    candidate_groups: list[str]
    description: str = ""
    reference: str | None = None
    form: list[FormField] = field(default_factory=list)
    #: The decisions the form's fields go with (empty: every decision).
    form_decisions: list[str] = field(default_factory=list)
    assignee: str | None = None
    #: 0 (lowest) to 100; Camunda's default is 50.
    priority: int = 50
    follow_up_after: float | None = None
    escalate_after: float | None = None
    escalation_groups: list[str] = field(default_factory=list)
    due_after: float | None = None
    #: The outcome at the due time; required with ``due_after``.
    expiry_decision: str | None = None
    #: Identities that must not claim or decide (four-eyes).
    excluded_deciders: list[str] = field(default_factory=list)
    #: Decisions that need a comment (a rejection says why).
    comment_required: list[str] = field(default_factory=list)
    #: What the decider sees: figures, findings, the parked step's error and input.
    evidence: dict[str, Any] = field(default_factory=dict)
    dead_letter_id: str | None = None
    #: Fields the form leaves out on purpose, each with the reason a decision that sets it
    #: is refused (a parked step's field other systems hold too).
    refused_fields: dict[str, str] = field(default_factory=dict)


@dataclass
class TaskDecision:
    """The ``complete_task`` update: who decides is the authenticated caller, set by the API."""

    task_id: str
    decision: str
    decided_by: str
    #: The decider's groups, as the API authenticated them.
    groups: list[str] = field(default_factory=list)
    comment: str | None = None
    fields: dict[str, Any] | None = None


@dataclass
class TaskClaim:
    """The ``claim_task`` and ``unclaim_task`` updates."""

    task_id: str
    who: str
    groups: list[str] = field(default_factory=list)


@dataclass
class TaskOutcome:
    task_id: str
    decision: str
    decided_by: str
    decided_at: datetime
    comment: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    #: The due time passed: ``decision`` is the process's expiry outcome.
    expired: bool = False


@dataclass
class TaskView:
    """A task as the ``open_tasks`` query and the claim updates answer it."""

    task_id: str
    kind: str
    title: str
    state: str
    decisions: list[str]
    candidate_groups: list[str]
    assignee: str | None
    due_at: datetime | None


@dataclass
class _Task:
    id: str
    spec: TaskSpec
    created_at: datetime
    candidate_groups: list[str]
    state: TaskState = TaskState.CREATED
    assignee: str | None = None
    escalated: bool = False
    version: int = 0
    outcome: TaskOutcome | None = None
    #: The version whose record has landed: an update answers once its change is recorded.
    recorded: int = 0

    def at(self, seconds: float | None) -> datetime | None:
        return self.created_at + timedelta(seconds=seconds) if seconds is not None else None

    def view(self) -> TaskView:
        return TaskView(
            self.id,
            self.spec.kind,
            self.spec.title,
            self.state.value,
            list(self.spec.decisions),
            list(self.candidate_groups),
            self.assignee,
            self.at(self.spec.due_after),
        )


def _refuse(message: str, kind: str = "TaskRefused") -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


class HumanTasks:
    """The open human tasks of one run, their SLA timers, and the updates that decide them."""

    def __init__(
        self,
        *,
        process: str,
        alarms: Alarms,
        record: Callable[[TaskRecord], Awaitable[None]],
    ) -> None:
        self.process = process
        self.alarms = alarms
        self._record_activity = record
        self._tasks: dict[str, _Task] = {}
        self._timers: list[asyncio.Task[None]] = []
        self._recording: asyncio.Task[None] | None = None

    # --- asking ---------------------------------------------------------------------------

    def open_tasks(self) -> list[TaskView]:
        return [task.view() for task in self._tasks.values() if task.state.is_open]

    async def ask(
        self,
        spec: TaskSpec,
        *,
        waiting: sa.HubStatus = sa.HubStatus.AWAITING_APPROVAL,
        stop: Callable[[], bool] | None = None,
    ) -> TaskOutcome:
        """Open a task and wait for its outcome (a decision, or expiry at the due time).

        ``stop`` is the process's cancel request: when it turns true the task is cancelled
        and :class:`ProcessCancelled` raised. A Temporal cancellation cancels it too."""
        before = set(self._tasks)
        try:
            task = await self.open(spec, waiting=waiting)
            return await self.outcome(task.id, stop=stop)
        except (asyncio.CancelledError, ActivityError) as err:
            if isinstance(err, ActivityError) and not is_cancelled_exception(err):
                raise
            # Cancelled, even while its record was being written (a cancelled activity).
            for task_id in set(self._tasks) - before:
                await self.cancel(task_id, "the process was cancelled")
            raise

    async def open(
        self,
        spec: TaskSpec,
        *,
        waiting: sa.HubStatus = sa.HubStatus.AWAITING_APPROVAL,
        details: str | None = None,
    ) -> _Task:
        """Create and record a task, and start its SLA timers; :meth:`outcome` waits for it.
        ``details``: the run's current details meanwhile (default: the task's title)."""
        if spec.due_after is not None and spec.expiry_decision not in spec.decisions:
            raise ValueError("a task with a due time needs an expiry decision it offers")
        task = _Task(
            id=f"task-{workflow.uuid4().hex}",
            spec=spec,
            created_at=workflow.now(),
            candidate_groups=list(spec.candidate_groups),
            assignee=spec.assignee,
        )
        if task.assignee:
            task.state = TaskState.ASSIGNED
        self._tasks[task.id] = task
        await self._change(task, "created", None)
        set_hub_status(waiting)
        set_open_task(task.id)
        workflow.set_current_details(
            details or f"**waiting for a person**: {spec.title} (`{task.id}`)"
        )
        self._timers.append(asyncio.create_task(self._sla(task)))
        return task

    async def outcome(self, task_id: str, *, stop: Callable[[], bool] | None = None) -> TaskOutcome:
        task = self._tasks[task_id]
        await workflow.wait_condition(
            lambda: task.outcome is not None or (stop is not None and stop())
        )
        if task.outcome is None:
            await self.cancel(task.id, "the process was asked to stop")
            raise ProcessCancelled()
        await workflow.wait_condition(lambda: task.recorded >= task.version)
        return task.outcome

    async def cancel(self, task_id: str, reason: str) -> None:
        """Close an open task without a decision (the process no longer needs it)."""
        task = self._tasks[task_id]
        if not task.state.is_open:
            return
        task.state = TaskState.CANCELLED
        await self._change(task, "cancelled", None, {"reason": reason})
        self._closed(task, f"cancelled: {reason}")

    async def settle(self) -> None:
        """Wait for the task records in flight; clear the expiry alarms (acted upon)."""
        while self._recording is not None and not self._recording.done():
            await self._recording
        self.alarms.clear_matching("task/", "the process has acted on the task")

    # --- updates --------------------------------------------------------------------------

    def task_of_dead_letter(self, dead_letter_id: str) -> str | None:
        """The open task of a parked step's dead letter, recorded or not yet."""
        return next(
            (
                task.id
                for task in self._tasks.values()
                if task.spec.dead_letter_id == dead_letter_id and task.state.is_open
            ),
            None,
        )

    def _open_task(self, task_id: str) -> _Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise _refuse(f"no task {task_id} in this process", "NoSuchTask")
        if not task.state.is_open:
            raise _refuse(f"task {task_id} is {task.state.value}", "TaskClosed")
        return task

    @staticmethod
    def _check_candidate(task: _Task, who: str, groups: list[str]) -> None:
        if who in task.spec.excluded_deciders:
            raise _refuse(
                f"{who} may not decide task {task.id}: a second person must (four-eyes)",
                "FourEyes",
            )
        if task.assignee and task.assignee != who:
            raise _refuse(f"task {task.id} is claimed by {task.assignee}", "TaskClaimed")
        candidate = ANY_GROUP in groups or bool(set(groups) & set(task.candidate_groups))
        if not task.assignee and not candidate:
            raise _refuse(
                f"{who} is in none of the task's groups ({', '.join(task.candidate_groups)})",
                "NotCandidate",
            )

    def validate_claim(self, claim: TaskClaim) -> None:
        task = self._open_task(claim.task_id)
        if task.assignee == claim.who:
            raise _refuse(f"task {task.id} is already claimed by {claim.who}", "TaskClaimed")
        self._check_candidate(task, claim.who, claim.groups)

    async def claim(self, claim: TaskClaim) -> TaskView:
        task = self._tasks[claim.task_id]
        task.assignee, task.state = claim.who, TaskState.ASSIGNED
        await self._change(task, "claimed", claim.who)
        return task.view()

    def validate_unclaim(self, claim: TaskClaim) -> None:
        task = self._open_task(claim.task_id)
        if task.assignee != claim.who:
            holder = f"claimed by {task.assignee}" if task.assignee else "not claimed"
            raise _refuse(f"task {task.id} is {holder}", "TaskClaimed")

    async def unclaim(self, claim: TaskClaim) -> TaskView:
        task = self._tasks[claim.task_id]
        task.assignee, task.state = None, TaskState.CREATED
        await self._change(task, "unclaimed", claim.who)
        return task.view()

    def validate_decision(self, decision: TaskDecision) -> None:
        task = self._open_task(decision.task_id)
        spec = task.spec
        if decision.decision not in spec.decisions:
            raise _refuse(
                f"decision {decision.decision!r} is not offered; choose one of "
                f"{', '.join(spec.decisions)}",
                "BadDecision",
            )
        self._check_candidate(task, decision.decided_by, decision.groups)
        if decision.decision in spec.comment_required and not (decision.comment or "").strip():
            raise _refuse(f"decision {decision.decision!r} needs a comment", "BadDecision")
        fields = decision.fields or {}
        if spec.form_decisions and decision.decision not in spec.form_decisions:
            # The form is not this decision's: none of its fields, required or not, apply.
            if fields:
                raise _refuse(
                    f"fields go with {', '.join(spec.form_decisions)} only", "BadDecision"
                )
            return
        refused = sorted(fields.keys() & spec.refused_fields.keys())
        if refused:
            raise _refuse(spec.refused_fields[refused[0]], "HeldElsewhere")
        form = {f.name: f for f in spec.form}
        unknown = sorted(set(fields) - form.keys())
        if unknown:
            offered = ", ".join(form) or "none"
            raise _refuse(
                f"field {unknown[0]!r} is not in the task's form (fields: {offered})",
                "BadDecision",
            )
        for name, definition in form.items():
            value = fields.get(name)
            if value is None:
                if definition.required:
                    raise _refuse(f"field {name!r} is required", "BadDecision")
                continue
            types = FIELD_TYPES.get(definition.type, (str,))
            if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
                raise _refuse(f"field {name!r} must be of type {definition.type}", "BadDecision")
            if definition.equals is not None and value != definition.equals:
                raise _refuse(
                    f"field {name!r} must be {json.dumps(definition.equals)}", "BadDecision"
                )
            if (
                definition.pattern is not None
                and isinstance(value, str)
                and not re.fullmatch(definition.pattern, value)
            ):
                raise _refuse(f"field {name!r} must match {definition.pattern}", "BadDecision")
            if (
                definition.minimum is not None
                and isinstance(value, int | float)
                and value < definition.minimum
            ):
                raise _refuse(
                    f"field {name!r} must be at least {definition.minimum:g}", "BadDecision"
                )

    async def complete(self, decision: TaskDecision) -> TaskOutcome:
        task = self._tasks[decision.task_id]
        task.outcome = TaskOutcome(
            task.id,
            decision.decision,
            decision.decided_by,
            workflow.now(),
            comment=decision.comment,
            fields=dict(decision.fields or {}),
        )
        task.assignee = task.assignee or decision.decided_by
        task.state = TaskState.COMPLETED
        await self._change(task, "completed", decision.decided_by)
        self._closed(task, f"decided {decision.decision} by {decision.decided_by}")
        return task.outcome

    # --- SLA ------------------------------------------------------------------------------

    async def _sla(self, task: _Task) -> None:
        spec = task.spec
        # Sorted by time alone: equal times keep this order (remind, escalate, expire); a tie
        # compared as whole tuples would compare the bound methods, a TypeError.
        steps: list[tuple[float, Callable[[_Task], Awaitable[None]]]] = sorted(
            (
                (seconds, action)
                for seconds, action in (
                    (spec.follow_up_after, self._remind),
                    (spec.escalate_after, self._escalate),
                    (spec.due_after, self._expire),
                )
                if seconds is not None
            ),
            key=lambda step: step[0],
        )
        for seconds, action in steps:
            moment = task.created_at + timedelta(seconds=seconds)
            wait = moment - workflow.now()
            if wait > timedelta(0):
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: not task.state.is_open, timeout=wait)
            if not task.state.is_open:
                return
            await action(task)

    def _managed_object(self, task: _Task) -> str:
        return f"{self.alarms.managed_object()}/task={task.id}"

    async def _remind(self, task: _Task) -> None:
        self.alarms.raise_alarm(
            f"task/{task.id}/follow-up",
            PerceivedSeverity.WARNING,
            EventType.PROCESSING_ERROR_ALARM,
            ProbableCause.THRESHOLD_CROSSED,
            f"task {task.id} waits for {', '.join(task.candidate_groups)}: {task.spec.title}",
            managed_object=self._managed_object(task),
        )
        await self._change(task, "reminded", None)

    async def _escalate(self, task: _Task) -> None:
        groups = task.spec.escalation_groups or task.candidate_groups
        task.candidate_groups = list(groups)
        task.escalated = True
        # The escalation groups decide now: a claim by the first group lapses.
        task.assignee, task.state = None, TaskState.CREATED
        self.alarms.raise_alarm(
            f"task/{task.id}/escalation",
            PerceivedSeverity.MAJOR,
            EventType.PROCESSING_ERROR_ALARM,
            ProbableCause.THRESHOLD_CROSSED,
            f"task {task.id} escalated to {', '.join(groups)}: {task.spec.title}",
            managed_object=self._managed_object(task),
        )
        await self._change(task, "escalated", None, {"groups": groups})

    async def _expire(self, task: _Task) -> None:
        decision = task.spec.expiry_decision
        assert decision is not None  # checked when the task opened
        task.outcome = TaskOutcome(task.id, decision, EXPIRY_DECIDER, workflow.now(), expired=True)
        task.state = TaskState.EXPIRED
        await self._change(task, "expired", None, {"decision": decision})
        self._closed(task, f"expired: the process goes on with {decision}")
        self.alarms.raise_alarm(
            f"task/{task.id}/expired",
            PerceivedSeverity.MINOR,
            EventType.PROCESSING_ERROR_ALARM,
            ProbableCause.TIMEOUT_EXPIRED,
            f"task {task.id} was not decided by its due time; outcome {decision}: "
            f"{task.spec.title}",
            managed_object=self._managed_object(task),
        )

    # --- bookkeeping ----------------------------------------------------------------------

    def _closed(self, task: _Task, text: str) -> None:
        self.alarms.clear_alarm(f"task/{task.id}/follow-up", text)
        self.alarms.clear_alarm(f"task/{task.id}/escalation", text)
        still_open = [t.id for t in self._tasks.values() if t.state.is_open]
        set_open_task(still_open[-1] if still_open else None)

    async def _change(
        self, task: _Task, action: str, actor: str | None, detail: dict[str, Any] | None = None
    ) -> None:
        """Record the task as it now is; returns once that record (and every one before it)
        has landed, so the inbox shows what the caller was told."""
        task.version += 1
        record = self._snapshot(task, action, actor, detail or {})
        previous = self._recording

        async def write() -> None:
            if previous is not None:
                # In order, whatever became of the one before: a record cancelled with the
                # process must not stop the record that says the task was cancelled.
                await workflow.wait([previous])
            await self._record_activity(record)
            task.recorded = max(task.recorded, record.version)

        self._recording = asyncio.create_task(write())
        await self._recording

    def _snapshot(
        self, task: _Task, action: str, actor: str | None, detail: dict[str, Any]
    ) -> TaskRecord:
        info = workflow.info()
        spec, outcome = task.spec, task.outcome
        return TaskRecord(
            id=task.id,
            version=task.version,
            action=action,
            actor=actor,
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            process=self.process,
            kind=spec.kind,
            title=spec.title,
            state=task.state.value,
            candidate_groups=list(task.candidate_groups),
            decisions=list(spec.decisions),
            created_at=task.created_at,
            reference=spec.reference,
            description=spec.description,
            form=[
                {
                    "name": f.name,
                    "type": f.type,
                    "required": f.required,
                    "label": f.label,
                    "equals": f.equals,
                    "pattern": f.pattern,
                    "minimum": f.minimum,
                }
                for f in spec.form
            ],
            evidence=spec.evidence,
            excluded_deciders=list(spec.excluded_deciders),
            assignee=task.assignee,
            priority=spec.priority,
            follow_up_at=task.at(spec.follow_up_after),
            escalation_at=task.at(spec.escalate_after),
            due_at=task.at(spec.due_after),
            escalated=task.escalated,
            dead_letter_id=spec.dead_letter_id,
            decision=outcome.decision if outcome else None,
            comment=outcome.comment if outcome else None,
            fields=dict(outcome.fields) if outcome else {},
            decided_by=outcome.decided_by if outcome else None,
            decided_at=outcome.decided_at if outcome else None,
            detail=detail,
        )
