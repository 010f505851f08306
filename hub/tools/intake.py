"""``hub intake``: the process that takes orders from the brokers (README "Brokers").

It runs the Kafka consumer when ``HUB_KAFKA_BOOTSTRAP`` is set and the MQTT one when
``HUB_MQTT_URL`` is, each handing its messages to :class:`api.intake.OrderIntake`, which
places them as ``POST /serviceOrder`` does. It is a process of its own, beside the API and the
worker, rather than part of the API: API replicas scale with HTTP traffic, while MQTT has one
persistent session per client id, which two API processes would fight over; Kafka's group
would share its partitions among several ``hub intake`` processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
from confluent_kafka import KafkaException, Producer

from adapters.events import kafka_config, mqtt_client, mqtt_options
from adapters.intake import KafkaOrderConsumer, MqttOrderConsumer
from api.deps import TemporalConnection
from api.intake import OrderIntake
from hub import logs
from hub.db import create_engine, migrate, session_factory
from hub.settings import Settings, get_settings

logger = logging.getLogger("hub.intake")


def consumers(
    settings: Settings, intake: OrderIntake, *, retry_delay: float = 2.0
) -> list[KafkaOrderConsumer | MqttOrderConsumer]:
    """The consumers the settings configure."""
    found: list[KafkaOrderConsumer | MqttOrderConsumer] = []
    if settings.kafka_bootstrap:
        found.append(KafkaOrderConsumer(settings, intake.handle, retry_delay=retry_delay))
    if settings.mqtt_url:
        found.append(MqttOrderConsumer(settings, intake.handle, retry_delay=retry_delay))
    return found


async def run(
    settings: Settings,
    stop: asyncio.Event,
    *,
    ready: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Consume until ``stop`` is set."""
    migrate(settings.resolved_database_url)
    engine = create_engine(settings.resolved_database_url)
    temporal = TemporalConnection(settings)
    intake = OrderIntake(settings, session_factory(engine), temporal.get)
    found = consumers(settings, intake)
    if not found:
        raise RuntimeError("no broker is configured: set HUB_KAFKA_BOOTSTRAP or HUB_MQTT_URL")
    logger.info("orders are placed by broker:%s", settings.intake_caller)
    try:
        async with asyncio.TaskGroup() as group:
            for consumer in found:
                group.create_task(consumer.run(stop))
            if ready is not None:
                await ready()
    finally:
        await engine.dispose()


def main(settings: Settings) -> None:
    logs.configure(settings.log_format, settings.log_level)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(serve())


class SendFailed(Exception):
    """The order did not reach the broker; the message says why (never a credential)."""


def send(settings: Settings, broker: str, order: dict[str, Any]) -> str:
    """Put ``order`` on the intake topic of ``broker`` (``kafka``, keyed by its externalId;
    ``mqtt``, QoS 1), as an order system would; answers the topic. For trying the intake."""
    payload = json.dumps(order).encode()
    if broker == "kafka":
        if not settings.kafka_bootstrap:
            raise SendFailed("HUB_KAFKA_BOOTSTRAP is not set")
        producer = Producer(
            kafka_config(settings) | {"enable.idempotence": True, "message.timeout.ms": 10_000}
        )
        failures: list[str] = []
        try:
            producer.produce(
                settings.kafka_intake_topic,
                key=str(order.get("externalId") or "").encode() or None,
                value=payload,
                on_delivery=lambda error, _: failures.append(error.str()) if error else None,
            )
        except (KafkaException, BufferError) as exc:
            raise SendFailed(f"Kafka refused the order: {exc}") from exc
        if producer.flush(15) or failures:
            raise SendFailed(f"Kafka did not take the order: {', '.join(failures) or 'timeout'}")
        return settings.kafka_intake_topic
    if not settings.mqtt_url:
        raise SendFailed("HUB_MQTT_URL is not set")

    async def publish() -> None:
        async with mqtt_client(mqtt_options(settings)) as client:
            await client.publish(settings.mqtt_intake_topic, payload, qos=1)

    try:
        asyncio.run(publish())
    except aiomqtt.MqttError as exc:
        raise SendFailed(f"MQTT did not take the order: {exc}") from exc
    return settings.mqtt_intake_topic


if __name__ == "__main__":
    main(get_settings())
