"""The outbox across a worker killed with SIGKILL while deliveries are in flight, and an API
killed while orders are being posted.

Every event the orders' state changes wrote reaches the subscriber, the first time in order
per order, and nothing arrives that is not in the outbox: a delivery the dead worker had sent
is sent again with the same ``eventId`` (``webhook-id``), never under a new one; an order the
dead API had committed has its events delivered though the API never woke the relay (its
sweep finds them), and one it had not committed is posted again and reported once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading

from bench import chaos
from bench.listener import Listener, start_listener
from tests.chaos.conftest import Chaos
from tests.conftest import eventually

HUB = "/tmf-api/serviceOrdering/v4/hub"
ORDERS = 4


def outbox(chaos_hub: Chaos, order_ids: set[str]) -> dict[str, list[str]]:
    """The outbox's event ids of ``order_ids``, by order, in the order they were written."""
    with sqlite3.connect(chaos_hub.database) as db:
        rows = db.execute(
            "SELECT resource_id, event_id FROM event_outbox ORDER BY resource_seq"
        ).fetchall()
    by_order: dict[str, list[str]] = {}
    for resource_id, event_id in rows:
        if resource_id in order_ids:
            by_order.setdefault(resource_id, []).append(event_id)
    return by_order


async def all_heard_in_order(
    chaos_hub: Chaos, order_ids: set[str], listener: Listener
) -> list[str]:
    """Waits until the subscriber has every event of ``order_ids``; checks that each order's
    were first heard in the order written and that nothing came the outbox does not hold.
    Answers the ids heard, repeats included."""

    async def all_heard() -> bool:
        wanted = {e for ids in outbox(chaos_hub, order_ids).values() for e in ids}
        return bool(wanted) and wanted <= set(listener.ids())

    await eventually(all_heard, timeout=90)
    written = outbox(chaos_hub, order_ids)
    assert set(written) == order_ids
    every_id = {e for ids in written.values() for e in ids}
    heard = listener.ids()
    assert set(heard) <= every_id, "an event arrived that the outbox does not hold"
    for ids in written.values():
        first_seen = list(dict.fromkeys(e for e in heard if e in set(ids)))
        assert first_seen == ids
    return heard


async def test_a_worker_killed_mid_delivery_loses_no_event_and_makes_no_new_id(
    chaos_hub: Chaos,
) -> None:
    listener = start_listener()
    subscription = ""
    try:
        hold = threading.Event()
        listener.held = hold  # every delivery waits in the listener until released
        response = await chaos_hub.api.post(HUB, json={"callback": listener.url})
        assert response.status_code == 201, response.text
        subscription = response.json()["id"]
        identities = chaos.new_identities(ORDERS)
        order_ids = set((await chaos.submit_all(chaos_hub.api, identities)).values())

        async def in_flight() -> bool:
            return len(listener.received) > 0

        await eventually(in_flight, timeout=60)
        chaos_hub.stack.kill("worker")
        with listener.lock:
            listener.held = None
        hold.set()
        await chaos_hub.stack.restart("worker")
        await chaos_hub.settled(identities, timeout=120)

        heard = await all_heard_in_order(chaos_hub, order_ids, listener)
        # The delivery the dead worker had in flight was sent again, under its own id.
        assert len(heard) > len(set(heard))
    finally:
        # The chaos stack is shared: the next tests' events must not go to a dead listener.
        if subscription:
            await chaos_hub.api.delete(f"{HUB}/{subscription}")
        listener.server.shutdown()


async def test_the_api_killed_while_orders_are_posted_loses_no_event(chaos_hub: Chaos) -> None:
    listener = start_listener()
    subscription = ""
    try:
        response = await chaos_hub.api.post(HUB, json={"callback": listener.url})
        assert response.status_code == 201, response.text
        subscription = response.json()["id"]
        identities = chaos.new_identities(12)
        # Two at a time, each retried (same externalId) until the API, restarted, answers.
        posting = asyncio.create_task(
            chaos.submit_all(chaos_hub.api, identities, concurrency=2, timeout=120)
        )

        async def some_committed() -> bool:
            return len(chaos_hub.orders(identities)) >= 2

        await eventually(some_committed, timeout=60, interval=0.02)
        chaos_hub.stack.kill("api")  # mid-burst: orders committed, posts unanswered, pokes lost
        assert len(chaos_hub.orders(identities)) < len(identities), "killed after the burst"
        await chaos_hub.stack.restart("api")
        order_ids = set((await posting).values())
        await chaos_hub.settled(identities, timeout=120)
        # One order per externalId: a post the dead API never answered was not doubled.
        orders = chaos_hub.orders(identities)
        assert len(orders) == len(identities) and {o.id for o in orders} == order_ids
        heard = await all_heard_in_order(chaos_hub, order_ids, listener)
        created = [e for e in listener.events() if e["eventType"] == "ServiceOrderCreateEvent"]
        assert sorted(e["event"]["serviceOrder"]["id"] for e in created) == sorted(order_ids)
        assert heard
    finally:
        # The chaos stack is shared: the next tests' events must not go to a dead listener.
        if subscription:
            await chaos_hub.api.delete(f"{HUB}/{subscription}")
        listener.server.shutdown()
