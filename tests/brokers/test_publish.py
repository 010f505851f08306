"""``events.publish_to_broker`` against the real brokers: what the relay's events look like
to a consumer on Kafka and on MQTT, and that a broker that is down makes it raise (retried)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.broker_events import (
    SINK_NOT_CONFIGURED,
    BrokerEvents,
    PublishToBrokerInput,
)
from adapters.events import KafkaPublisher, MqttPublisher, mqtt_client, mqtt_options
from hub.settings import Settings
from tests.brokers.conftest import create_topics, read, reader, with_brokers
from tests.conftest import free_port


def settings_for(kafka_bootstrap: str, mqtt_url: str) -> Settings:
    return with_brokers(Settings(_env_file=None), kafka_bootstrap, mqtt_url)  # type: ignore[call-arg]


def envelope(order_id: str, state: str) -> tuple[str, dict[str, Any]]:
    event_id = uuid.uuid4().hex
    return event_id, {
        "eventId": event_id,
        "eventTime": "2026-12-01T12:00:00Z",
        "eventType": "ServiceOrderStateChangeEvent",
        "domain": "serviceOrdering",
        "event": {"serviceOrder": {"id": order_id, "state": state}},
    }


async def test_kafka_events_stay_in_order_per_order(kafka_bootstrap: str, mqtt_url: str) -> None:
    settings = settings_for(kafka_bootstrap, mqtt_url)
    topic = f"{settings.kafka_topic_prefix}serviceOrdering.events"
    create_topics(kafka_bootstrap, topic, partitions=3)
    publisher = KafkaPublisher(settings)
    events = BrokerEvents({"kafka": publisher}, kafka_prefix=settings.kafka_topic_prefix)
    orders = [uuid.uuid4().hex for _ in range(4)]
    sent: dict[str, list[str]] = {order: [] for order in orders}
    try:
        for state in ("acknowledged", "inProgress", "completed"):
            for order in orders:
                event_id, event = envelope(order, state)
                result = await ActivityEnvironment().run(
                    events.publish_to_broker,
                    PublishToBrokerInput("kafka", "serviceOrdering", order, event_id, event),
                )
                assert result.topic == topic
                sent[order].append(event_id)
    finally:
        await publisher.aclose()

    consumer = reader(kafka_bootstrap, topic)
    try:
        messages = await read(consumer, 12)
    finally:
        consumer.close()
    received: dict[str, list[str]] = {}
    partitions: dict[str, set[int]] = {}
    for message in messages:
        key = message.key().decode()  # type: ignore[attr-defined]
        headers = dict(message.headers())  # type: ignore[attr-defined]
        body = json.loads(message.value())  # type: ignore[attr-defined]
        assert headers["eventId"].decode() == body["eventId"] == headers["ce_id"].decode()
        assert headers["ce_type"] == b"ServiceOrderStateChangeEvent"
        assert body["event"]["serviceOrder"]["id"] == key
        received.setdefault(key, []).append(body["eventId"])
        partitions.setdefault(key, set()).add(message.partition())  # type: ignore[attr-defined]
    # Each order's events in one partition, in the order they were published.
    assert received == sent
    assert all(len(found) == 1 for found in partitions.values()), partitions


async def test_kafka_down_raises_a_retryable_error(kafka_bootstrap: str, mqtt_url: str) -> None:
    settings = settings_for(f"127.0.0.1:{free_port()}", mqtt_url)
    settings.kafka_delivery_timeout = timedelta(seconds=1)
    publisher = KafkaPublisher(settings)
    events = BrokerEvents({"kafka": publisher})
    event_id, event = envelope("o-1", "completed")
    try:
        with pytest.raises(ApplicationError) as raised:
            await ActivityEnvironment().run(
                events.publish_to_broker,
                PublishToBrokerInput("kafka", "serviceOrdering", "o-1", event_id, event),
            )
    finally:
        await publisher.aclose()
    assert not raised.value.non_retryable
    assert raised.value.type == "TransientError"
    assert "MSG_TIMED_OUT" in str(raised.value)


async def test_mqtt_events_on_the_resource_topic(kafka_bootstrap: str, mqtt_url: str) -> None:
    settings = settings_for(kafka_bootstrap, mqtt_url)
    publisher = MqttPublisher(settings)
    events = BrokerEvents({"mqtt": publisher}, mqtt_prefix=settings.mqtt_topic_prefix)
    order = uuid.uuid4().hex
    listener = mqtt_client(mqtt_options(settings), identifier=f"listener-{order[:8]}")
    async with listener:
        await listener.subscribe(f"{settings.mqtt_topic_prefix}/serviceOrder/+/events", qos=1)
        sent = []
        try:
            for state in ("acknowledged", "completed"):
                event_id, event = envelope(order, state)
                result = await ActivityEnvironment().run(
                    events.publish_to_broker,
                    PublishToBrokerInput("mqtt", "serviceOrdering", order, event_id, event),
                )
                sent.append(event_id)
        finally:
            await publisher.aclose()
        assert result.topic == f"{settings.mqtt_topic_prefix}/serviceOrder/{order}/events"
        received = []
        async for message in listener.messages:
            assert message.topic.value == result.topic
            assert message.qos == 1
            properties = dict(message.properties.UserProperty)  # type: ignore[union-attr]
            body = json.loads(message.payload)  # type: ignore[arg-type]
            assert properties["eventId"] == body["eventId"]
            received.append(body["eventId"])
            if len(received) == len(sent):
                break
    assert received == sent


async def test_a_sink_without_broker_is_refused_retryably(kafka_bootstrap: str) -> None:
    events = BrokerEvents({})
    event_id, event = envelope("o-2", "completed")
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            events.publish_to_broker,
            PublishToBrokerInput("mqtt", "serviceOrdering", "o-2", event_id, event),
        )
    assert raised.value.type == SINK_NOT_CONFIGURED
    assert not raised.value.non_retryable


async def test_an_id_that_cannot_be_a_topic_is_refused_for_good() -> None:
    events = BrokerEvents(
        {"mqtt": MqttPublisher(Settings(_env_file=None, mqtt_url="mqtt://127.0.0.1"))}
    )  # type: ignore[call-arg]
    event_id, event = envelope("a/#", "completed")
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            events.publish_to_broker,
            PublishToBrokerInput("mqtt", "serviceOrdering", "a/#", event_id, event),
        )
    assert raised.value.non_retryable
    assert "cannot be part of a topic name" in str(raised.value)


async def test_the_worker_registers_the_activity_only_with_a_broker() -> None:
    from contextlib import AsyncExitStack

    from activities.definitions import name_of, system_of
    from hub.events.relay import SYSTEM as EVENTS
    from worker import broker_activities

    async with AsyncExitStack() as stack:
        assert broker_activities(Settings(_env_file=None), stack) == []  # type: ignore[call-arg]
        configured = Settings(_env_file=None, kafka_bootstrap=f"127.0.0.1:{free_port()}")  # type: ignore[call-arg]
        [publish] = broker_activities(configured, stack)
    # By this name, on the events queue: the relay's sink workflows call it there by name.
    assert (name_of(publish), system_of(publish)) == ("events.publish_to_broker", EVENTS)


def test_mqtt_credentials_are_refused_in_the_url_and_never_echoed() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None, mqtt_url="mqtt://intake:s3cr3t-pw@broker.example:1883")  # type: ignore[call-arg]
    assert "HUB_MQTT_PASSWORD" in str(raised.value)
    assert "s3cr3t-pw" not in str(raised.value)
