"""The hub database on SQLite and on the machine's real PostgreSQL: migrations, constraints,
and the order-state recorder the workflow calls."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from activities.orders import OrderStoreActivities, RecordOrderStateInput
from hub.db import async_url, create_engine, migrate, session_factory, session_scope, sync_url
from hub.events.envelopes import EventType
from hub.events.models import OutboxEvent
from hub.events.outbox import add_order_event
from hub.models import (
    CancelServiceOrder,
    CancelState,
    OrderStateChange,
    ServiceOrder,
    ServiceOrderItem,
)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator:  # type: ignore[type-arg]
    migrate(database_url)
    engine = create_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def test_url_flavours() -> None:
    assert async_url("sqlite:///data/hub.db") == "sqlite+aiosqlite:///data/hub.db"
    assert sync_url("sqlite+aiosqlite:///x.db") == "sqlite:///x.db"
    assert async_url("postgresql://u:p@h/db").startswith("postgresql+psycopg://u:p@h/db")
    with pytest.raises(ValueError, match="unsupported"):
        async_url("mysql://h/db")


def test_migrations_create_every_table_and_run_twice(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)  # idempotent: already at head
    engine = create_sync_engine(sync_url(database_url))
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {
        "service_order",
        "service_order_item",
        "order_state_change",
        "cancel_service_order",
        "alembic_version",
    } <= tables


def _order(external_id: str | None = None) -> ServiceOrder:
    order_id = uuid.uuid4().hex
    return ServiceOrder(
        id=order_id,
        external_id=external_id,
        customer_id="C1",
        workflow_id=f"service-order-{order_id}",
        document={"a": 1},
    )


async def test_external_id_is_unique(sessions) -> None:  # type: ignore[no-untyped-def]
    async with session_scope(sessions) as session:
        session.add(_order("ext-1"))
    with pytest.raises(IntegrityError):
        async with session_scope(sessions) as session:
            session.add(_order("ext-1"))
    async with session_scope(sessions) as session:  # several orders without one are fine
        session.add(_order(None))
        session.add(_order(None))


async def test_recorder_writes_states_and_one_audit_row_per_change(sessions) -> None:  # type: ignore[no-untyped-def]
    order = _order("ext-2")
    async with session_scope(sessions) as session:
        session.add(order)
        await session.flush()
        session.add(ServiceOrderItem(order_id=order.id, item_id="1", action="add"))
        session.add(CancelServiceOrder(id="c1", order_id=order.id))
    recorder = OrderStoreActivities(sessions)
    progress = RecordOrderStateInput(
        order_id=order.id, state="inProgress", items={"1": "inProgress"}, reason="started"
    )
    await recorder.record_order_state(progress)
    await recorder.record_order_state(progress)  # a retried activity writes nothing new
    await recorder.record_order_state(
        RecordOrderStateInput(
            order_id=order.id, state="cancelled", items={"1": "cancelled"}, reason="cancelled"
        )
    )
    async with sessions() as session:
        stored = await session.get(ServiceOrder, order.id)
        assert stored is not None and stored.state == "cancelled"
        assert stored.completion_date is not None
        assert stored.completion_date.tzinfo is not None
        changes = list(
            await session.exec(
                select(OrderStateChange).where(OrderStateChange.order_id == order.id)
            )
        )
        assert sorted((c.item_id or "", c.from_state, c.to_state) for c in changes) == [
            ("", "acknowledged", "inProgress"),
            ("", "inProgress", "cancelled"),
            ("1", "acknowledged", "inProgress"),
            ("1", "inProgress", "cancelled"),
        ]
        cancel = await session.get(CancelServiceOrder, "c1")
        assert cancel is not None and cancel.state == CancelState.DONE
        # Each change reported once, in its own transaction (the outbox), in order.
        events = list(await session.exec(select(OutboxEvent).order_by(col(OutboxEvent.seq))))
        assert [(e.resource_id, e.resource_seq, e.event_type) for e in events] == [
            (order.id, 1, "ServiceOrderStateChangeEvent"),
            (order.id, 2, "ServiceOrderAttributeValueChangeEvent"),
            (order.id, 3, "ServiceOrderStateChangeEvent"),
            (order.id, 4, "ServiceOrderAttributeValueChangeEvent"),
            ("c1", 1, "CancelServiceOrderStateChangeEvent"),
        ]
        assert events[2].envelope["event"]["serviceOrder"]["state"] == "cancelled"
        assert events[4].envelope["event"]["cancelServiceOrder"]["state"] == "done"


async def test_an_event_is_written_with_its_change_or_not_at_all(sessions) -> None:  # type: ignore[no-untyped-def]
    order = _order("ext-3")
    with pytest.raises(IntegrityError):
        async with session_scope(sessions) as session:
            session.add(order)
            await add_order_event(
                session, order, EventType.SERVICE_ORDER_CREATE, "test", public_url="http://h"
            )
            session.add(_order("ext-3"))  # the same externalId: the transaction fails
    async with sessions() as session:
        assert list(await session.exec(select(OutboxEvent))) == []
