"""The development OpenID provider itself (idp/server.mjs): what it offers, and what it refuses."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from hub.permissions import ALL_SCOPES
from hub.tools import idp as provider
from tests.conftest import IdentityProvider, eventually


async def test_discovery_offers_what_the_hub_needs_only(idp: IdentityProvider) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        document = (await http.get(idp.issuer + provider.DISCOVERY_PATH)).json()
    assert document["issuer"] == idp.issuer
    assert document["grant_types_supported"] == ["client_credentials"]
    assert set(document["scopes_supported"]) - {"openid"} == ALL_SCOPES
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert document["registration_endpoint"] == f"{idp.issuer}/reg"


@pytest.mark.parametrize(
    "metadata",
    [
        # A public client: no secret to prove.
        {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"},
        # An interactive grant.
        {
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "redirect_uris": ["https://partner.test/cb"],
        },
        # A partner_id that is no identifier.
        {"grant_types": ["client_credentials"], "partner_id": "../../etc"},
        # A scope the hub does not have.
        {"grant_types": ["client_credentials"], "scope": "orders:read admin"},
        # No scope at all (it would mean every scope).
        {"grant_types": ["client_credentials"], "partner_id": "p-1"},
    ],
)
async def test_registration_refuses(idp: IdentityProvider, metadata: dict[str, object]) -> None:
    body = {"response_types": [], "redirect_uris": []} | metadata
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.post(
            f"{idp.issuer}/reg",
            json=body,
            headers={"Authorization": f"Bearer {idp.initial_access_token}"},
        )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_client_metadata"


async def test_a_registered_client_cannot_be_changed(idp: IdentityProvider) -> None:
    """RFC 7592 read and delete only: an update could drop its partner_id or widen scopes."""
    async with httpx.AsyncClient(timeout=10) as http:
        registered = await http.post(
            f"{idp.issuer}/reg",
            json={
                "grant_types": ["client_credentials"],
                "response_types": [],
                "redirect_uris": [],
                "scope": "orders:read",
                "partner_id": "p-1",
            },
            headers={"Authorization": f"Bearer {idp.initial_access_token}"},
        )
        assert registered.status_code == 201, registered.text
        client = registered.json()
        auth = {"Authorization": f"Bearer {client['registration_access_token']}"}
        changed = {**client, "scope": "orders:read codec:decode"}
        changed.pop("partner_id")
        refused = await http.put(client["registration_client_uri"], json=changed, headers=auth)
        assert refused.status_code == 405, refused.text
        read = await http.get(client["registration_client_uri"], headers=auth)
        assert read.json()["scope"] == "orders:read" and read.json()["partner_id"] == "p-1"


async def test_registration_without_the_initial_access_token(idp: IdentityProvider) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for headers in ({}, {"Authorization": "Bearer not-the-token"}):
            refused = await http.post(
                f"{idp.issuer}/reg", json={"grant_types": ["client_credentials"]}, headers=headers
            )
            assert refused.status_code in (400, 401), refused.text
            assert refused.json()["error"] in ("invalid_token", "invalid_request")


async def test_a_broken_key_file_keeps_the_keys_in_force(idp: IdentityProvider) -> None:
    good = idp.keys_file.read_text()
    published = provider.published_kids(idp.issuer)
    refusals = idp.log.read_text().count("keys not reloaded")
    try:
        # A symmetric key: the provider must never sign the hub's tokens with one.
        idp.keys_file.write_text(
            '{"keys": [{"kty": "oct", "kid": "hs", "k": "c2VjcmV0", "d": "x"}]}'
        )
        idp.process.send_signal(signal.SIGHUP)

        async def refused() -> bool:
            return idp.log.read_text().count("keys not reloaded") > refusals

        await eventually(refused, timeout=10)
        assert provider.published_kids(idp.issuer) == published
    finally:
        idp.keys_file.write_text(good)


@pytest.mark.parametrize("issuer", ["http://idp.example.net:8110", "https://127.0.0.1:8110"])
def test_it_runs_on_loopback_http_only(tmp_path: Path, issuer: str) -> None:
    keys = tmp_path / "jwks.json"
    provider.write_keys(keys, [provider.generate_signing_key()])
    env = provider.environment(
        issuer=issuer, keys_file=keys, initial_access_token="x" * 32, audience="urn:a:b"
    )
    done = subprocess.run(provider.command(), env=env, capture_output=True, timeout=30)
    assert done.returncode == 2
    assert b"loopback" in done.stderr
