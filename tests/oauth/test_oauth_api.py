"""OAuth2 on the API against the real OpenID provider (oidc-provider on Node.js).

Clients are registered through the hub's own adapter (RFC 7591), tokens come from the
provider's token endpoint (client credentials), and the API judges them: scope allowed, 403
without the scope, 401 for expired, foreign, unsigned tokens; key rotation at the provider
without restarting the API; a deleted client (RFC 7592) gets no more tokens.
"""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from adapters.identity import IdentityProviderClient
from api.oauth import TokenValidator
from hub.tools import idp as provider
from tests.conftest import Hub, IdentityProvider, eventually
from tests.oauth.clients import ORDERS, access_token, call, idp_signed, register


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.json()["code"] == "401"


async def test_scope_allows_and_missing_scope_is_403(hub: Hub, idp: IdentityProvider) -> None:
    client = await register(hub, ["orders:read"])
    token = await access_token(idp, client, "orders:read")
    listed = await call(hub, "GET", ORDERS, token)
    assert listed.status_code == 200, listed.text
    refused = await call(hub, "POST", ORDERS, token, json={})
    assert refused.status_code == 403
    body = refused.json()
    assert body["@type"] == "Error" and body["code"] == "403" and "orders:write" in body["message"]
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    # A scope the client was not registered for is not granted by the provider.
    async with httpx.AsyncClient(timeout=10) as http:
        wider = await idp.token(http, client.client_id, client.client_secret, "orders:write")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


async def test_expired_foreign_and_unsigned_tokens_are_401(hub: Hub, idp: IdentityProvider) -> None:
    assert (await call(hub, "GET", ORDERS, idp_signed(idp))).status_code == 200
    assert_invalid_token(
        await call(hub, "GET", ORDERS, idp_signed(idp, exp=int(time.time()) - 120))
    )
    assert_invalid_token(await call(hub, "GET", ORDERS, idp_signed(idp, exp=None)))
    assert_invalid_token(await call(hub, "GET", ORDERS, idp_signed(idp, iss="http://127.0.0.1:1")))
    assert_invalid_token(await call(hub, "GET", ORDERS, idp_signed(idp, aud="urn:other:api")))
    # Signed by a key of our own under the provider's kid.
    kid = provider.read_keys(idp.keys_file)[0]["kid"]
    foreign = jwt.encode(
        {"iss": idp.issuer, "aud": idp.audience, "sub": "x", "exp": int(time.time()) + 300},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": kid, "typ": "at+jwt"},
    )
    assert_invalid_token(await call(hub, "GET", ORDERS, foreign))
    unsigned = jwt.encode(
        {"iss": idp.issuer, "aud": idp.audience, "sub": "x", "exp": int(time.time()) + 300},
        None,
        algorithm="none",
        headers={"kid": kid, "typ": "at+jwt"},
    )
    assert_invalid_token(await call(hub, "GET", ORDERS, unsigned))
    huge = idp_signed(idp, padding="x" * 20_000)
    assert_invalid_token(await call(hub, "GET", ORDERS, huge))


async def test_key_rotation_without_restarting_the_api(hub: Hub, idp: IdentityProvider) -> None:
    client = await register(hub, ["orders:read"])
    before = await access_token(idp, client, "orders:read")
    assert (await call(hub, "GET", ORDERS, before)).status_code == 200

    new_key = provider.rotate_keys(idp.issuer, idp.process, idp.keys_file)
    after = await access_token(idp, client, "orders:read")
    assert jwt.get_unverified_header(after)["kid"] == new_key["kid"]

    async def accepted() -> bool:
        return (await call(hub, "GET", ORDERS, after)).status_code == 200

    await eventually(accepted, timeout=10)
    # Tokens signed before the rotation stay valid while the old key is published.
    assert (await call(hub, "GET", ORDERS, before)).status_code == 200


async def test_deleted_client_gets_no_token(hub: Hub, idp: IdentityProvider) -> None:
    client = await register(hub, ["orders:read"])
    await access_token(idp, client, "orders:read")
    async with IdentityProviderClient(hub.settings) as identity:
        await identity.delete_client(
            client.registration_client_uri, client.registration_access_token
        )
        # Idempotent: deleting it again is success.
        await identity.delete_client(
            client.registration_client_uri, client.registration_access_token
        )
        assert identity.token_endpoint == f"{idp.issuer}/token"
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await idp.token(http, client.client_id, client.client_secret, "orders:read")
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"


async def test_registration_needs_the_initial_access_token(hub: Hub, idp: IdentityProvider) -> None:
    from pydantic import SecretStr

    from hub.errors import AuthenticationError, PermanentError

    wrong = hub.settings.model_copy(update={"oidc_registration_token": SecretStr("wrong-token")})
    async with IdentityProviderClient(wrong) as identity:
        with pytest.raises(AuthenticationError):
            await identity.register_client(client_name="x", scopes=["orders:read"], partner_id="p")
    async with IdentityProviderClient(hub.settings) as identity:
        with pytest.raises(PermanentError):  # not one of the hub's scopes
            await identity.register_client(client_name="x", scopes=["admin"], partner_id="p")


async def test_validator_against_the_real_provider(hub: Hub, idp: IdentityProvider) -> None:
    client = await register(hub, ["orders:read", "orders:write"], partner_id="p-real")
    token = await access_token(idp, client, "orders:read orders:write")
    validator = TokenValidator(hub.settings)
    try:
        checked = await validator.validate(token)
    finally:
        await validator.aclose()
    assert checked.subject == client.client_id and checked.partner_id == "p-real"
    assert checked.scopes == {"orders:read", "orders:write"}
