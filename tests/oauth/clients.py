"""Helpers of the OAuth2 tests: clients registered at the real provider, their tokens, and
calls to the hub's API with a bearer token instead of the fixture's API key."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import jwt

from adapters.identity import IdentityProviderClient, RegisteredClient
from hub.tools import idp as provider
from tests.conftest import Hub, IdentityProvider

ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
CANCELS = "/tmf-api/serviceOrdering/v4/cancelServiceOrder"


async def register(hub: Hub, scopes: list[str], partner_id: str | None = None) -> RegisteredClient:
    async with IdentityProviderClient(hub.settings) as identity:
        return await identity.register_client(
            client_name=f"test-{uuid.uuid4().hex[:8]}",
            scopes=scopes,
            partner_id=partner_id or f"p-{uuid.uuid4().hex[:8]}",
        )


async def access_token(idp: IdentityProvider, client: RegisteredClient, scope: str) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await idp.token(http, client.client_id, client.client_secret, scope)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    return str(body["access_token"])


async def call(hub: Hub, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=hub.api._transport, base_url="http://hub.test", headers=headers
    ) as api:
        return await api.request(method, path, **kwargs)


def idp_signed(idp: IdentityProvider, **overrides: Any) -> str:
    """A token signed with the provider's own current key, with claims of the test's choice."""
    key = provider.read_keys(idp.keys_file)[0]
    now = int(time.time())
    claims = {
        "iss": idp.issuer,
        "aud": idp.audience,
        "sub": "crafted",
        "client_id": "crafted",
        "iat": now,
        "exp": now + 300,
        "scope": "orders:read",
    } | overrides
    return jwt.encode(
        {k: v for k, v in claims.items() if v is not None},
        jwt.PyJWK(key).key,
        algorithm="ES256",
        headers={"kid": key["kid"], "typ": "at+jwt"},
    )
