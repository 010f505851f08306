"""End to end: a real order's events, from the outbox through the relay's sink workflows and
``events.publish_to_broker``, on the real Kafka-protocol broker and Mosquitto, in the order
they happened and under the ids the outbox gave them."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiomqtt
from sqlmodel import select
from temporalio.client import Client

from activities.broker_events import kafka_topic, mqtt_topic
from adapters.events import mqtt_client, mqtt_options
from hub.events.outbox import OutboxEvent
from tests.brokers.conftest import create_topics, reader, with_brokers
from tests.conftest import Hub, Simulators, eventually, running_hub, settings_for
from tests.events.conftest import EVENT_SETTINGS
from tests.factories import new_identity, order

ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"


async def _outbox_ids(hub: Hub, order_id: str) -> list[str]:
    async with hub.sessions() as session:
        rows = await session.exec(
            select(OutboxEvent)
            .where(OutboxEvent.resource_id == order_id)
            .order_by(OutboxEvent.resource_seq)  # type: ignore[arg-type]
        )
        return [row.event_id for row in rows]


async def test_an_orders_events_reach_kafka_and_mqtt_in_order_with_the_outbox_ids(
    tmp_path_factory: Any,
    simulator_process: dict[str, str],
    temporal_client: Client,
    sims: Simulators,
    kafka_bootstrap: str,
    mqtt_url: str,
) -> None:
    base = settings_for(tmp_path_factory.mktemp("relay-brokers"), simulator_process)
    settings = with_brokers(
        base.model_copy(update={**EVENT_SETTINGS, "events_brokers": ["kafka", "mqtt"]}),
        kafka_bootstrap,
        mqtt_url,
    )
    topic = kafka_topic(settings.kafka_topic_prefix, "serviceOrdering")
    create_topics(kafka_bootstrap, topic)
    consumer = reader(kafka_bootstrap, topic)
    heard: list[tuple[str, dict[str, Any]]] = []

    async def listen(client: aiomqtt.Client) -> None:
        async for message in client.messages:
            heard.append((str(message.topic), json.loads(bytes(message.payload))))  # type: ignore[arg-type]

    try:
        async with (
            mqtt_client(mqtt_options(settings), identifier=f"reader-{uuid.uuid4().hex[:8]}") as sub,
            running_hub(settings, temporal_client) as hub,
        ):
            await sub.subscribe(f"{settings.mqtt_topic_prefix}/serviceOrder/+/events", qos=1)
            listening = asyncio.create_task(listen(sub))
            created = await hub.api.post(ORDERS, json=order(new_identity()))
            assert created.status_code == 201, created.text
            order_id = created.json()["id"]

            async def completed() -> bool:
                reply = await hub.api.get(f"{ORDERS}/{order_id}")
                return reply.json()["state"] == "completed"

            await eventually(completed, timeout=60)
            outbox = await _outbox_ids(hub, order_id)
            kafka: list[Any] = []

            async def all_on_both() -> bool:
                message = await asyncio.to_thread(consumer.poll, 0.2)
                if message is not None and message.error() is None:
                    kafka.append(message)
                return len(kafka) >= len(outbox) and len(heard) >= len(outbox)

            await eventually(all_on_both, timeout=60)
            listening.cancel()
    finally:
        consumer.close()

    assert len(outbox) >= 4  # created, inProgress, item states, completed
    # Kafka: keyed by the order, its partition in order, the outbox's ids (body and header).
    assert {m.key().decode() for m in kafka} == {order_id}
    assert [json.loads(m.value())["eventId"] for m in kafka] == outbox
    assert [dict(m.headers())["eventId"].decode() for m in kafka] == outbox
    kinds = [json.loads(m.value())["eventType"] for m in kafka]
    assert kinds[0] == "ServiceOrderCreateEvent"
    assert json.loads(kafka[-1].value())["event"]["serviceOrder"]["state"] == "completed"
    # MQTT: the order's own topic, the same events in the same order.
    own_topic = mqtt_topic(settings.mqtt_topic_prefix, "serviceOrder", order_id)
    assert {t for t, _ in heard} == {own_topic}
    assert [event["eventId"] for _, event in heard] == outbox
