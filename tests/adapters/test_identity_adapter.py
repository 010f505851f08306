"""The identity provider's client against a MockTransport: the calls it makes, its errors.

The real provider (oidc-provider) is exercised in ``tests/oauth/``.
"""

from __future__ import annotations

import json

import httpx
import pytest

from adapters.identity import IdentityProviderClient
from hub.errors import AuthenticationError, PermanentError, TransientError
from hub.settings import Settings

ISSUER = "http://127.0.0.1:8110"
DISCOVERY = {
    "issuer": ISSUER,
    "token_endpoint": f"{ISSUER}/token",
    "registration_endpoint": f"{ISSUER}/reg",
}


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "oidc_issuer": ISSUER,
        "oidc_registration_token": "initial-access-token-for-tests",
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


def provider(handler: httpx.MockTransport) -> IdentityProviderClient:
    return IdentityProviderClient(settings(), httpx.AsyncClient(transport=handler))


async def test_register_sends_rfc7591_metadata_with_the_initial_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("openid-configuration"):
            return httpx.Response(200, json=DISCOVERY)
        return httpx.Response(
            201,
            json={
                "client_id": "c1",
                "client_secret": "secret-xyz",
                "registration_access_token": "rat-xyz",
                "registration_client_uri": f"{ISSUER}/reg/c1",
            },
        )

    idp = provider(httpx.MockTransport(handler))
    client = await idp.register_client(
        client_name="ACME", scopes=["orders:read", "orders:write"], partner_id="p-1"
    )
    assert client.client_id == "c1" and client.registration_client_uri == f"{ISSUER}/reg/c1"
    assert "secret-xyz" not in repr(client) and "rat-xyz" not in repr(client)
    assert idp.token_endpoint == f"{ISSUER}/token"
    registration = seen[-1]
    assert registration.url == f"{ISSUER}/reg"
    assert registration.headers["Authorization"] == "Bearer initial-access-token-for-tests"
    body = json.loads(registration.content)
    assert body["grant_types"] == ["client_credentials"]
    assert body["scope"] == "orders:read orders:write"
    assert body["partner_id"] == "p-1"


async def test_token_endpoint_before_discovery_needs_the_setting() -> None:
    idp = IdentityProviderClient(settings(), httpx.AsyncClient())
    with pytest.raises(PermanentError):
        _ = idp.token_endpoint
    configured = IdentityProviderClient(settings(oidc_token_endpoint=f"{ISSUER}/oauth/token"))
    assert configured.token_endpoint == f"{ISSUER}/oauth/token"


async def test_discovery_of_another_issuer_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=DISCOVERY | {"issuer": "http://127.0.0.1:9999"})

    with pytest.raises(PermanentError, match="names the issuer"):
        await provider(httpx.MockTransport(handler)).discover()


@pytest.mark.parametrize(
    ("status", "error"), [(401, AuthenticationError), (400, PermanentError), (503, TransientError)]
)
async def test_registration_errors(status: int, error: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=DISCOVERY)
        return httpx.Response(status, json={"error": "invalid_client_metadata"})

    with pytest.raises(error) as caught:
        await provider(httpx.MockTransport(handler)).register_client(
            client_name="x", scopes=["orders:read"], partner_id="p"
        )
    assert getattr(caught.value, "system", None) == "idp"
    assert "initial-access-token" not in str(caught.value)


async def test_unreachable_provider_is_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(TransientError):
        await provider(httpx.MockTransport(handler)).discover()


@pytest.mark.parametrize("status", [204, 401, 404])
async def test_delete_is_idempotent(status: int) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("openid-configuration"):
            return httpx.Response(200, json=DISCOVERY)
        seen.append(request)
        return httpx.Response(status)

    await provider(httpx.MockTransport(handler)).delete_client(f"{ISSUER}/reg/c1", "rat")
    assert seen[0].method == "DELETE" and seen[0].headers["Authorization"] == "Bearer rat"


async def test_delete_sends_the_token_to_the_provider_only() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("openid-configuration"):
            return httpx.Response(200, json=DISCOVERY)
        raise AssertionError("the registration access token may not be sent elsewhere")

    with pytest.raises(PermanentError, match="origin"):
        await provider(httpx.MockTransport(handler)).delete_client(
            "http://127.0.0.1:8111/reg/c1", "rat"
        )


def test_settings_refuse_http_issuer_off_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        settings(oidc_issuer="http://idp.example.net")
    assert settings(oidc_issuer="http://[::1]:8110").oidc_issuer
    assert settings(oidc_issuer="https://idp.example.net").oidc_issuer


def test_production_wants_https_and_a_strong_registration_token() -> None:
    from tests.conftest import PAYLOAD_KEYS, SEAL_PUBLIC_KEY

    strong = "Qm9rZ3xVbHd6cFhvS1RyQWdGcE5zWWVjTm1i"
    production: dict[str, object] = {
        "environment": "production",
        "api_key": ["A" * 12 + "bcdefghijklmnop0123456789"],
        "payload_keys": PAYLOAD_KEYS,
        "seal_public_key": SEAL_PUBLIC_KEY,
        "oidc_issuer": "https://idp.example.net",
        "oidc_registration_token": strong,
        "console_session_key": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
    }
    assert settings(**production).oidc_issuer == "https://idp.example.net"
    with pytest.raises(ValueError, match="https URL in production"):
        settings(**production | {"oidc_issuer": "http://127.0.0.1:8110"})
    with pytest.raises(ValueError, match="HUB_OIDC_REGISTRATION_TOKEN") as caught:
        settings(**production | {"oidc_registration_token": "changeme-changeme-changeme"})
    assert "changeme" not in str(caught.value)
