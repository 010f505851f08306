"""The fan-out: which subscriptions an event goes to (API, partner, query), on the real
database; the relays it wakes are started on the test's queue, where nothing serves them."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select
from temporalio.client import Client

from activities.events import DispatchInput, EventActivities, PruneInput
from adapters.event_callbacks import EventCallbackClient
from hub.db import create_engine, migrate, session_factory, session_scope
from hub.events.envelopes import Domain, Event, EventType
from hub.events.models import (
    DeliveryStatus,
    EventDelivery,
    EventSubscription,
    OutboxEvent,
    SubscriptionStatus,
)
from hub.events.outbox import add_event
from hub.events.relay import RelayInput, listened, relay_of
from hub.models import utcnow
from hub.settings import Settings


async def test_a_partner_hears_of_its_own_resources_and_the_query_filters(
    hub_settings: Settings, temporal_client: Client
) -> None:
    settings = hub_settings.model_copy(update={"events_brokers": ["mqtt"]})
    migrate(settings.resolved_database_url)
    engine = create_engine(settings.resolved_database_url)
    sessions = session_factory(engine)
    try:
        async with session_scope(sessions) as session:
            for sub_id, api, partner, query in (
                ("operator", Domain.SERVICE_ORDERING, None, ""),
                ("partner-a", Domain.SERVICE_ORDERING, "org-a", ""),
                ("completed", Domain.SERVICE_ORDERING, None, "event.serviceOrder.state=completed"),
                ("roles", Domain.PARTY_ROLE, None, ""),
            ):
                session.add(
                    EventSubscription(
                        id=sub_id, api=api, callback="https://x.example/", query=query,
                        partner_id=partner, created_by="test",
                    )
                )  # fmt: skip
            for resource, partner, state in (
                ("o-a", "org-a", "completed"),
                ("o-b", "org-b", "failed"),
            ):
                await add_event(
                    session,
                    Event(
                        EventType.SERVICE_ORDER_STATE_CHANGE,
                        resource,
                        {"id": resource, "state": state},
                        "test",
                        partner_id=partner,
                    ),
                )
        relay = EventActivities(
            sessions, settings, EventCallbackClient(settings.callback_policy), None,
            client=temporal_client,
        )  # fmt: skip
        result = await relay.dispatch(DispatchInput(batch=10))
        assert (result.dispatched, result.more) == (2, False)
        assert (await relay.dispatch(DispatchInput(batch=10))).dispatched == 0  # once only
        async with sessions() as session:
            rows = await session.exec(select(EventDelivery, OutboxEvent).join(
                OutboxEvent, OutboxEvent.seq == EventDelivery.event_seq  # type: ignore[arg-type]
            ))  # fmt: skip
            fanned = sorted((d.subscription_id, e.resource_id) for d, e in rows)
        assert fanned == [
            ("completed", "o-a"),
            ("operator", "o-a"),
            ("operator", "o-b"),
            ("partner-a", "o-a"),
            ("sink:mqtt", "o-a"),
            ("sink:mqtt", "o-b"),
        ]
    finally:
        await engine.dispose()


def state_change(resource: str) -> Event:
    return Event(
        EventType.SERVICE_ORDER_STATE_CHANGE, resource, {"id": resource, "state": "completed"}, "t"
    )


async def test_a_subscription_gets_only_the_events_written_after_it(
    hub_settings: Settings, temporal_client: Client
) -> None:
    """Writers that saw no listener do not poke, so the relay may fan an event out long
    after it was written: a subscription made meanwhile must not receive it."""
    migrate(hub_settings.resolved_database_url)
    engine = create_engine(hub_settings.resolved_database_url)
    sessions = session_factory(engine)
    try:
        async with session_scope(sessions) as session:
            await add_event(session, state_change("before"))
        async with session_scope(sessions) as session:
            session.add(
                EventSubscription(
                    id="late", api=Domain.SERVICE_ORDERING, callback="https://x.example/",
                    query="", created_by="test",
                )
            )  # fmt: skip
        async with session_scope(sessions) as session:
            await add_event(session, state_change("after"))
        relay = EventActivities(
            sessions, hub_settings, EventCallbackClient(hub_settings.callback_policy), None,
            client=temporal_client,
        )  # fmt: skip
        assert (await relay.dispatch(DispatchInput(batch=10))).dispatched == 2
        async with sessions() as session:
            rows = await session.exec(select(EventDelivery, OutboxEvent).join(
                OutboxEvent, OutboxEvent.seq == EventDelivery.event_seq  # type: ignore[arg-type]
            ))  # fmt: skip
            assert [(d.subscription_id, e.resource_id) for d, e in rows] == [("late", "after")]
    finally:
        await engine.dispose()


async def test_a_writer_pokes_only_when_someone_listens(hub_settings: Settings) -> None:
    migrate(hub_settings.resolved_database_url)
    engine = create_engine(hub_settings.resolved_database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            assert not await listened(session, relay_of(hub_settings))
            assert await listened(session, RelayInput(sinks=["kafka"]))
        async with session_scope(sessions) as session:
            sub = EventSubscription(
                id="ear", api=Domain.SERVICE_ORDERING, callback="https://x.example/",
                query="", created_by="test",
            )  # fmt: skip
            session.add(sub)
        async with sessions() as session:
            assert await listened(session, relay_of(hub_settings))
        async with session_scope(sessions) as session:
            ended = await session.get(EventSubscription, "ear")
            assert ended is not None
            ended.status = SubscriptionStatus.ENDED
            session.add(ended)
        async with sessions() as session:
            assert not await listened(session, relay_of(hub_settings))
    finally:
        await engine.dispose()


async def test_retention_deletes_old_ended_deliveries_and_their_events_only(
    hub_settings: Settings, temporal_client: Client, database_url: str
) -> None:
    """On SQLite and on PostgreSQL (its deletes are by subquery)."""
    settings = hub_settings.model_copy(
        update={"events_retention": timedelta(days=7), "database_url": database_url}
    )
    migrate(settings.resolved_database_url)
    engine = create_engine(settings.resolved_database_url)
    sessions = session_factory(engine)
    old = utcnow() - timedelta(days=8)
    try:
        async with session_scope(sessions) as session:
            session.add(
                EventSubscription(
                    id="ear", api=Domain.SERVICE_ORDERING, callback="https://x.example/",
                    query="", created_by="test", created_at=old - timedelta(days=1),
                )
            )  # fmt: skip
            for resource in ("delivered", "pending", "dead", "unheard", "recent"):
                row = await add_event(session, state_change(resource))
                row.created_at = utcnow() if resource == "recent" else old
        relay = EventActivities(
            sessions, settings, EventCallbackClient(settings.callback_policy), None,
            client=temporal_client,
        )  # fmt: skip
        assert (await relay.dispatch(DispatchInput(batch=10))).dispatched == 5
        async with session_scope(sessions) as session:
            statuses = {
                "delivered": DeliveryStatus.DELIVERED,
                "dead": DeliveryStatus.DEAD,
                "unheard": DeliveryStatus.CANCELLED,
                "recent": DeliveryStatus.DELIVERED,
            }
            rows = await session.exec(select(EventDelivery, OutboxEvent).join(
                OutboxEvent, OutboxEvent.seq == EventDelivery.event_seq  # type: ignore[arg-type]
            ))  # fmt: skip
            for delivery, event in rows:
                delivery.status = statuses.get(event.resource_id, DeliveryStatus.PENDING)
                session.add(delivery)

        pruned = await relay.prune(PruneInput(batch=100))
        assert (pruned.deliveries, pruned.events, pruned.more) == (2, 2, False)
        async with sessions() as session:
            kept = sorted(e.resource_id for e in await session.exec(select(OutboxEvent)))
            logged = await session.exec(select(EventDelivery))
            assert len(list(logged)) == 3
        # Pending and dead deliveries keep their events; a recent one is within retention.
        assert kept == ["dead", "pending", "recent"]
        assert (await relay.prune(PruneInput(batch=100))).deliveries == 0
    finally:
        await engine.dispose()
