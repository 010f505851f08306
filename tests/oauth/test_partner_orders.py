"""Partner isolation on TMF641, with tokens of the real provider: a partner's orders are its
own, recorded with the partner as a related party, invisible and untouchable to any other
partner; the operator (API key) sees them all."""

from __future__ import annotations

import uuid
from typing import Any

from hub.models import CancelServiceOrder
from tests.conftest import Hub, IdentityProvider, Simulators, eventually
from tests.factories import item, new_identity, order
from tests.oauth.clients import CANCELS, ORDERS, access_token, call, idp_signed, register

FINAL = {"completed", "failed", "cancelled"}
BOTH = "orders:read orders:write"


async def partner_token(hub: Hub, idp: IdentityProvider, partner_id: str) -> str:
    client = await register(hub, ["orders:read", "orders:write"], partner_id=partner_id)
    return await access_token(idp, client, BOTH)


async def completed(hub: Hub, token: str, order_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        body = (await call(hub, "GET", f"{ORDERS}/{order_id}", token)).json()
        return body if body.get("state") in FINAL else None

    final = await eventually(done, timeout=60)
    assert final["state"] == "completed", final
    return final


async def test_partner_orders_are_their_own(
    hub: Hub, idp: IdentityProvider, sims: Simulators
) -> None:
    token_a = await partner_token(hub, idp, "partner-a")
    token_b = await partner_token(hub, idp, "partner-b")
    identity = new_identity()
    body = order(identity)
    # A partner cannot place an order in another partner's name.
    body["relatedParty"].append({"id": "partner-b", "role": "wholesalePartner"})

    created = await call(hub, "POST", ORDERS, token_a, json=body)
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    partners = [p for p in created.json()["relatedParty"] if p["role"] == "wholesalePartner"]
    partner_a = {
        "@type": "RelatedParty",
        "id": "partner-a",
        "role": "wholesalePartner",
        "@referredType": "Organization",
    }
    assert partners == [partner_a]

    final = await completed(hub, token_a, order_id)
    assert partner_a in final["relatedParty"]
    assert (await sims.mentions(identity["imsi"]))["hss"]

    # Partner B: a 404 for the order, its cancellation, and nothing in its list.
    missing = await call(hub, "GET", f"{ORDERS}/{order_id}", token_b)
    assert missing.status_code == 404 and missing.json()["code"] == "404"
    unknown = await call(hub, "GET", f"{ORDERS}/no-such-order", token_b)
    assert missing.json()["message"].replace(order_id, "X") == unknown.json()["message"].replace(
        "no-such-order", "X"
    )
    listed = await call(hub, "GET", ORDERS, token_b)
    assert listed.status_code == 200 and order_id not in {o["id"] for o in listed.json()}
    cancel = await call(hub, "POST", CANCELS, token_b, json={"serviceOrder": {"id": order_id}})
    assert cancel.status_code == 404
    # ...nor the subscriber: B cannot modify or delete A's.
    for action in ("delete", "modify"):
        values = {"plan": "STANDARD-5G", "qci": 9, "ambrDownlink": 1, "ambrUplink": 1}
        change = order(identity, item(identity, action, **(values if action == "modify" else {})))
        refused = await call(hub, "POST", ORDERS, token_b, json=change)
        assert refused.status_code == 400 and "imsi" in refused.json()["message"], refused.text
    # ...nor learn it through A's externalId.
    replay = await call(
        hub, "POST", ORDERS, token_b, json=order(new_identity(), external_id=body["externalId"])
    )
    assert replay.status_code == 409 and order_id not in replay.text

    # Partner A sees its own, in the list too, and may change its own subscriber.
    mine = await call(hub, "GET", ORDERS, token_a)
    assert [o["id"] for o in mine.json()] == [order_id]
    own_delete = await call(
        hub, "POST", ORDERS, token_a, json=order(identity, item(identity, "delete"))
    )
    assert own_delete.status_code == 201, own_delete.text
    await completed(hub, token_a, own_delete.json()["id"])

    # The operator (API key) sees every order, the partner recorded on it.
    operator = await hub.api.get(f"{ORDERS}/{order_id}")
    assert operator.status_code == 200
    operator_list = {o["id"] for o in (await hub.api.get(ORDERS)).json()}
    assert {order_id, own_delete.json()["id"]} <= operator_list


async def test_partner_cannot_see_operator_orders(hub: Hub, idp: IdentityProvider) -> None:
    placed = await hub.api.post(ORDERS, json=order(new_identity()))
    assert placed.status_code == 201
    token = await partner_token(hub, idp, "partner-c")
    assert (await call(hub, "GET", f"{ORDERS}/{placed.json()['id']}", token)).status_code == 404
    assert (await call(hub, "GET", ORDERS, token)).json() == []
    # Nor the operator's cancellations, in the list or one by one.
    cancel_id = uuid.uuid4().hex
    async with hub.sessions() as session:
        session.add(CancelServiceOrder(id=cancel_id, order_id=placed.json()["id"]))
        await session.commit()
    theirs = await call(hub, "GET", CANCELS, token)
    assert theirs.json() == [] and theirs.headers["X-Total-Count"] == "0"
    assert (await call(hub, "GET", f"{CANCELS}/{cancel_id}", token)).status_code == 404
    operators = await hub.api.get(CANCELS, params={"serviceOrder.id": placed.json()["id"]})
    assert [c["id"] for c in operators.json()] == [cancel_id]
    # An operator's token (no partner_id) sees it, as an API key does.
    operator = idp_signed(idp, scope="orders:read")
    assert (await call(hub, "GET", f"{ORDERS}/{placed.json()['id']}", operator)).status_code == 200


async def test_partner_token_does_partner_things_only(hub: Hub, idp: IdentityProvider) -> None:
    # Signed by the provider's own key, claiming more than a partner may hold.
    token = idp_signed(idp, partner_id="partner-d", scope="orders:read tasks:read deadletters:read")
    assert (await call(hub, "GET", ORDERS, token)).status_code == 200
    for path in ("/tasks", "/deadLetters"):
        refused = await call(hub, "GET", path, token)
        assert refused.status_code == 403 and refused.json()["code"] == "403", path
