"""Event subscriptions end to end: the API's ``/hub``, the outbox, the relay on the real dev
server, and a real HTTP listener on loopback as the subscriber."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from bench.listener import Listener, start_listener
from hub.db import session_scope
from hub.events.envelopes import Event, EventType
from hub.events.models import EventDelivery, EventSubscription, OutboxEvent
from hub.events.outbox import add_event
from hub.events.relay import poke, relay_of, relay_workflow_id
from hub.partners import webhooks
from hub.settings import Settings
from tests.conftest import Hub, Simulators, eventually, running_hub
from tests.events.conftest import EVENT_SETTINGS
from tests.factories import new_identity, order

HUB = "/tmf-api/serviceOrdering/v4/hub"
ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
CANCEL = "/tmf-api/serviceOrdering/v4/cancelServiceOrder"


async def subscribe(hub: Hub, listener: Listener, **body: Any) -> dict[str, Any]:
    response = await hub.api.post(HUB, json={"callback": listener.url, **body})
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"].endswith(f"{HUB}/{created['id']}")
    return dict(created)


async def emit(hub: Hub, resource_id: str, *states: str) -> list[str]:
    """State changes of a (made-up) order written to the outbox, as a writer does."""
    async with session_scope(hub.sessions) as session:
        rows = [
            await add_event(
                session,
                Event(
                    EventType.SERVICE_ORDER_STATE_CHANGE,
                    resource_id,
                    {"id": resource_id, "state": state},
                    f"test: {state}",
                ),
            )
            for state in states
        ]
    await poke(hub.client, relay_of(hub.settings))
    return [row.event_id for row in rows]


def verified(secret: str, listener: Listener) -> list[bool]:
    return [
        webhooks.verify(
            secret,
            r.headers["webhook-id"],
            r.headers["webhook-timestamp"],
            r.headers["webhook-signature"],
            r.body,
            now=time.time(),
        )
        and r.headers["webhook-id"] == r.event["eventId"]
        for r in listener.received
    ]


async def test_an_orders_events_reach_subscribers_signed_in_order_and_filtered(
    events_hub: Hub, sims: Simulators, listener: Listener
) -> None:
    hub = events_hub
    everything = await subscribe(hub, listener)
    assert everything["secret"].startswith("whsec_") and everything["query"] is None
    completed = start_listener()
    try:
        given = webhooks.new_secret()
        query = "eventType=ServiceOrderStateChangeEvent&event.serviceOrder.state=completed"
        filtered = await subscribe(hub, completed, query=query, secret=given)
        assert "secret" not in filtered and filtered["query"] == query

        created = await hub.api.post(ORDERS, json=order(new_identity()))
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]

        def completed_seen(target: Listener) -> bool:
            return any(
                e["eventType"] == "ServiceOrderStateChangeEvent"
                and e["event"]["serviceOrder"]["state"] == "completed"
                for e in target.events()
            )

        async def both_done() -> bool:
            return completed_seen(listener) and completed_seen(completed)

        await eventually(both_done, timeout=60)
        async with hub.sessions() as session:
            outbox = [
                row.event_id
                for row in await session.exec(
                    select(OutboxEvent)
                    .where(OutboxEvent.resource_id == order_id)
                    .order_by(OutboxEvent.resource_seq)  # type: ignore[arg-type]
                )
            ]
        # Everything, once each, in the order it happened, every signature good.
        assert listener.ids() == outbox
        kinds = [e["eventType"] for e in listener.events()]
        assert kinds[0] == "ServiceOrderCreateEvent"
        assert "ServiceOrderAttributeValueChangeEvent" in kinds
        assert all(verified(everything["secret"], listener))
        first = listener.events()[0]
        assert set(first) >= {
            "eventId", "eventTime", "eventType", "correlationId", "domain", "title",
            "description", "priority", "timeOccurred", "event",
        }  # fmt: skip
        assert first["event"]["serviceOrder"]["id"] == order_id
        # The filtered subscription heard of the completion only, under its own secret.
        assert [e["eventType"] for e in completed.events()] == ["ServiceOrderStateChangeEvent"]
        assert verified(given, completed) == [True]

        log = await hub.api.get(f"{HUB}/{everything['id']}/deliveries")
        assert log.status_code == 200
        assert {d["status"] for d in log.json()} == {"delivered"}
        assert int(log.headers["x-total-count"]) == len(outbox)
    finally:
        completed.server.shutdown()


async def test_retry_after_is_honoured_and_410_ends_the_subscription(
    events_hub: Hub, listener: Listener
) -> None:
    hub = events_hub
    sub = await subscribe(hub, listener)
    listener.answer((503, {"Retry-After": "1"}))
    [event_id] = await emit(hub, "order-retry-after", "inProgress")

    async def two() -> bool:
        return len(listener.received) >= 2

    await eventually(two, timeout=20)
    first, second = listener.received[:2]
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event_id
    # The schedule says 200 ms; the subscriber asked for a second.
    assert second.at - first.at >= 0.9

    listener.answer((410, {}))
    await emit(hub, "order-gone", "inProgress")

    async def ended() -> bool:
        return (await hub.api.get(f"{HUB}/{sub['id']}")).status_code == 404

    await eventually(ended, timeout=20)
    async with hub.sessions() as session:
        row = await session.get(EventSubscription, sub["id"])
        assert row is not None and row.ended_reason == "the callback answered 410 Gone"
    heard = len(listener.received)
    [later] = await emit(hub, "order-after-410", "completed")

    async def dispatched() -> bool:
        async with hub.sessions() as session:
            event = (
                await session.exec(select(OutboxEvent).where(OutboxEvent.event_id == later))
            ).one()
            return event.dispatched_at is not None

    await eventually(dispatched, timeout=20)
    async with hub.sessions() as session:
        rows = await session.exec(
            select(EventDelivery).where(EventDelivery.subscription_id == sub["id"])
        )
        assert later not in {d.event_id for d in rows}
    assert len(listener.received) == heard


async def test_an_exhausted_delivery_is_a_dead_letter_whose_replay_keeps_the_event_id(
    events_hub: Hub, listener: Listener
) -> None:
    hub = events_hub
    sub = await subscribe(hub, listener)
    listener.answer((500, {}), (500, {}), (500, {}))
    [event_id, after] = await emit(hub, "order-dead", "inProgress", "completed")

    async def dead() -> list[dict[str, Any]]:
        log = await hub.api.get(f"{HUB}/{sub['id']}/deliveries", params={"status": "dead"})
        return list(log.json())

    [delivery] = await eventually(dead, timeout=20)
    assert (delivery["eventId"], delivery["attempts"]) == (event_id, 3)
    assert delivery["lastResponseCode"] == 500
    # A dead delivery does not hold up the next event of the same order for ever.
    await eventually(lambda: _has(listener, after), timeout=20)

    letters = (await hub.api.get("/deadLetters", params={"process": "event-delivery"})).json()
    [letter] = [x for x in letters if x["input"]["eventId"] == event_id]
    assert letter["status"] == "parked" and letter["id"] == delivery["deadLetterId"]

    retried = await hub.api.post(f"/deadLetters/{letter['id']}/retry", json={})
    assert retried.status_code == 200, retried.text

    async def resolved() -> bool:
        body = (await hub.api.get(f"/deadLetters/{letter['id']}")).json()
        return bool(body["status"] == "resolved")

    await eventually(resolved, timeout=20)
    assert listener.ids().count(event_id) == 4  # three failures, then the replay
    assert all(verified(sub["secret"], listener))
    again = await hub.api.post(f"{HUB}/{sub['id']}/deliveries/{delivery['id']}/replay", json={})
    assert again.status_code == 409 and "delivered" in again.json()["message"]


async def _has(listener: Listener, event_id: str) -> bool:
    return event_id in listener.ids()


async def test_a_subscription_the_hub_cannot_honour_is_a_400(events_hub: Hub) -> None:
    hub = events_hub
    good = "http://127.0.0.1:9/events"
    refused = {
        "state=completed": "cannot evaluate",
        "eventType=NoSuchEvent": "unknown eventType",
        "event.serviceOrder.state>=x": "no operators",
        "event.partyRole.status=active": "events of this hub carry",
        "eventType=ServiceOrderCreateEvent&eventType=ServiceOrderStateChangeEvent": "twice",
    }
    for query, problem in refused.items():
        response = await hub.api.post(HUB, json={"callback": good, "query": query})
        assert response.status_code == 400, (query, response.text)
        body = response.json()
        assert body["code"] == "400" and problem in body["message"], (query, body)
    for callback in ("http://10.1.2.3/events", "ftp://127.0.0.1/x", "http://u:p@127.0.0.1/x"):
        response = await hub.api.post(HUB, json={"callback": callback})
        assert response.status_code == 400, (callback, response.text)
    response = await hub.api.post(HUB, json={"callback": good, "secret": "not-base64!"})
    assert response.status_code == 400 and "secret" in response.json()["message"]
    assert (await hub.api.get(f"{HUB}/nope")).status_code == 404
    anonymous = await hub.api.post(HUB, json={"callback": good}, headers={"X-API-Key": "wrong"})
    assert anonymous.status_code == 401


async def test_a_parked_order_is_reported_as_information_required_and_its_cancellation(
    events_hub: Hub, sims: Simulators, listener: Listener
) -> None:
    hub = events_hub
    kinds = (
        "ServiceOrderInformationRequiredEvent,CancelServiceOrderCreateEvent,"
        "CancelServiceOrderStateChangeEvent"
    )
    await subscribe(hub, listener, query=f"eventType={kinds}")
    identity = new_identity()
    await sims.fault(
        "billing", operation="CreateSubscription", match=identity["imsi"], kind="transient"
    )
    created = await hub.api.post(ORDERS, json=order(identity))
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]

    async def told(count: int) -> list[dict[str, Any]] | None:
        events = listener.events()
        return events if len(events) >= count else None

    [event] = await eventually(lambda: told(1), timeout=60)
    [letter] = (await hub.api.get("/deadLetters", params={"orderId": order_id})).json()
    assert event["eventType"] == "ServiceOrderInformationRequiredEvent"
    assert event["priority"] == "high"
    assert event["event"]["serviceOrder"]["id"] == order_id
    assert letter["id"] in event["description"]

    cancel = await hub.api.post(CANCEL, json={"serviceOrder": {"id": order_id}})
    assert cancel.status_code == 201, cancel.text
    _, accepted, closed = await eventually(lambda: told(3), timeout=60)
    assert accepted["eventType"] == "CancelServiceOrderCreateEvent"
    assert accepted["event"]["cancelServiceOrder"]["id"] == cancel.json()["id"]
    assert accepted["event"]["cancelServiceOrder"]["state"] == "inProgress"
    assert accepted["correlationId"] == order_id
    assert closed["eventType"] == "CancelServiceOrderStateChangeEvent"
    assert closed["event"]["cancelServiceOrder"]["state"] == "done"


async def test_with_no_one_listening_an_order_wakes_no_relay(hub: Hub, sims: Simulators) -> None:
    """No subscription and no broker sink: the order's writers (the API, the state writes)
    do not poke the relay, and its events wait, written, for the relay's sweep."""
    created = await hub.api.post(ORDERS, json=order(new_identity()))
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]

    async def completed() -> bool:
        got = await hub.api.get(f"{ORDERS}/{order_id}")
        return bool(got.json()["state"] == "completed")

    await eventually(completed, timeout=60)
    async with hub.sessions() as session:
        rows = list(
            await session.exec(select(OutboxEvent).where(OutboxEvent.resource_id == order_id))
        )
    assert len(rows) >= 3 and all(row.dispatched_at is None for row in rows)
    relay = hub.client.get_workflow_handle(relay_workflow_id(hub.settings.task_queue))
    with pytest.raises(RPCError) as missing:
        await relay.describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_the_relay_deletes_delivered_events_past_their_retention(
    hub_settings: Settings, temporal_client: Client, listener: Listener
) -> None:
    settings = hub_settings.model_copy(
        update={
            **EVENT_SETTINGS,
            "events_retention": timedelta(seconds=2),
            "events_prune_interval": timedelta(seconds=1),
        }
    )
    async with running_hub(settings, temporal_client) as hub:
        await subscribe(hub, listener)
        ids = await emit(hub, "retained-order", "acknowledged", "inProgress")

        async def delivered() -> bool:
            return listener.ids() == ids

        await eventually(delivered, timeout=30)

        async def gone() -> bool:
            async with hub.sessions() as session:
                left = select(OutboxEvent).where(OutboxEvent.resource_id == "retained-order")
                return not list(await session.exec(left))

        await eventually(gone, timeout=30)
        async with hub.sessions() as session:
            log = select(EventDelivery).where(col(EventDelivery.event_id).in_(ids))
            assert not list(await session.exec(log))
