"""The fan-out: which subscriptions an event goes to (API, partner, query), on the real
database; the relays it wakes are started on the test's queue, where nothing serves them."""

from __future__ import annotations

from sqlmodel import select
from temporalio.client import Client

from activities.events import DispatchInput, EventActivities
from adapters.event_callbacks import EventCallbackClient
from hub.db import create_engine, migrate, session_factory, session_scope
from hub.events.envelopes import Domain, Event, EventType
from hub.events.models import EventDelivery, EventSubscription, OutboxEvent
from hub.events.outbox import add_event
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
