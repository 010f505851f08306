"""Orders arriving on Kafka and MQTT, end to end: broker -> ``hub intake``'s consumer -> the
POST path -> Temporal -> worker -> simulators, on the real brokers.

A good order is recorded and runs; the same ``externalId`` again places no second order; a
bad one lands on the rejects topic with the TMF error body a POST would have had; and a
message whose order could not be recorded is neither committed nor acknowledged, so it comes
again to the next consumer.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiomqtt
import pytest
from confluent_kafka import Producer
from temporalio.client import Client

from adapters.events import mqtt_client, mqtt_options
from adapters.intake import KafkaOrderConsumer, MqttOrderConsumer
from api.intake import OrderIntake
from hub.settings import Settings
from hub.tools.intake import send
from tests.brokers.conftest import committed, create_topics, read, reader, with_brokers
from tests.conftest import Hub, eventually, running_hub, settings_for
from tests.factories import new_identity, order

ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"


@pytest.fixture(scope="module")
async def module_hub(
    tmp_path_factory: pytest.TempPathFactory,
    simulator_process: dict[str, str],
    temporal_client: Client,
) -> AsyncIterator[Hub]:
    """One worker and API for the module (starting them is most of a test's time)."""
    settings = settings_for(tmp_path_factory.mktemp("intake"), simulator_process)
    async with running_hub(settings, temporal_client) as running:
        yield running


@pytest.fixture
def hub(module_hub: Hub, kafka_bootstrap: str, mqtt_url: str) -> Hub:
    """The module's hub, with topics, group and client id of this test's own."""
    settings = with_brokers(module_hub.settings, kafka_bootstrap, mqtt_url)
    create_topics(kafka_bootstrap, settings.kafka_intake_topic, settings.kafka_rejects_topic)
    return replace(module_hub, settings=settings)


def intake_of(hub: Hub) -> OrderIntake:
    async def temporal() -> Client:
        return hub.client

    return OrderIntake(hub.settings, hub.sessions, temporal)


Handler = Callable[[bytes, str], Awaitable[dict[str, Any] | None]]


@asynccontextmanager
async def consuming(consumer: KafkaOrderConsumer | MqttOrderConsumer) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


class Failing:
    """A handler that cannot record anything (the database is down), counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, payload: bytes, source: str) -> dict[str, Any] | None:
        self.calls += 1
        raise ConnectionError("database unreachable")


async def orders_with(hub: Hub, external_id: str) -> list[dict[str, Any]]:
    response = await hub.api.get(ORDERS, params={"externalId": external_id})
    assert response.status_code == 200, response.text
    return response.json()


async def completed(hub: Hub, external_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        found = await orders_with(hub, external_id)
        return found[0] if found and found[0]["state"] == "completed" else None

    return await eventually(done, timeout=60)


def produce(bootstrap: str, topic: str, *messages: tuple[str, bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in messages:
        producer.produce(topic, key=key.encode(), value=value)
    assert producer.flush(10) == 0


async def test_kafka_orders_are_placed_once_and_bad_ones_rejected(hub: Hub) -> None:
    settings = hub.settings
    body = order(new_identity())
    bad = {**order(new_identity()), "relatedParty": []}  # no customer
    produce(
        settings.kafka_bootstrap,
        settings.kafka_intake_topic,
        (body["externalId"], json.dumps(body).encode()),
        (body["externalId"], json.dumps(body).encode()),  # delivered twice
        (bad["externalId"], json.dumps(bad).encode()),
        ("junk", b"{not json"),
    )
    consumer = KafkaOrderConsumer(settings, intake_of(hub).handle, retry_delay=0.2)
    rejects = reader(settings.kafka_bootstrap, settings.kafka_rejects_topic)
    try:
        async with consuming(consumer):
            placed = await completed(hub, body["externalId"])
            refused = await read(rejects, 2)
            await eventually(
                lambda: _async(
                    committed(
                        settings.kafka_bootstrap,
                        settings.kafka_intake_group,
                        settings.kafka_intake_topic,
                    )
                    == 4
                ),
                timeout=20,
            )
    finally:
        rejects.close()
    assert len(await orders_with(hub, body["externalId"])) == 1
    assert await orders_with(hub, bad["externalId"]) == []
    assert placed["relatedParty"][0]["id"] == body["relatedParty"][0]["id"]
    by_key = {m.key(): m for m in refused}  # type: ignore[attr-defined]
    error = json.loads(by_key[bad["externalId"].encode()].value())
    assert error == {
        "@type": "Error",
        "code": "400",
        "reason": "Bad Request",
        "message": "relatedParty: exactly one relatedParty with role 'customer' is needed "
        "(none given)",
        "status": "400",
    }
    assert json.loads(by_key[b"junk"].value())["message"] == "body: not valid JSON"
    headers = dict(by_key[b"junk"].headers())
    assert headers["original-topic"] == settings.kafka_intake_topic.encode()
    assert headers["original-offset"].isdigit()


async def test_kafka_offset_is_committed_only_after_the_order_is_recorded(hub: Hub) -> None:
    settings = hub.settings
    body = order(new_identity())
    assert send(settings, "kafka", body) == settings.kafka_intake_topic  # as `hub intake send`
    failing = Failing()
    async with consuming(KafkaOrderConsumer(settings, failing, retry_delay=0.1)):
        # Taken again and again from the same offset, never committed.
        await eventually(lambda: _async(failing.calls >= 3), timeout=20)
    group, topic = settings.kafka_intake_group, settings.kafka_intake_topic
    assert committed(settings.kafka_bootstrap, group, topic) == 0
    # The next consumer of the group gets it, and records it.
    async with consuming(KafkaOrderConsumer(settings, intake_of(hub).handle, retry_delay=0.1)):
        await completed(hub, body["externalId"])
        await eventually(
            lambda: _async(committed(settings.kafka_bootstrap, group, topic) == 1), timeout=20
        )
    assert len(await orders_with(hub, body["externalId"])) == 1


async def _async(value: Any) -> Any:
    return value


@asynccontextmanager
async def mqtt_sender(settings: Settings) -> AsyncIterator[aiomqtt.Client]:
    async with mqtt_client(
        mqtt_options(settings), identifier=f"sender-{uuid.uuid4().hex[:8]}"
    ) as client:
        yield client


async def test_mqtt_orders_are_placed_once_and_bad_ones_rejected(hub: Hub) -> None:
    settings = hub.settings
    body = order(new_identity())
    bad = order(new_identity())
    bad["serviceOrderItem"][0]["action"] = "upgrade"
    async with mqtt_sender(settings) as sender:
        await sender.subscribe(settings.mqtt_rejects_topic, qos=1)
        consumer = MqttOrderConsumer(settings, intake_of(hub).handle, retry_delay=0.2)
        async with consuming(consumer):
            await asyncio.wait_for(consumer.subscribed.wait(), 20)
            for payload in (body, body, bad):
                await sender.publish(settings.mqtt_intake_topic, json.dumps(payload), qos=1)
            await completed(hub, body["externalId"])
            message = await asyncio.wait_for(anext(aiter(sender.messages)), 20)
    assert len(await orders_with(hub, body["externalId"])) == 1
    assert await orders_with(hub, bad["externalId"]) == []
    error = json.loads(message.payload)  # type: ignore[arg-type]
    assert error["code"] == "400"
    assert error["message"].startswith("serviceOrderItem[0].action: Input should be 'add'")
    properties = dict(message.properties.UserProperty)  # type: ignore[union-attr]
    assert properties["original-topic"] == settings.mqtt_intake_topic


async def test_mqtt_message_is_acknowledged_only_after_the_order_is_recorded(hub: Hub) -> None:
    settings = hub.settings
    body = order(new_identity())
    failing = Failing()
    first = MqttOrderConsumer(settings, failing, retry_delay=0.1)
    async with consuming(first):
        await asyncio.wait_for(first.subscribed.wait(), 20)
        await asyncio.to_thread(send, settings, "mqtt", body)  # as `hub intake send`
        await eventually(lambda: _async(failing.calls >= 2), timeout=20)
    # Never acknowledged: the broker delivers it again to the same client id's next session.
    async with consuming(MqttOrderConsumer(settings, intake_of(hub).handle, retry_delay=0.1)):
        await completed(hub, body["externalId"])
    assert len(await orders_with(hub, body["externalId"])) == 1


async def test_broker_orders_are_placed_by_the_configured_identity(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    settings = hub.settings.model_copy(
        update={"intake_caller": "crm-feed", "intake_partner_id": "p-alpine"}
    )
    intake = intake_of(replace(hub, settings=settings))
    body = order(new_identity())
    with caplog.at_level("INFO", logger="hub.intake"):
        assert await intake.handle(json.dumps(body).encode(), "test") is None
    [placed] = await orders_with(hub, body["externalId"])
    parties = {party["role"]: party["id"] for party in placed["relatedParty"]}
    # As the partner's token would have placed it: its customer in its namespace.
    assert parties == {
        "customer": f"p-alpine~{body['relatedParty'][0]['id']}",
        "wholesalePartner": "p-alpine",
    }
    assert any("by broker:crm-feed" in record.getMessage() for record in caplog.records)
