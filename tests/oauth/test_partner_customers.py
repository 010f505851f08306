"""A partner cannot reach other parties' customers or subscribers through its own orders:
its customers live in its namespace (``<partner>~<id>``), so naming the operator's customer
id changes nothing of the operator's; and it modifies or deletes only subscribers it holds
now (an IMSI it gave back and the operator re-used is not its own any more)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.conftest import Hub, IdentityProvider, Simulators, eventually
from tests.factories import item, new_identity, order
from tests.oauth.clients import ORDERS, access_token, call, register

FINAL = {"completed", "failed", "cancelled"}


async def partner_token(hub: Hub, idp: IdentityProvider, partner_id: str) -> str:
    client = await register(hub, ["orders:read", "orders:write"], partner_id=partner_id)
    return await access_token(idp, client, "orders:read orders:write")


async def final_state(
    get: Callable[[str], Awaitable[httpx.Response]], order_id: str
) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        body = (await get(order_id)).json()
        return body if body.get("state") in FINAL else None

    return dict(await eventually(done, timeout=60))


def crm_customer(state: dict[str, Any], customer_id: str) -> dict[str, Any] | None:
    return next((c for c in state["customers"] if c["id"] == customer_id), None)


async def test_a_partner_naming_the_operators_customer_orders_for_its_own(
    hub: Hub, idp: IdentityProvider, sims: Simulators
) -> None:
    victim = new_identity()
    mine = order(victim)
    mine["relatedParty"][0]["name"] = "Retail Customer"
    created = await hub.api.post(ORDERS, json=mine)
    assert created.status_code == 201, created.text
    done = await final_state(lambda i: hub.api.get(f"{ORDERS}/{i}"), created.json()["id"])
    assert done["state"] == "completed", done

    token = await partner_token(hub, idp, "partner-a")
    theirs = new_identity()
    theirs["customer"] = victim["customer"]
    body = order(theirs)
    body["relatedParty"][0]["name"] = "Renamed by partner-a"
    placed = await call(hub, "POST", ORDERS, token, json=body)
    assert placed.status_code == 201, placed.text
    customer = next(p for p in placed.json()["relatedParty"] if p["role"] == "customer")
    assert customer["id"] == f"partner-a~{victim['customer']}"
    done = await final_state(
        lambda i: call(hub, "GET", f"{ORDERS}/{i}", token), placed.json()["id"]
    )
    assert done["state"] == "completed", done

    crm = await sims.state("crm")
    operators = crm_customer(crm, victim["customer"])
    assert operators is not None and operators["name"] == "Retail Customer"
    assert [s["id"] for s in operators["services"]] == [f"svc-{victim['imsi']}"]
    partners = crm_customer(crm, f"partner-a~{victim['customer']}")
    assert partners is not None and partners["name"] == "Renamed by partner-a"


async def test_a_partner_cannot_delete_an_imsi_it_gave_back(
    hub: Hub, idp: IdentityProvider, sims: Simulators
) -> None:
    token = await partner_token(hub, idp, "partner-a")

    def as_partner(order_id: str) -> Awaitable[httpx.Response]:
        return call(hub, "GET", f"{ORDERS}/{order_id}", token)

    sub = new_identity()
    added = await call(hub, "POST", ORDERS, token, json=order(sub))
    assert (await final_state(as_partner, added.json()["id"]))["state"] == "completed"
    deleted = await call(hub, "POST", ORDERS, token, json=order(sub, item(sub, "delete")))
    assert deleted.status_code == 201, deleted.text
    assert (await final_state(as_partner, deleted.json()["id"]))["state"] == "completed"
    # The operator re-uses the IMSI for a customer of its own.
    reused = dict(sub, customer=new_identity()["customer"])
    again = await hub.api.post(ORDERS, json=order(reused))
    done = await final_state(lambda i: hub.api.get(f"{ORDERS}/{i}"), again.json()["id"])
    assert done["state"] == "completed", done

    refused = await call(hub, "POST", ORDERS, token, json=order(reused, item(reused, "delete")))
    assert refused.status_code == 400, refused.text
    assert "imsi" in refused.text and "held by your orders" in refused.text
    assert (await sims.mentions(reused["imsi"]))["hss"]
