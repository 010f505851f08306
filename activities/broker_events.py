"""The relay's activity that puts one hub event on a broker: ``events.publish_to_broker``.

The relay (the outbox's Temporal workflow) calls it once per event and sink. It returns when
the broker has the event and raises otherwise, so Temporal retries it: a broker that is down
delays events and loses none, and a retried publish sends the same ``eventId`` (receivers
dedupe by it; Kafka's idempotent producer also drops its own resends).

Where an event goes:

- Kafka: ``<HUB_KAFKA_TOPIC_PREFIX><domain>.events`` (``hub.serviceOrdering.events``), keyed by
  the resource id, so one order's events stay in one partition, in order.
- MQTT: ``<HUB_MQTT_TOPIC_PREFIX>/<resource>/<resource id>/events``
  (``hub/serviceOrder/<order id>/events``), QoS 1; ``<resource>`` is the key of the envelope's
  ``event`` object (``serviceOrder``, ``cancelServiceOrder``), the domain if it has none.

The body is the TMF event envelope as JSON; the ``eventId`` header (Kafka) or user property
(MQTT 5) and CloudEvents' ``ce_*`` names carry the id without parsing the body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.definitions import defn
from activities.errors import outside_call
from adapters.events import KAFKA, MQTT, EventPublisher
from hub.errors import PermanentError
from hub.events.relay import PUBLISH_TO_BROKER
from hub.events.relay import SYSTEM as EVENTS

#: What a domain, a resource name and a resource id may be: each goes into a topic name.
_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
_ID = re.compile(r"[A-Za-z0-9._~:@-]{1,200}")
#: ``ApplicationError.type`` of a sink this worker has no broker for (retried: configuring
#: the broker and restarting the worker delivers the event).
SINK_NOT_CONFIGURED = "BrokerNotConfigured"
CE_SOURCE = "urn:telecom-hub"


@dataclass
class PublishToBrokerInput:
    """One event for one sink: ``sink`` is ``kafka`` or ``mqtt``; ``event`` the TMF envelope."""

    sink: str
    domain: str
    resource_id: str
    event_id: str
    event: dict[str, Any]


@dataclass
class PublishToBrokerResult:
    sink: str
    topic: str


def kafka_topic(prefix: str, domain: str) -> str:
    return f"{prefix}{domain}.events"


def mqtt_topic(prefix: str, resource: str, resource_id: str) -> str:
    return f"{prefix}/{resource}/{resource_id}/events"


def resource_of(data: PublishToBrokerInput) -> str:
    """The resource an envelope reports on: the single key of its ``event`` object."""
    inner = data.event.get("event")
    if isinstance(inner, dict) and len(inner) == 1:
        return str(next(iter(inner)))
    return data.domain


def ce_headers(data: PublishToBrokerInput) -> dict[str, str]:
    """CloudEvents' Kafka binding names beside the hub's ``eventId``."""
    headers = {
        "ce_specversion": "1.0",
        "ce_id": data.event_id,
        "ce_source": CE_SOURCE,
        "ce_type": str(data.event.get("eventType") or "Event"),
        "ce_subject": data.resource_id,
        "content-type": "application/json",
    }
    if time := data.event.get("eventTime"):
        headers["ce_time"] = str(time)
    return headers


class BrokerEvents:
    """The activity, bound to the publishers the worker's settings configure."""

    def __init__(
        self,
        publishers: Mapping[str, EventPublisher],
        *,
        kafka_prefix: str = "hub.",
        mqtt_prefix: str = "hub",
    ) -> None:
        self.publishers = dict(publishers)
        self.kafka_prefix = kafka_prefix
        self.mqtt_prefix = mqtt_prefix

    def topic(self, data: PublishToBrokerInput) -> str:
        for field, value, pattern in (
            ("domain", data.domain, _NAME),
            ("resource_id", data.resource_id, _ID),
        ):
            if not pattern.fullmatch(value):
                raise PermanentError(f"{field} {value!r} cannot be part of a topic name")
        if data.sink == KAFKA:
            return kafka_topic(self.kafka_prefix, data.domain)
        resource = resource_of(data)
        if not _NAME.fullmatch(resource):
            raise PermanentError(f"resource {resource!r} cannot be part of a topic name")
        return mqtt_topic(self.mqtt_prefix, resource, data.resource_id)

    @defn(PUBLISH_TO_BROKER, system=EVENTS)
    async def publish_to_broker(self, data: PublishToBrokerInput) -> PublishToBrokerResult:
        """Publish ``data.event`` to ``data.sink``; returns once the broker acknowledged it."""
        publisher = self.publishers.get(data.sink)
        if publisher is None:
            configured = ", ".join(sorted(self.publishers)) or "none"
            raise ApplicationError(
                f"sink {data.sink!r} is not configured on this worker (configured: {configured})",
                type=SINK_NOT_CONFIGURED,
            )
        body = json.dumps(data.event, separators=(",", ":"), ensure_ascii=False).encode()
        with outside_call():
            topic = self.topic(data)
            await publisher.publish(topic, data.resource_id, data.event_id, body, ce_headers(data))
        return PublishToBrokerResult(sink=data.sink, topic=topic)


__all__ = ["KAFKA", "MQTT", "BrokerEvents", "PublishToBrokerInput", "PublishToBrokerResult"]
