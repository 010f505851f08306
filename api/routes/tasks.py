"""The task inbox: every human task a process waits on (approvals, parked steps), one list.

Tasks are rows of the hub database, written by the workflows that own them, so they can be
listed and searched after the workflow's history is gone. Claiming, giving back and deciding
go to the workflow as Temporal updates whose validators refuse what may not be done (a
decision the task does not offer, a missing form field, four-eyes): the refusal is the
caller's answer at once, and nothing of it reaches history. Who claims or decides is the
authenticated caller, never a field of the body; every decision is in the task's audit trail.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Principal, SessionDep, TemporalDep, require_scope
from api.errors import ApiError, temporal_unreachable
from api.inbound import CheckedRoute
from api.listing import Offset, one_of, page
from hub.models import HumanTask, HumanTaskCandidate, HumanTaskEvent, TaskState, utcnow
from hub.permissions import WILDCARD, Scope
from workflows.runtime import ProcessWorkflow, TaskClaim, TaskDecision

router = APIRouter(prefix="/tasks", tags=["Tasks"], route_class=CheckedRoute)
#: The caller who reads: tasks:read, and sees only the tasks its groups may act on.
Reader = Annotated[Principal, Depends(require_scope(Scope.TASKS_READ))]
#: The caller who claims or decides, once it is known to hold the scope for it.
Decider = Annotated[Principal, Depends(require_scope(Scope.TASKS_DECIDE))]
#: How long the API waits for a workflow to accept an update.
UPDATE_TIMEOUT = timedelta(seconds=10)

#: A refusal's ``ApplicationError.type`` → the HTTP status it answers.
REFUSALS = {
    "BadDecision": 400,
    "FourEyes": 403,
    "NotCandidate": 403,
    "NoSuchTask": 404,
    "TaskClaimed": 409,
    "TaskClosed": 409,
    "NotParked": 409,
    "NotSkippable": 409,
    "HeldElsewhere": 409,
}


class FormFieldPublic(BaseModel):
    name: str
    type: str
    required: bool = False
    label: str | None = None
    #: The one value the field may have (an acknowledgement: true).
    equals: Any = None
    #: A string's whole value must match it.
    pattern: str | None = None
    #: The least value of a number.
    minimum: float | None = None


class TaskEventPublic(BaseModel):
    action: str
    actor: str | None
    at: datetime
    detail: dict[str, Any] = Field(default_factory=dict)


class TaskPublic(BaseModel):
    """A task as the inbox shows it."""

    id: str
    state: str
    process: str
    kind: str
    title: str
    description: str
    reference: str | None
    workflowId: str
    runId: str
    decisions: list[str]
    form: list[FormFieldPublic]
    evidence: dict[str, Any]
    candidateGroups: list[str]
    assignee: str | None
    excludedDeciders: list[str]
    priority: int
    createdAt: datetime
    followUpAt: datetime | None
    escalationAt: datetime | None
    dueAt: datetime | None
    overdue: bool
    escalated: bool
    deadLetterId: str | None
    decision: str | None
    comment: str | None
    fields: dict[str, Any]
    decidedBy: str | None
    decidedAt: datetime | None
    closedAt: datetime | None
    #: The audit trail, on ``GET /tasks/{id}`` only.
    history: list[TaskEventPublic] | None = None


class CompleteBody(BaseModel):
    decision: str = Field(min_length=1, max_length=64, description="one the task offers")
    comment: str | None = Field(default=None, max_length=4000)
    fields: dict[str, Any] | None = Field(default=None, description="the task's form, filled in")


class TaskAction(BaseModel):
    """What a claim, unclaim or complete answers: the task as recorded after it."""

    accepted: bool
    task: TaskPublic


def _public(
    task: HumanTask, groups: list[str], history: list[HumanTaskEvent] | None = None
) -> TaskPublic:
    now = utcnow()
    return TaskPublic(
        id=task.id,
        state=task.state,
        process=task.process,
        kind=task.kind,
        title=task.title,
        description=task.description,
        reference=task.reference,
        workflowId=task.workflow_id,
        runId=task.run_id,
        decisions=list(task.decisions),
        form=[FormFieldPublic(**item) for item in task.form],
        evidence=task.evidence,
        candidateGroups=sorted(groups),
        assignee=task.assignee,
        excludedDeciders=list(task.excluded_deciders),
        priority=task.priority,
        createdAt=task.created_at,
        followUpAt=task.follow_up_at,
        escalationAt=task.escalation_at,
        dueAt=task.due_at,
        overdue=bool(task.due_at and task.due_at < now and TaskState(task.state).is_open),
        escalated=task.escalated,
        deadLetterId=task.dead_letter_id,
        decision=task.decision,
        comment=task.comment,
        fields=task.fields,
        decidedBy=task.decided_by,
        decidedAt=task.decided_at,
        closedAt=task.closed_at,
        history=(
            [
                TaskEventPublic(action=e.action, actor=e.actor, at=e.at, detail=e.detail)
                for e in history
            ]
            if history is not None
            else None
        ),
    )


async def _groups_of(session: AsyncSession, task_ids: list[str]) -> dict[str, list[str]]:
    rows = await session.exec(
        select(HumanTaskCandidate).where(col(HumanTaskCandidate.task_id).in_(task_ids))
    )
    grouped: dict[str, list[str]] = {task_id: [] for task_id in task_ids}
    for row in rows:
        grouped[row.task_id].append(row.group_name)
    return grouped


def visible_to(principal: Principal) -> list[Any]:
    """Conditions: the tasks ``principal`` may see. A member of every group sees all; anyone
    else the tasks of its groups, and those it claimed or decided (after an escalation too)."""
    if WILDCARD in principal.groups:
        return []
    return [
        or_(
            col(HumanTask.id).in_(
                select(HumanTaskCandidate.task_id).where(
                    col(HumanTaskCandidate.group_name).in_(sorted(principal.groups))
                )
            ),
            col(HumanTask.assignee) == principal.subject,
            col(HumanTask.decided_by) == principal.subject,
        )
    ]


async def _task_or_404(
    session: AsyncSession, task_id: str, principal: Principal | None = None
) -> HumanTask:
    """The task, if it exists and ``principal`` may see it; another's task is a 404 too, so
    its existence tells nothing."""
    task = await session.get(HumanTask, task_id)
    if task is not None and principal is not None and WILDCARD not in principal.groups:
        conditions = [HumanTask.id == task_id, *visible_to(principal)]
        if (await session.exec(select(HumanTask.id).where(*conditions))).first() is None:
            task = None
    if task is None:
        raise ApiError(404, f"no task with id {task_id!r}")
    return task


async def _answer(
    session: AsyncSession,
    task_id: str,
    principal: Principal | None = None,
    *,
    history: bool = False,
) -> TaskPublic:
    session.expire_all()  # the workflow wrote the row after this session last read it
    task = await _task_or_404(session, task_id, principal)
    events = None
    if history:
        events = list(
            await session.exec(
                select(HumanTaskEvent)
                .where(HumanTaskEvent.task_id == task_id)
                .order_by(col(HumanTaskEvent.seq))
            )
        )
    return _public(task, (await _groups_of(session, [task_id]))[task_id], events)


@router.get("", summary="List tasks (the inbox)", response_model=list[TaskPublic])
async def list_tasks(
    reader: Reader,
    response: Response,
    session: SessionDep,
    state: str | None = Query(default=None, description="created, assigned, completed, ..."),
    open: bool | None = Query(default=None, description="true: created or assigned only"),
    candidateGroup: str | None = Query(default=None, max_length=100),
    assignee: str | None = Query(default=None, max_length=200),
    process: str | None = Query(default=None, max_length=64),
    kind: str | None = Query(default=None, max_length=64),
    reference: str | None = Query(default=None, max_length=200),
    overdue: bool | None = Query(default=None, description="true: open and past the due time"),
    offset: Offset = 0,
    limit: int = Query(default=50, ge=1, le=500),
) -> list[TaskPublic]:
    one_of("state", state, TaskState)
    open_states = [s.value for s in TaskState if s.is_open]
    conditions: list[Any] = visible_to(reader) + [
        column == value
        for column, value in (
            (HumanTask.state, state),
            (HumanTask.assignee, assignee),
            (HumanTask.process, process),
            (HumanTask.kind, kind),
            (HumanTask.reference, reference),
        )
        if value is not None
    ]
    if open is not None:
        in_open = col(HumanTask.state).in_(open_states)
        conditions.append(in_open if open else ~in_open)
    if candidateGroup is not None:
        conditions.append(
            col(HumanTask.id).in_(
                select(HumanTaskCandidate.task_id).where(
                    HumanTaskCandidate.group_name == candidateGroup
                )
            )
        )
    if overdue is not None:
        late = (col(HumanTask.due_at) < utcnow()) & col(HumanTask.state).in_(open_states)
        conditions.append(late if overdue else ~late | col(HumanTask.due_at).is_(None))
    tasks = await page(
        session,
        HumanTask,
        conditions,
        [
            col(HumanTask.priority).desc(),
            col(HumanTask.due_at).is_(None),
            col(HumanTask.due_at),
            col(HumanTask.created_at),
            col(HumanTask.id),
        ],
        offset=offset,
        limit=limit,
        response=response,
    )
    groups = await _groups_of(session, [task.id for task in tasks])
    return [_public(task, groups[task.id]) for task in tasks]


@router.get(
    "/{task_id}",
    summary="Read one task, with its audit trail",
    response_model=TaskPublic,
)
async def get_task(task_id: str, reader: Reader, session: SessionDep) -> TaskPublic:
    return await _answer(session, task_id, reader, history=True)


def _groups(principal: Principal) -> list[str]:
    return sorted(principal.groups) if WILDCARD not in principal.groups else [WILDCARD]


async def _update(temporal: Client, task: HumanTask, update: Any, argument: Any) -> None:
    """Send an update to the task's workflow; a refusal is the caller's 4xx, with its reason."""
    if not TaskState(task.state).is_open:
        raise ApiError(409, f"task {task.id} is {task.state}")
    handle = temporal.get_workflow_handle(task.workflow_id)
    try:
        await handle.execute_update(update, argument, rpc_timeout=UPDATE_TIMEOUT)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        kind = getattr(cause, "type", None) or ""
        message = getattr(cause, "message", None) or str(exc)
        raise ApiError(REFUSALS.get(kind, 409), message) from exc
    except (RPCError, RPCTimeoutOrCancelledError) as exc:
        if (unreachable := temporal_unreachable(exc)) is not None:
            raise unreachable from exc
        if isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(409, f"task {task.id}: its process is no longer running") from exc
        raise ApiError(409, f"task {task.id}: the process did not take it ({exc})") from exc


async def _claim(
    update: Any, task_id: str, caller: Principal, session: AsyncSession, temporal: Client
) -> TaskAction:
    task = await _task_or_404(session, task_id, caller)
    claim = TaskClaim(task_id=task_id, who=caller.subject, groups=_groups(caller))
    await _update(temporal, task, update, claim)
    return TaskAction(accepted=True, task=await _answer(session, task_id))


@router.post(
    "/{task_id}/claim", summary="Take a task (a candidate only)", response_model=TaskAction
)
async def claim_task(
    task_id: str, caller: Decider, session: SessionDep, temporal: TemporalDep
) -> TaskAction:
    return await _claim(ProcessWorkflow.claim_task, task_id, caller, session, temporal)


@router.post("/{task_id}/unclaim", summary="Give a claimed task back", response_model=TaskAction)
async def unclaim_task(
    task_id: str, caller: Decider, session: SessionDep, temporal: TemporalDep
) -> TaskAction:
    return await _claim(ProcessWorkflow.unclaim_task, task_id, caller, session, temporal)


@router.post("/{task_id}/complete", summary="Decide a task", response_model=TaskAction)
async def complete_task(
    task_id: str,
    body: CompleteBody,
    caller: Decider,
    session: SessionDep,
    temporal: TemporalDep,
) -> TaskAction:
    task = await _task_or_404(session, task_id, caller)
    decision = TaskDecision(
        task_id=task_id,
        decision=body.decision,
        decided_by=caller.subject,
        groups=_groups(caller),
        comment=body.comment,
        fields=body.fields,
    )
    await _update(temporal, task, ProcessWorkflow.complete_task, decision)
    return TaskAction(accepted=True, task=await _answer(session, task_id))
