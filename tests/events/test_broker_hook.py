"""The relay's broker hook: with ``HUB_EVENTS_BROKERS`` set, every outbox event is published
through the ``events.publish_to_broker`` activity (the broker adapters', doubled here), in
order per resource, and a broker that fails delays events without losing one."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from temporalio import activity
from temporalio.client import Client

from activities.definitions import defn
from hub.db import create_engine, migrate, session_factory
from hub.settings import Settings
from tests.conftest import Hub, eventually
from tests.events.conftest import EVENT_SETTINGS
from tests.events.test_webhooks import emit


class FlakyBroker:
    """Refuses each event's first publication (an outage), takes the second."""

    def __init__(self) -> None:
        self.refused: set[str] = set()
        self.published: list[dict[str, Any]] = []

    @defn("events.publish_to_broker")
    async def publish(self, message: dict[str, Any]) -> None:
        if message["event_id"] not in self.refused:
            self.refused.add(message["event_id"])
            raise RuntimeError("broker unavailable")
        assert activity.info().attempt >= 2
        self.published.append(message)


async def test_every_event_is_published_to_each_sink_in_order_per_resource(
    hub_settings: Settings, temporal_client: Client
) -> None:
    from worker import build_activities, create_workers

    settings = hub_settings.model_copy(update={**EVENT_SETTINGS, "events_brokers": ["kafka"]})
    migrate(settings.resolved_database_url)
    engine = create_engine(settings.resolved_database_url)
    broker = FlakyBroker()
    async with AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        sessions = session_factory(engine)
        built = await build_activities(settings, sessions, stack)
        built["events"].append(broker.publish)
        for worker in create_workers(
            temporal_client, built, settings, task_queue=settings.task_queue
        ):
            await stack.enter_async_context(worker)
        hub = Hub(settings, temporal_client, None, sessions)  # type: ignore[arg-type]
        first, second = await asyncio.gather(
            emit(hub, "order-one", "acknowledged", "inProgress", "completed"),
            emit(hub, "order-two", "inProgress", "failed"),
        )

        async def all_published() -> bool:
            return len(broker.published) >= len(first) + len(second)

        await eventually(all_published, timeout=30)
    by_resource: dict[str, list[str]] = {}
    for message in broker.published:
        assert message["sink"] == "kafka" and message["domain"] == "serviceOrdering"
        assert message["event"]["eventId"] == message["event_id"]
        by_resource.setdefault(message["resource_id"], []).append(message["event_id"])
    assert by_resource == {"order-one": first, "order-two": second}
