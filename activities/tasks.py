"""The hub database's record of human tasks, kept in step with the workflows that own them.

The workflow is the only writer (as with dead letters): it records each change it accepted,
with the task's new ``version``; a record older than the row (an activity retried after a
later one landed) changes nothing, and each version is one audit event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.definitions import defn
from hub.db import session_scope
from hub.models import HumanTask, HumanTaskCandidate, HumanTaskEvent, TaskState, utcnow
from hub.redact import redact


@dataclass
class TaskRecord:
    """A task as its workflow holds it after one change, and the change (``action``)."""

    id: str
    version: int
    action: str  # created | claimed | unclaimed | reminded | escalated | completed | ...
    actor: str | None
    workflow_id: str
    run_id: str
    process: str
    kind: str
    title: str
    state: str
    candidate_groups: list[str]
    decisions: list[str]
    created_at: datetime
    reference: str | None = None
    description: str = ""
    form: list[dict[str, Any]] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    excluded_deciders: list[str] = field(default_factory=list)
    assignee: str | None = None
    priority: int = 50
    follow_up_at: datetime | None = None
    escalation_at: datetime | None = None
    due_at: datetime | None = None
    escalated: bool = False
    dead_letter_id: str | None = None
    decision: str | None = None
    comment: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    decided_by: str | None = None
    decided_at: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class TaskStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    @defn("hub.record_task")
    async def record(self, data: TaskRecord) -> None:
        """Write the task as of ``data.version`` and its audit event, once."""
        async with session_scope(self.sessions) as session:
            task = await session.get(HumanTask, data.id)
            if task is not None and task.version >= data.version:
                return  # already recorded (a retried write), or a later change is
            if task is None:
                task = HumanTask(
                    id=data.id,
                    workflow_id=data.workflow_id,
                    run_id=data.run_id,
                    process=data.process,
                    kind=data.kind,
                    title=data.title,
                )
            task.run_id = data.run_id
            task.process = data.process
            task.kind = data.kind
            task.reference = data.reference
            task.title = data.title
            task.description = data.description
            task.decisions = list(data.decisions)
            task.form = list(data.form)
            task.evidence = redact(data.evidence)
            task.excluded_deciders = list(data.excluded_deciders)
            task.assignee = data.assignee
            task.priority = data.priority
            task.state = data.state
            task.created_at = data.created_at
            task.follow_up_at = data.follow_up_at
            task.escalation_at = data.escalation_at
            task.due_at = data.due_at
            task.escalated = data.escalated
            task.dead_letter_id = data.dead_letter_id
            task.decision = data.decision
            task.comment = data.comment
            task.fields = redact(data.fields)
            task.decided_by = data.decided_by
            task.decided_at = data.decided_at
            task.closed_at = None if TaskState(data.state).is_open else utcnow()
            task.version = data.version
            task.updated_at = utcnow()
            session.add(task)
            await session.flush()
            current = set(
                await session.exec(
                    select(HumanTaskCandidate.group_name).where(
                        HumanTaskCandidate.task_id == data.id
                    )
                )
            )
            wanted = set(data.candidate_groups)
            if current != wanted:
                await session.exec(
                    delete(HumanTaskCandidate).where(HumanTaskCandidate.task_id == data.id)  # type: ignore[arg-type]
                )
                session.add_all(
                    HumanTaskCandidate(task_id=data.id, group_name=group) for group in wanted
                )
            session.add(
                HumanTaskEvent(
                    task_id=data.id,
                    seq=data.version,
                    action=data.action,
                    actor=data.actor,
                    detail=redact(data.detail),
                )
            )
