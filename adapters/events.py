"""Events out to brokers: the :class:`EventPublisher` port and its Kafka and MQTT adapters.

A publish returns only once the broker has the event: Kafka's delivery report for an
idempotent producer with ``acks=all`` (every in-sync replica wrote it, a retried send is not
written twice), MQTT's PUBACK for QoS 1. Anything short of that raises
:class:`~hub.errors.TransientError`, so the relay's activity is retried and a broker outage
delays events without losing one; what can never be published (a message larger than the
broker takes, a topic no broker accepts) raises :class:`~hub.errors.PermanentError`. No
confluent-kafka or aiomqtt exception leaves this module (nor :mod:`adapters.intake`).

Credentials come from settings and are never logged: :func:`kafka_config` is the one place
that reads the Kafka password, :func:`mqtt_options` the MQTT one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiomqtt
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.errors import HubError, PermanentError, TransientError
from hub.settings import Settings

logger = logging.getLogger(__name__)

KAFKA = "kafka"
MQTT = "mqtt"


class EventPublisher(Protocol):
    """Publishes one event, confirmed by the broker before it returns."""

    async def publish(
        self, topic: str, key: str, event_id: str, body: bytes, headers: Mapping[str, str]
    ) -> None: ...

    async def aclose(self) -> None: ...


# --- Kafka -----------------------------------------------------------------------------------

#: Errors no retry can cure: the event itself is refused.
_KAFKA_PERMANENT = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_MSG,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.RECORD_LIST_TOO_LARGE,
    }
)
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def kafka_config(settings: Settings) -> dict[str, Any]:
    """librdkafka's connection settings from the hub's (``HUB_KAFKA_*``)."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol,
        "client.id": "telecom-hub",
        # librdkafka logs to stderr by default; through the logger instead.
        "logger": logging.getLogger("hub.kafka"),
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        config |= {
            "sasl.mechanism": settings.kafka_sasl_mechanism,
            "sasl.username": settings.kafka_username,
            "sasl.password": settings.kafka_password.get_secret_value(),
        }
    return config


def kafka_error(error: KafkaError | KafkaException | BufferError, topic: str) -> HubError:
    """The hub error for a Kafka failure (one table, every call site)."""
    if isinstance(error, BufferError):
        return TransientError(f"the producer's queue is full ({topic})", system=KAFKA)
    if isinstance(error, KafkaException):
        error = error.args[0]
    assert isinstance(error, KafkaError)
    text = f"{topic}: {error.name()} ({error.str()})"
    if error.code() in _KAFKA_PERMANENT:
        return PermanentError(text, system=KAFKA)
    return TransientError(text, system=KAFKA)


class KafkaPublisher:
    """An idempotent producer (``enable.idempotence``, ``acks=all``); each publish waits for
    its delivery report. One thread serves the delivery callbacks of every publish, so
    concurrent publishes are batched by librdkafka and none blocks the event loop."""

    def __init__(self, settings: Settings, *, linger_ms: int = 5) -> None:
        timeout_ms = int(settings.kafka_delivery_timeout.total_seconds() * 1000)
        self._producer = Producer(
            kafka_config(settings)
            | {
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": linger_ms,
                # A publish fails (and is retried by Temporal) rather than waiting for ever.
                "message.timeout.ms": timeout_ms,
                "request.timeout.ms": min(timeout_ms, 30_000),
            }
        )
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._serve, name="kafka-deliveries", daemon=True)
        self._poller.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.1)

    async def publish(
        self, topic: str, key: str, event_id: str, body: bytes, headers: Mapping[str, str]
    ) -> None:
        if not _TOPIC.fullmatch(topic):
            raise PermanentError(f"not a Kafka topic name: {topic!r}", system=KAFKA)
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()

        def report(error: KafkaError | None, _: Message) -> None:
            loop.call_soon_threadsafe(_settle, delivered, error, topic)

        sent = [("eventId", event_id), *headers.items()]
        try:
            self._producer.produce(
                topic,
                value=body,
                key=key.encode(),
                headers=[(name, value.encode()) for name, value in sent],
                on_delivery=report,
            )
        except (KafkaException, BufferError) as exc:
            raise kafka_error(exc, topic) from exc
        await delivered

    async def aclose(self) -> None:
        await asyncio.to_thread(self._producer.flush, 10)
        self._closed.set()
        await asyncio.to_thread(self._poller.join, 5)


