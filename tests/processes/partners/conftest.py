"""Fixtures of the partner onboarding process tests: people with their own API keys, an
identity provider double, and settings that allow the partner simulator's loopback callback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.client import Client

from hub.settings import ApiClient, Settings
from tests.conftest import Hub, Simulators, running_hub
from tests.partner_doubles import IdentityProviderDouble

PEOPLE = {
    "applicant": ["sales"],
    "approver": ["wholesale"],
    "second": ["wholesale"],
    "operator": ["ops"],
}
SCOPES = ["partners:read", "partners:write", "tasks:read", "tasks:decide", "deadletters:read",
          "deadletters:decide", "orders:read"]  # fmt: skip


def key_of(name: str) -> str:
    return f"{name}-key-" + "p" * 24


def as_(name: str) -> dict[str, str]:
    return {"X-API-Key": key_of(name)}


@pytest.fixture
def hub_settings(hub_settings: Settings) -> Settings:
    hub_settings.api_clients = [
        ApiClient(
            name=name,
            key=SecretStr(key_of(name)),
            scopes=SCOPES + (["partners:credentials"] if name == "operator" else []),
            groups=groups,
        )
        for name, groups in PEOPLE.items()
    ]
    hub_settings.partners_callback_allow_http = True
    hub_settings.partners_callback_allow_loopback = True
    # Every score is good enough: the low score is the fast tests' (a high-risk application).
    hub_settings.partners_min_credit_score = 300
    return hub_settings


@pytest.fixture
def identity() -> IdentityProviderDouble:
    return IdentityProviderDouble()


@pytest.fixture
async def partner_hub(
    hub_settings: Settings,
    temporal_client: Client,
    sims: Simulators,
    identity: IdentityProviderDouble,
) -> AsyncIterator[Hub]:
    async with running_hub(hub_settings, temporal_client, identity=identity) as running:
        yield running


async def known_company(sims: Simulators, **changes: Any) -> dict[str, Any]:
    """A company the VAT and registry simulators both know, unique to the test; its
    application body."""
    suffix = uuid.uuid4().int % 10**8
    registration = f"FN {suffix:06d}t"
    vat = f"ATU{suffix:08d}"
    name = changes.get("name", f"Testnet Wholesale {suffix} GmbH")
    response = await sims.http.put(
        f"{sims.urls['vies']}/_sim/numbers/{vat}",
        json={"name": changes.get("vat_name", name), "address": "Ring 1, 1010 Wien"},
    )
    response.raise_for_status()
    response = await sims.http.put(
        f"{sims.urls['registry']}/_sim/companies/{registration}",
        json={"name": name, "status": changes.get("status", "active")},
    )
    response.raise_for_status()
    return {
        "organization": {
            "name": name,
            "tradingName": f"Testnet {suffix}",
            "organizationIdentification": [
                {
                    "identificationType": "companyRegistrationNumber",
                    "identificationId": registration,
                },
                {"identificationType": "vatId", "identificationId": vat},
            ],
            "contactMedium": [
                {"mediumType": "email", "characteristic": {"emailAddress": "noc@testnet.example"}}
            ],
        },
        "representatives": [{"givenName": "Anna", "familyName": "Berger", "role": "CEO"}],
        "callbackUrl": f"{sims.urls['partner']}/hooks/p{suffix}",
        "requestedScopes": ["orders:read", "orders:write"],
    }
