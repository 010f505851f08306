"""Activities that keep the hub database's dead letters in step with the workflows.

The workflow is the only writer: it parks, and it records each decision it accepted, so the
database never claims a decision the workflow did not take.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.definitions import defn
from activities.events import wake_relay
from hub.db import session_scope
from hub.events.envelopes import EventType
from hub.events.outbox import add_order_event
from hub.events.relay import RelayInput
from hub.models import DeadLetter, DeadLetterStatus, ServiceOrder, utcnow
from hub.redact import redact


@dataclass
class ParkInput:
    id: str
    workflow_id: str
    run_id: str
    process: str
    order_id: str | None
    step: str
    system: str
    activity: str
    compensation: bool
    skippable: bool
    input: dict[str, Any]
    error_type: str
    last_error: str
    attempts: int
    first_failure_at: datetime
    last_failure_at: datetime
    deadline: datetime


@dataclass
class DeadLetterUpdate:
    id: str
    status: str
    decision: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class DeadLetterStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        public_url: str = "http://127.0.0.1:8000",
        relay: RelayInput | None = None,
    ) -> None:
        self.sessions = sessions
        #: For the InformationRequired events' ``href``s, and how to wake their relay.
        self.public_url = public_url
        self.relay = relay

    @defn("hub.park")
    async def park(self, data: ParkInput) -> None:
        """Write (or, when a retried step failed again, re-open) a dead letter; an order's
        is reported as a ServiceOrderInformationRequiredEvent in the same transaction."""
        opened = False
        async with session_scope(self.sessions) as session:
            letter = await session.get(DeadLetter, data.id)
            if letter is None:
                opened = True
                letter = DeadLetter(
                    id=data.id,
                    workflow_id=data.workflow_id,
                    run_id=data.run_id,
                    process=data.process,
                    order_id=data.order_id,
                    step=data.step,
                    system=data.system,
                    activity=data.activity,
                    compensation=data.compensation,
                    skippable=data.skippable,
                    input=redact(data.input),
                    error_type=data.error_type,
                    last_error=data.last_error,
                    attempts=data.attempts,
                    first_failure_at=data.first_failure_at,
                    last_failure_at=data.last_failure_at,
                    deadline=data.deadline,
                )
            elif letter.status != DeadLetterStatus.PARKED:
                opened = True
                # The operator's retry failed again: same incident, parked once more.
                letter.status = DeadLetterStatus.PARKED
                letter.input = redact(data.input)
                letter.error_type = data.error_type
                letter.last_error = data.last_error
                letter.attempts += data.attempts
                letter.last_failure_at = data.last_failure_at
                letter.deadline = data.deadline
                letter.parked_at = utcnow()
                letter.closed_at = None
            session.add(letter)
            order = await session.get(ServiceOrder, data.order_id) if data.order_id else None
            if not opened or order is None:
                return
            await add_order_event(
                session,
                order,
                EventType.SERVICE_ORDER_INFORMATION_REQUIRED,
                f"step {data.step} ({data.system}) is parked for a person: dead letter "
                f"{data.id}: {data.error_type}",
                public_url=self.public_url,
            )
        await wake_relay(self.relay)

    @defn("hub.update_dead_letter")
    async def update(self, data: DeadLetterUpdate) -> None:
        async with session_scope(self.sessions) as session:
            letter = await session.get(DeadLetter, data.id)
            if letter is None:
                activity.logger.error("dead letter %s missing", data.id)
                return
            letter.status = data.status
            if data.decision:
                letter.decision = data.decision
                letter.decided_by = data.decided_by
                letter.decided_at = data.decided_at
                letter.decision_reason = data.reason
            if data.status in (
                DeadLetterStatus.RESOLVED,
                DeadLetterStatus.SKIPPED,
                DeadLetterStatus.ABORTED,
                DeadLetterStatus.EXPIRED,
            ):
                letter.closed_at = utcnow()
            session.add(letter)