def _settle(future: asyncio.Future[None], error: KafkaError | None, topic: str) -> None:
    if future.done():  # the publisher gave up waiting (cancelled)
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(kafka_error(error, topic))


# --- MQTT ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MqttOptions:
    hostname: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def mqtt_options(settings: Settings) -> MqttOptions:
    """Where the MQTT broker is and who the hub is there (``HUB_MQTT_*``)."""
    parts = urlsplit(settings.mqtt_url)
    tls = parts.scheme == "mqtts"
    return MqttOptions(
        hostname=parts.hostname or "127.0.0.1",
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=settings.mqtt_username or None,
        password=settings.mqtt_password.get_secret_value() or None,
    )


def mqtt_client(options: MqttOptions, **kwargs: Any) -> aiomqtt.Client:
    """An aiomqtt client on MQTT 5 (user properties carry the event id)."""
    tls_params = aiomqtt.TLSParameters() if options.tls else None
    return aiomqtt.Client(
        options.hostname,
        options.port,
        username=options.username,
        password=options.password,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_params=tls_params,
        timeout=10,
        **kwargs,
    )


def mqtt_topic_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be published to, or None."""
    if not topic or "+" in topic or "#" in topic or "\x00" in topic:
        return "must not be empty nor contain + # or NUL"
    if len(topic.encode()) > 65535:
        return "longer than MQTT allows"
    return None


class MqttPublisher:
    """Publishes with QoS 1 on one connection, opened on first use and again after a failure;
    each publish waits for the broker's PUBACK."""

    def __init__(self, settings: Settings) -> None:
        self._options = mqtt_options(settings)
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()

    async def _connected(self) -> aiomqtt.Client:
        async with self._lock:
            if self._client is None:
                client = mqtt_client(
                    self._options, identifier=f"hub-events-{uuid.uuid4().hex[:12]}"
                )
                try:
                    await client.__aenter__()
                except aiomqtt.MqttError as exc:
                    raise TransientError(f"cannot connect: {exc}", system=MQTT) from exc
                self._client = client
            return self._client

    async def publish(
        self, topic: str, key: str, event_id: str, body: bytes, headers: Mapping[str, str]
    ) -> None:
        if problem := mqtt_topic_problem(topic):
            raise PermanentError(f"topic {topic!r} {problem}", system=MQTT)
        client = await self._connected()
        properties = Properties(PacketTypes.PUBLISH)
        properties.ContentType = "application/json"
        properties.UserProperty = [("eventId", event_id), ("key", key), *headers.items()]
        try:
            await client.publish(topic, body, qos=1, properties=properties)
        except aiomqtt.MqttError as exc:
            await self._drop(client)
            raise TransientError(f"{topic}: not acknowledged: {exc}", system=MQTT) from exc

    async def _drop(self, client: aiomqtt.Client) -> None:
        async with self._lock:
            if self._client is client:
                self._client = None
        with contextlib.suppress(aiomqtt.MqttError):  # the connection is gone already
            await client.__aexit__(None, None, None)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._drop(self._client)


def publishers(settings: Settings) -> dict[str, EventPublisher]:
    """The publishers the settings configure, by sink name (``kafka``, ``mqtt``)."""
    found: dict[str, EventPublisher] = {}
    if settings.kafka_bootstrap:
        found[KAFKA] = KafkaPublisher(settings)
    if settings.mqtt_url:
        found[MQTT] = MqttPublisher(settings)
    return found
