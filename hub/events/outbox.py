"""The transactional outbox: an event is written in the transaction of the change it reports.

Call :func:`add_event` with the session that writes the state change, before it commits: the
change and its event commit together or not at all, so a process killed between the change and
the delivery loses nothing (the relay finds the row), and a retried write that finds the change
already made writes no second event. ``eventId`` is fixed here, once: every delivery attempt,
replay and broker copy of the event carries it, so receivers can dedupe by it.

After the commit, :func:`hub.events.relay.poke` tells the relay, so delivery starts at once;
the relay's periodic sweep finds what a lost poke left behind.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from hub.events.envelopes import Event, EventType
from hub.events.models import OutboxEvent
from hub.models import ServiceOrder, ServiceOrderItem, utcnow
from hub.service_orders import PREFIX, order_json


async def add_event(session: AsyncSession, event: Event) -> OutboxEvent:
    """Add ``event`` to the outbox in ``session``'s transaction (the caller commits)."""
    resource_type = event.resource_type
    last = (
        await session.exec(
            select(func.max(col(OutboxEvent.resource_seq))).where(
                OutboxEvent.resource_type == resource_type,
                OutboxEvent.resource_id == event.resource_id,
            )
        )
    ).one()
    now = utcnow()
    row = OutboxEvent(
        event_id=event.event_id,
        domain=event.domain.value,
        resource_type=resource_type,
        resource_id=event.resource_id,
        resource_seq=(last or 0) + 1,
        event_type=event.event_type.value,
        partner_id=event.partner_id,
        envelope=event.envelope(now),
        created_at=now,
    )
    session.add(row)
    return row


async def add_order_event(
    session: AsyncSession,
    order: ServiceOrder,
    event_type: EventType,
    description: str,
    *,
    public_url: str,
    items: list[ServiceOrderItem] | None = None,
) -> OutboxEvent:
    """An event about ``order``, carrying the order as the API shows it in this transaction."""
    if items is None:
        items = list(
            await session.exec(
                select(ServiceOrderItem).where(ServiceOrderItem.order_id == order.id)
            )
        )
    base = public_url.rstrip("/") + PREFIX
    return await add_event(
        session,
        Event(
            event_type=event_type,
            resource_id=order.id,
            resource=order_json(order, items, base),
            description=description,
            partner_id=order.partner_id,
            occurred_at=order.updated_at,
        ),
    )
