"""Inbound consumers: orders arriving on a Kafka topic and an MQTT topic.

Each message is handed to a :class:`Handler` (the hub's :class:`api.intake.OrderIntake`), one
at a time, in the order the broker delivers them. The handler answers None (the order is
recorded), or the TMF error body of a refused message, which goes to the rejects topic, keyed
like the order, with where the original is (never its payload: an order carries subscriber
keys). Only then is the message committed (Kafka: its offset, synchronously) or acknowledged
(MQTT: the PUBACK of a QoS 1 delivery). A handler that raises (the database or Temporal are
unreachable) leaves it uncommitted: the consumer waits ``retry_delay`` and takes the same
message again; a consumer that dies meanwhile leaves it to the next one (Kafka: the group's
next member; MQTT: the same client id's next session, which the broker redelivers it to).

So delivery is at least once; an order delivered twice is placed once, by its ``externalId``
(the handler's deduplication). Orders without an ``externalId`` are placed as often as they
are delivered: senders on a broker should always give one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

import aiomqtt
from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from adapters.events import (
    MqttOptions,
    kafka_config,
    kafka_error,
    mqtt_client,
    mqtt_options,
)
from hub.settings import Settings

logger = logging.getLogger(__name__)


class Handler(Protocol):
    def __call__(self, payload: bytes, source: str) -> Awaitable[dict[str, Any] | None]: ...


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class KafkaOrderConsumer:
    """Consumes ``HUB_KAFKA_INTAKE_TOPIC`` in the group ``HUB_KAFKA_INTAKE_GROUP`` with manual
    commits; rejects go to ``HUB_KAFKA_REJECTS_TOPIC``."""

    def __init__(self, settings: Settings, handler: Handler, *, retry_delay: float = 2.0) -> None:
        self.topic = settings.kafka_intake_topic
        self.rejects_topic = settings.kafka_rejects_topic
        self.handler = handler
        self.retry_delay = retry_delay
        session_ms = int(settings.kafka_session_timeout.total_seconds() * 1000)
        self._consumer_config = kafka_config(settings) | {
            "group.id": settings.kafka_intake_group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(100, session_ms // 3),
        }
        self._producer_config = kafka_config(settings) | {
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": int(settings.kafka_delivery_timeout.total_seconds() * 1000),
        }

    async def run(self, stop: asyncio.Event) -> None:
        consumer = Consumer(self._consumer_config)
        rejects = Producer(self._producer_config)
        consumer.subscribe([self.topic])
        logger.info("taking orders from Kafka topic %s", self.topic)
        last_error: int | None = None
        try:
            while not stop.is_set():
                message = await asyncio.to_thread(consumer.poll, 0.5)
                if message is None:
                    continue
                if (error := message.error()) is not None:
                    # Once per kind of error: a broker that is down reports it every poll.
                    level = logging.DEBUG if error.code() == last_error else logging.WARNING
                    logger.log(level, "Kafka consumer: %s", error.str())
                    last_error = error.code()
                    continue
                last_error = None
                if await self._take(message, rejects):
                    await asyncio.to_thread(consumer.commit, message=message, asynchronous=False)
                else:
                    # Not committed: read it again, after a pause.
                    self._rewind(consumer, message)
                    await _pause(stop, self.retry_delay)
        finally:
            await asyncio.to_thread(rejects.flush, 10)
            await asyncio.to_thread(consumer.close)

    async def _take(self, message: Message, rejects: Producer) -> bool:
        """Whether the message is done with (recorded, or refused and on the rejects topic)."""
        where = f"kafka:{message.topic()}/{message.partition()}@{message.offset()}"
        try:
            refusal = await self.handler(message.value() or b"", where)
            if refusal is not None:
                await self._reject(message, refusal, rejects)
        except Exception:
            logger.warning("order at %s not recorded; it is taken again", where, exc_info=True)
            return False
        return True

    async def _reject(self, message: Message, refusal: dict[str, Any], rejects: Producer) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def report(error: Any, _: Message) -> None:
            loop.call_soon_threadsafe(_settle, done, error, self.rejects_topic)

        headers: list[tuple[str, str | bytes | None]] = [
            ("original-topic", (message.topic() or "").encode()),
            ("original-partition", str(message.partition()).encode()),
            ("original-offset", str(message.offset()).encode()),
            ("content-type", b"application/json"),
        ]
        rejects.produce(
            self.rejects_topic,
            key=message.key(),
            value=json.dumps(refusal).encode(),
            headers=headers,
            on_delivery=report,
        )
        while not done.done():
            await asyncio.to_thread(rejects.poll, 0.1)
        await done

    @staticmethod
    def _rewind(consumer: Consumer, message: Message) -> None:
        partition = TopicPartition(
            message.topic() or "", message.partition() or 0, message.offset() or 0
        )
        try:
            consumer.seek(partition)
        except KafkaException as exc:
            # The partition moved to another member meanwhile: it reads from the last commit.
            logger.info("cannot rewind %s: %s", partition, exc)


def _settle(future: asyncio.Future[None], error: Any, topic: str) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(kafka_error(error, topic))


class MqttOrderConsumer:
    """Subscribes to ``HUB_MQTT_INTAKE_TOPIC`` with QoS 1 in a persistent session (client id
    ``HUB_MQTT_CLIENT_ID``, clean session off), acknowledging each message itself once it is
    done with; rejects go to ``HUB_MQTT_REJECTS_TOPIC`` (QoS 1)."""

    def __init__(self, settings: Settings, handler: Handler, *, retry_delay: float = 2.0) -> None:
        self.options: MqttOptions = mqtt_options(settings)
        self.topic = settings.mqtt_intake_topic
        self.rejects_topic = settings.mqtt_rejects_topic
        self.client_id = settings.mqtt_client_id
        self.handler = handler
        self.retry_delay = retry_delay
        #: Set once the subscription stands: from then on the broker keeps the intake's
        #: messages for it, connected or not (until the session expires).
        self.subscribed = asyncio.Event()

    def _client(self) -> aiomqtt.Client:
        client = mqtt_client(
            self.options,
            identifier=self.client_id,
            clean_start=False,
            properties=_session_properties(),
        )
        # aiomqtt has no manual acknowledgement; paho, under it, does. Set before connecting,
        # so not even a message the broker redelivers at once is acknowledged unprocessed.
        client._client.manual_ack_set(True)
        return client

    async def run(self, stop: asyncio.Event) -> None:
        logger.info("taking orders from MQTT topic %s", self.topic)
        while not stop.is_set():
            try:
                async with self._client() as client:
                    await client.subscribe(self.topic, qos=1)
                    self.subscribed.set()
                    await self._serve(client, stop)
            except aiomqtt.MqttError as exc:
                logger.warning("MQTT intake: %s; connecting again", exc)
                await _pause(stop, self.retry_delay)

    async def _serve(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        messages = aiter(client.messages)
        while not stop.is_set():
            next_message = asyncio.ensure_future(anext(messages))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({next_message, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not next_message.done():
                next_message.cancel()
                return
            message = next_message.result()
            while not await self._take(client, message):
                if stop.is_set():
                    return  # not acknowledged: the broker delivers it to the next session
                await _pause(stop, self.retry_delay)
            if message.qos > 0:
                client._client.ack(message.mid, message.qos)

    async def _take(self, client: aiomqtt.Client, message: aiomqtt.Message) -> bool:
        raw = message.payload
        payload = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
        where = f"mqtt:{message.topic.value}#{message.mid}"
        try:
            refusal = await self.handler(payload, where)
            if refusal is not None:
                properties = Properties(PacketTypes.PUBLISH)
                properties.ContentType = "application/json"
                properties.UserProperty = [
                    ("original-topic", message.topic.value),
                    ("original-sha256", hashlib.sha256(payload).hexdigest()),
                ]
                await client.publish(
                    self.rejects_topic, json.dumps(refusal), qos=1, properties=properties
                )
        except aiomqtt.MqttError:
            raise  # the connection is gone: connect again; the broker delivers it again
        except Exception:
            logger.warning("order at %s not recorded; it is taken again", where, exc_info=True)
            return False
        return True


def _session_properties() -> Properties:
    # MQTT 5: the session outlives the connection (a day), so what arrives while the intake
    # is down, or was delivered and not acknowledged, waits for it.
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 24 * 3600
    return properties
