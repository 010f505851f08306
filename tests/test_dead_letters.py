"""Park and repair: a step that cannot go on alone waits for a person, and nothing is lost.

Real dev server, real simulators: an outage longer than the retry budget parks the order, an
operator's retry / skip / abort (through the API, as a Temporal update) releases it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from hub import search_attributes
from hub.models import OrderStateChange
from hub.permissions import plain_key_name
from tests.conftest import API_KEY, Hub, Simulators, eventually
from tests.factories import add_item, new_identity, order
from tests.tmf641_spec import assert_conforms

ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
LETTERS = "/deadLetters"
#: Who decides in these tests: the caller, by the key it authenticated with.
CALLER = f"api-key:{plain_key_name(API_KEY)}"


async def submit(hub: Hub, body: dict[str, Any]) -> str:
    response = await hub.api.post(ORDERS, json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def parked_letter(hub: Hub, order_id: str, timeout: float = 30) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        rows = (await hub.api.get(LETTERS, params={"orderId": order_id, "status": "parked"})).json()
        return rows[0] if rows else None

    return await eventually(find, timeout=timeout)


async def order_state(hub: Hub, order_id: str, timeout: float = 60) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        body = (await hub.api.get(f"{ORDERS}/{order_id}")).json()
        return body if body["state"] in ("completed", "failed", "cancelled") else None

    return await eventually(done, timeout=timeout)


async def order_moves(hub: Hub, order_id: str) -> list[dict[str, Any]]:
    """The order's own state changes (not its items'), oldest first."""
    async with hub.sessions() as session:
        rows = await session.exec(
            select(OrderStateChange)
            .where(OrderStateChange.order_id == order_id, col(OrderStateChange.item_id).is_(None))
            .order_by(col(OrderStateChange.id))
        )
        return [{"from": r.from_state, "to": r.to_state, "reason": r.reason} for r in rows]


async def letter(hub: Hub, letter_id: str) -> dict[str, Any]:
    return (await hub.api.get(f"{LETTERS}/{letter_id}")).json()


async def assert_no_trace(sims: Simulators, identity: dict[str, str]) -> None:
    for needle in (identity["imsi"], identity["customer"]):
        mentions = await sims.mentions(needle)
        assert not any(mentions.values()), f"{needle} left in {mentions}"


async def test_an_outage_parks_and_retry_after_it_completes(hub: Hub, sims: Simulators) -> None:
    identity = new_identity()
    rule = await sims.fault(
        "billing", operation="CreateSubscription", match=identity["imsi"], kind="transient"
    )
    order_id = await submit(hub, order(identity))
    parked = await parked_letter(hub, order_id)
    assert parked["step"] == "1/billing.create_subscription"
    assert parked["system"] == "billing" and parked["process"] == "service-activation"
    assert parked["errorType"] == "TransientError" and "gave up retrying" in parked["lastError"]
    assert parked["attempts"] == 5  # the test policy's maximum
    assert parked["firstFailureAt"] <= parked["lastFailureAt"]
    assert parked["input"]["imsi"] == identity["imsi"]
    handle = hub.client.get_workflow_handle(f"service-order-{order_id}")

    async def shown_parked() -> bool:
        described = await handle.describe()
        return described.typed_search_attributes.get(search_attributes.HUB_STATUS) == "parked"

    # The dead letter is written by the park's activity, the search attribute by the workflow
    # task after it: on a busy machine the row can be seen first.
    await eventually(shown_parked, timeout=10)
    # TMF641: the order is held while its step waits for a person, naming the dead letter.
    held = await hub.api.get(f"{ORDERS}/{order_id}")
    assert held.json()["state"] == "held"
    [message] = assert_conforms(held)["errorMessage"]
    assert parked["id"] in message["message"] and parked["step"] in message["message"]

    await sims.http.delete(f"{sims.urls['billing']}/_sim/faults/{rule['id']}")  # outage over
    # The body cannot say who decides (the field is accepted and ignored): the caller does.
    response = await hub.api.post(
        f"{LETTERS}/{parked['id']}/retry",
        json={"decidedBy": "noc-jane", "reason": "billing is back"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] is True
    assert response.json()["decidedBy"] == CALLER
    done = await order_state(hub, order_id)
    assert done["state"] == "completed" and "errorMessage" not in done
    moves = [(c["from"], c["to"]) for c in await order_moves(hub, order_id)]
    assert moves == [
        ("acknowledged", "inProgress"),
        ("inProgress", "held"),
        ("held", "inProgress"),
        ("inProgress", "completed"),
    ]
    closed = await letter(hub, parked["id"])
    assert closed["status"] == "resolved"
    assert closed["decision"] == "retry" and closed["decidedBy"] == CALLER
    assert closed["decidedAt"] and closed["closedAt"]
    state = await sims.state("billing")
    assert sum(s["imsi"] == identity["imsi"] for s in state["subscriptions"]) == 1


async def test_abort_compensates_and_fails(hub: Hub, sims: Simulators) -> None:
    identity = new_identity()
    await sims.fault("hss", operation="createSubscriber", match=identity["imsi"], kind="transient")
    order_id = await submit(hub, order(identity))
    parked = await parked_letter(hub, order_id)
    assert parked["input"]["ki"] == "***" and parked["input"]["opc"] == "***"  # redacted
    response = await hub.api.post(f"{LETTERS}/{parked['id']}/abort", json={"reason": "give up"})
    assert response.status_code == 200
    assert response.json()["decidedBy"] == CALLER
    done = await order_state(hub, order_id)
    assert done["state"] == "failed"
    assert f"aborted by {CALLER}" in done["errorMessage"][0]["message"]
    assert done["errorMessage"][0]["code"] == "processFailed"
    moves = await order_moves(hub, order_id)
    assert [m["to"] for m in moves] == ["inProgress", "held", "inProgress", "failed"]
    assert parked["id"] in (moves[1]["reason"] or "")
    await assert_no_trace(sims, identity)
    assert (await letter(hub, parked["id"]))["status"] == "aborted"


async def test_skip_where_allowed_and_refused_where_not(hub: Hub, sims: Simulators) -> None:
    identity = new_identity()
    await sims.fault("crm", operation="upsertService", match=identity["imsi"], kind="transient")
    order_id = await submit(hub, order(identity))
    parked = await parked_letter(hub, order_id)
    assert parked["step"] == "1/crm.activate_service" and parked["skippable"] is True
    response = await hub.api.post(
        f"{LETTERS}/{parked['id']}/skip", json={"reason": "activated by hand in the CRM"}
    )
    assert response.status_code == 200
    assert (await order_state(hub, order_id))["state"] == "completed"
    assert (await letter(hub, parked["id"]))["status"] == "skipped"

    other = new_identity()
    await sims.fault("hss", operation="createSubscriber", match=other["imsi"], kind="transient")
    other_id = await submit(hub, order(other))
    stuck = await parked_letter(hub, other_id)
    refused = await hub.api.post(f"{LETTERS}/{stuck['id']}/skip", json={})
    assert refused.status_code == 409
    assert "cannot be skipped" in refused.json()["message"]
    assert (await hub.api.post(f"{LETTERS}/{stuck['id']}/abort", json={})).status_code == 200
    assert (await order_state(hub, other_id))["state"] == "failed"


async def test_a_correction_other_systems_hold_is_refused_naming_them(
    hub: Hub, sims: Simulators
) -> None:
    """A corrected MSISDN or plan would reach billing alone: the HSS holds the MSISDN already
    and the CRM gets both from the order. Refused, on both ways in; the old values stay."""
    identity = new_identity()
    rule = await sims.fault(
        "billing", operation="CreateSubscription", match=identity["imsi"], kind="transient"
    )
    order_id = await submit(hub, order(identity))
    parked = await parked_letter(hub, order_id)
    assert parked["step"] == "1/billing.create_subscription"
    bad = await hub.api.post(f"{LETTERS}/{parked['id']}/retry", json={"input": {"ki": "00"}})
    assert bad.status_code == 409 and "cannot be corrected" in bad.json()["message"]
    msisdn = await hub.api.post(
        f"{LETTERS}/{parked['id']}/retry", json={"input": {"msisdn": "+436640000001"}}
    )
    assert msisdn.status_code == 409, msisdn.text
    message = msisdn.json()["message"]
    assert "'msisdn'" in message and "hss (1/hss.create_subscriber)" in message
    assert "crm" in message
    plan = await hub.api.post(
        f"{LETTERS}/{parked['id']}/retry", json={"input": {"plan": "BASIC-4G"}}
    )
    assert plan.status_code == 409 and "crm" in plan.json()["message"], plan.text

    async def letters_task() -> dict[str, Any] | None:
        # The task is recorded after the dead letter (and the order's held state): it can
        # show a moment later.
        tasks = (
            await hub.api.get("/tasks", params={"reference": order_id, "kind": "dead-letter"})
        ).json()
        return next((t for t in tasks if t["deadLetterId"] == parked["id"]), None)

    task = await eventually(letters_task, timeout=10)
    assert "msisdn" not in {f["name"] for f in task["form"]}, "the form offers what it refuses"
    completed = await hub.api.post(
        f"/tasks/{task['id']}/complete",
        json={"decision": "retry", "fields": {"msisdn": "+436640000001"}},
    )
    assert completed.status_code == 409, completed.text
    assert "hss (1/hss.create_subscriber)" in completed.json()["message"]

    await sims.http.delete(f"{sims.urls['billing']}/_sim/faults/{rule['id']}")
    retried = await hub.api.post(f"{LETTERS}/{parked['id']}/retry", json={})
    assert retried.status_code == 200, retried.text
    assert (await order_state(hub, order_id))["state"] == "completed"
    number = identity["msisdn"].lstrip("+")
    assert {s["msisdn"] for s in (await sims.state("billing"))["subscriptions"]} >= {number}
    held = await sims.mentions(number)
    assert held["hss"] and held["billing"] and held["crm"], held
    assert not any((await sims.mentions("436640000001")).values())


async def test_retry_with_a_correction_no_other_system_holds(hub: Hub, sims: Simulators) -> None:
    """The order's own reference on the CRM's service is the CRM's alone: corrected, it
    reaches the only system that holds it."""
    identity = new_identity()
    rule = await sims.fault(
        "crm", operation="upsertService", match=identity["imsi"], kind="transient"
    )
    order_id = await submit(hub, order(identity))
    parked = await parked_letter(hub, order_id)
    assert parked["step"] == "1/crm.activate_service"
    await sims.http.delete(f"{sims.urls['crm']}/_sim/faults/{rule['id']}")
    fixed = await hub.api.post(
        f"{LETTERS}/{parked['id']}/retry", json={"input": {"order_id": "corrected-ref"}}
    )
    assert fixed.status_code == 200, fixed.text
    assert (await order_state(hub, order_id))["state"] == "completed"
    customer = next(
        c for c in (await sims.state("crm"))["customers"] if c["id"] == identity["customer"]
    )
    assert [s["orderId"] for s in customer["services"]] == ["corrected-ref"]


async def test_bulk_retry_releases_every_order_parked_on_billing(
    hub: Hub, sims: Simulators
) -> None:
    identities = [new_identity() for _ in range(3)]
    rules = [
        await sims.fault(
            "billing", operation="CreateSubscription", match=i["imsi"], kind="transient"
        )
        for i in identities
    ]
    order_ids = [await submit(hub, order(i)) for i in identities]
    for order_id in order_ids:
        await parked_letter(hub, order_id)
    listed = await hub.api.get(LETTERS, params={"system": "billing", "status": "parked"})
    assert int(listed.headers["X-Total-Count"]) >= 3
    for rule in rules:
        await sims.http.delete(f"{sims.urls['billing']}/_sim/faults/{rule['id']}")
    response = await hub.api.post(
        f"{LETTERS}/retry", json={"system": "billing", "decidedBy": "noc-bulk"}
    )
    assert response.status_code == 200
    assert set(response.json()["accepted"]) >= {
        (await hub.api.get(LETTERS, params={"orderId": o})).json()[0]["id"] for o in order_ids
    }
    for order_id in order_ids:
        assert (await order_state(hub, order_id))["state"] == "completed"


async def test_a_failing_compensation_is_parked_too(hub: Hub, sims: Simulators) -> None:
    identity = new_identity()
    await sims.fault("crm", operation="upsertService", match=identity["imsi"], kind="permanent")
    void = await sims.fault("billing", operation="VoidSubscription", kind="transient")
    order_id = await submit(hub, order(identity))
    parked = await parked_letter(hub, order_id)
    assert parked["compensation"] is True and parked["skippable"] is True
    assert parked["step"] == "1/billing.void_subscription"
    # Compensations run newest first: the HSS delete waits behind the parked void.
    assert await sims.mentions(identity["imsi"]) == {
        "credit": False,
        "crm": False,
        "hss": True,
        "billing": True,
        "regulator": False,
        "vies": False,
        "registry": False,
        "partner": False,
    }
    await sims.http.delete(f"{sims.urls['billing']}/_sim/faults/{void['id']}")
    assert (await hub.api.post(f"{LETTERS}/{parked['id']}/retry", json={})).status_code == 200
    done = await order_state(hub, order_id)
    assert done["state"] == "failed"
    assert "crm.activate_service" in done["errorMessage"][0]["message"]
    await assert_no_trace(sims, identity)


async def test_cancel_while_parked_compensates(hub: Hub, sims: Simulators) -> None:
    identity = new_identity()
    await sims.fault(
        "billing", operation="CreateSubscription", match=identity["imsi"], kind="transient"
    )
    order_id = await submit(hub, order(identity))
    parked = await parked_letter(hub, order_id)
    response = await hub.api.post(
        "/tmf-api/serviceOrdering/v4/cancelServiceOrder", json={"serviceOrder": {"id": order_id}}
    )
    assert response.status_code == 201
    assert (await order_state(hub, order_id))["state"] == "cancelled"
    assert (await letter(hub, parked["id"]))["decidedBy"] == "cancel request"
    await assert_no_trace(sims, identity)


async def test_refused_credentials_park_instead_of_failing(hub: Hub, sims: Simulators) -> None:
    identity = new_identity()
    rule = await sims.fault(
        "hss",
        operation="createSubscriber",
        match=identity["imsi"],
        kind="permanent",
        status=401,
        message="bad token",
    )
    order_id = await submit(hub, order(identity))
    parked = await parked_letter(hub, order_id)
    assert parked["errorType"] == "AuthenticationError"
    await sims.http.delete(f"{sims.urls['hss']}/_sim/faults/{rule['id']}")  # token fixed
    assert (await hub.api.post(f"{LETTERS}/{parked['id']}/retry", json={})).status_code == 200
    assert (await order_state(hub, order_id))["state"] == "completed"


async def test_decisions_on_unknown_or_closed_letters(hub: Hub, sims: Simulators) -> None:
    assert (await hub.api.post(f"{LETTERS}/dl-nope/retry", json={})).status_code == 404
    assert (await hub.api.get(f"{LETTERS}/dl-nope")).status_code == 404
    assert (await hub.api.get(LETTERS, params={"status": "stuck"})).status_code == 400
    identity = new_identity()
    await sims.fault("crm", operation="upsertService", match=identity["imsi"], kind="transient")
    order_id = await submit(hub, order(identity))
    parked = await parked_letter(hub, order_id)
    assert (await hub.api.post(f"{LETTERS}/{parked['id']}/skip", json={})).status_code == 200
    await order_state(hub, order_id)
    again = await hub.api.post(f"{LETTERS}/{parked['id']}/retry", json={})
    assert again.status_code == 409


@pytest.fixture
def hub_settings(hub_settings):  # type: ignore[no-untyped-def]
    """These tests park; a short park deadline keeps the expiry test fast, the others decide
    well before it."""
    hub_settings.park_timeout = timedelta(seconds=20)
    return hub_settings


async def test_a_park_past_its_deadline_aborts_on_its_own(hub: Hub, sims: Simulators) -> None:
    identity = new_identity()
    await sims.fault("hss", operation="createSubscriber", match=identity["imsi"], kind="transient")
    order_id = await submit(hub, order(identity, add_item(identity)))
    parked = await parked_letter(hub, order_id)
    done = await order_state(hub, order_id, timeout=60)
    assert done["state"] == "failed"
    expired = await letter(hub, parked["id"])
    assert expired["status"] == "expired" and expired["decidedBy"] == "hub: park deadline passed"
    await assert_no_trace(sims, identity)
