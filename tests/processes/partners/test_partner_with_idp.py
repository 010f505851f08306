"""A partner onboarded against the real OpenID provider (``idp``, oidc-provider on Node.js):
its client is registered there, its credentials get a token that places an order, the order
open keeps it from being offboarded, and once offboarded its client no longer gets a token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.client import Client

from hub.settings import Settings
from tests.conftest import Hub, IdentityProvider, Simulators, eventually, running_hub
from tests.factories import new_identity, order
from tests.oauth.clients import ORDERS, call
from tests.processes.partners.conftest import as_, known_company
from tests.processes.partners.test_onboarding import APPLICATIONS, apply, decide, reaches


@pytest.fixture
async def idp_hub(
    hub_settings: Settings, temporal_client: Client, sims: Simulators, idp: IdentityProvider
) -> AsyncIterator[Hub]:
    settings = hub_settings.model_copy(update=idp.hub_settings())
    async with running_hub(settings, temporal_client) as running:
        yield running


async def test_an_onboarded_partner_orders_with_its_token_and_is_offboarded(
    idp_hub: Hub, sims: Simulators, idp: IdentityProvider
) -> None:
    hub = idp_hub
    created = await apply(hub, await known_company(sims))
    waiting = await reaches(hub, created["id"], "awaitingApproval")
    await decide(hub, waiting["taskId"], "approver")
    active = await reaches(hub, created["id"], "active")
    handed = await hub.api.post(
        f"{APPLICATIONS}/{created['id']}/credentials", headers=as_("operator")
    )
    assert handed.status_code == 200, handed.text
    credentials = handed.json()
    assert credentials["tokenEndpoint"].startswith(idp.issuer)

    async with httpx.AsyncClient(timeout=10) as http:
        granted = await idp.token(
            http, credentials["clientId"], credentials["clientSecret"], "orders:read orders:write"
        )
    assert granted.status_code == 200, granted.text
    token = granted.json()["access_token"]

    # An order of the partner's, slowed at the HSS so that it is still open.
    await sims.configure("hss", latency_ms=1500)
    placed = await call(hub, "POST", ORDERS, token, json=order(new_identity()))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    refused = await hub.api.post(
        f"{APPLICATIONS}/{created['id']}/offboard", headers=as_("approver")
    )
    assert refused.status_code == 409 and order_id in refused.json()["message"], refused.text
    await sims.configure("hss", latency_ms=0)

    async def done() -> bool:
        body = (await call(hub, "GET", f"{ORDERS}/{order_id}", token)).json()
        return body.get("state") in ("completed", "failed")

    await eventually(done, timeout=60)
    asked = await hub.api.post(f"{APPLICATIONS}/{created['id']}/offboard", headers=as_("approver"))
    assert asked.status_code == 202, asked.text
    await decide(hub, asked.json()["taskId"], "second")
    await reaches(hub, created["id"], "closed")

    async with httpx.AsyncClient(timeout=10) as http:
        revoked = await idp.token(
            http, credentials["clientId"], credentials["clientSecret"], "orders:read"
        )
    assert revoked.status_code in (400, 401), revoked.text
    assert active["clientId"] == credentials["clientId"]
