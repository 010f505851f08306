"""The outbox across a worker killed with SIGKILL while deliveries are in flight.

Every event the orders' state changes wrote reaches the subscriber, the first time in order
per order, and nothing arrives that is not in the outbox: a delivery the dead worker had sent
is sent again with the same ``eventId`` (``webhook-id``), never under a new one.
"""

from __future__ import annotations

import sqlite3
import threading

from bench import chaos
from bench.listener import start_listener
from tests.chaos.conftest import Chaos
from tests.conftest import eventually

HUB = "/tmf-api/serviceOrdering/v4/hub"
ORDERS = 4


async def test_a_worker_killed_mid_delivery_loses_no_event_and_makes_no_new_id(
    chaos_hub: Chaos,
) -> None:
    listener = start_listener()
    try:
        hold = threading.Event()
        listener.held = hold  # every delivery waits in the listener until released
        response = await chaos_hub.api.post(HUB, json={"callback": listener.url})
        assert response.status_code == 201, response.text
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

        def outbox() -> dict[str, list[str]]:
            with sqlite3.connect(chaos_hub.database) as db:
                rows = db.execute(
                    "SELECT resource_id, event_id FROM event_outbox ORDER BY resource_seq"
                ).fetchall()
            by_order: dict[str, list[str]] = {}
            for resource_id, event_id in rows:
                if resource_id in order_ids:
                    by_order.setdefault(resource_id, []).append(event_id)
            return by_order

        async def all_heard() -> bool:
            wanted = {e for ids in outbox().values() for e in ids}
            return bool(wanted) and wanted <= set(listener.ids())

        await eventually(all_heard, timeout=90)
        written = outbox()
        assert set(written) == order_ids
        every_id = {e for ids in written.values() for e in ids}
        heard = listener.ids()
        assert set(heard) <= every_id, "an event arrived that the outbox does not hold"
        # The delivery the dead worker had in flight was sent again, under its own id.
        assert len(heard) > len(set(heard))
        for ids in written.values():
            first_seen = list(dict.fromkeys(e for e in heard if e in set(ids)))
            assert first_seen == ids
    finally:
        listener.server.shutdown()
