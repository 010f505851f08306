"""The partner onboarding adapters against their simulators on loopback: VAT (SOAP, the same
WSDL both sides), registry, billing's wholesale account, the CRM's organizations, and the
callback client (signed, address-checked, errors translated)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest

from adapters.billing import BillingClient
from adapters.callbacks import CallbackClient
from adapters.crm import CrmClient
from adapters.registry import CompanyRegistryClient
from adapters.vies import ViesClient
from hub.errors import CallbackRefused, PermanentError, TransientError
from hub.partners import webhooks
from hub.partners.callbacks import CallbackPolicy
from hub.settings import CONTRACTS_DIR
from tests.conftest import Simulators, free_port


@pytest.fixture
async def vies(sims: Simulators) -> AsyncIterator[ViesClient]:
    client = ViesClient(CONTRACTS_DIR / "vies.wsdl", sims.urls["vies"] + "/vies", timeout=5)
    yield client
    await client.aclose()


async def test_vies_answers_registered_and_unknown_numbers(
    vies: ViesClient, sims: Simulators
) -> None:
    known = await vies.check_vat("AT", "U12345678")
    assert (known.valid, known.name) == (True, "Alpine Wholesale Telecom GmbH")
    unknown = await vies.check_vat("AT", "U99999999")
    assert (unknown.valid, unknown.name, unknown.address) == (False, None, None)


async def test_vies_outages_are_transient_and_bad_input_permanent(
    vies: ViesClient, sims: Simulators
) -> None:
    await sims.fault("vies", operation="checkVat", kind="permanent", message="MS_UNAVAILABLE")
    with pytest.raises(TransientError, match="MS_UNAVAILABLE"):
        await vies.check_vat("AT", "U12345678")
    await sims.clear_faults()
    with pytest.raises(PermanentError, match="INVALID_INPUT"):
        await vies.check_vat("AT", "U1234567890123")  # longer than the contract allows


async def test_the_registry_knows_its_companies(sims: Simulators) -> None:
    client = CompanyRegistryClient(sims.urls["registry"], timeout=5)
    try:
        number = f"FN {uuid.uuid4().int % 10**6:06d}z/1"
        assert await client.company(number) is None
        response = await sims.http.put(
            f"{sims.urls['registry']}/_sim/companies/{number}",
            json={"name": "Gone GmbH", "status": "dissolved"},
        )
        response.raise_for_status()
        company = await client.company(number)
        assert company is not None and (company.name, company.status) == ("Gone GmbH", "dissolved")
    finally:
        await client.aclose()


async def test_a_wholesale_account_and_a_crm_organization(sims: Simulators) -> None:
    billing = BillingClient(CONTRACTS_DIR / "billing.wsdl", sims.urls["billing"] + "/billing")
    crm = CrmClient(sims.urls["crm"])
    org = f"org-{uuid.uuid4().hex[:10]}"
    try:
        account, opened = await billing.create_wholesale_account(
            partner_id=org, name="W", currency="EUR", vat_id="ATU12345678", idempotency_key=org
        )
        assert opened
        [stored] = [a for a in (await sims.state("billing"))["accounts"] if a["customerId"] == org]
        assert (stored["accountType"], stored["vatId"]) == ("wholesale", "ATU12345678")
        await billing.close_account(account, idempotency_key=f"{org}/close")
        assert await crm.upsert_organization(
            org, name="W", trading_name=None, vat_id="ATU12345678", registration_number="FN 1a",
            billing_account_id=account, status="active", idempotency_key=org,
        )  # fmt: skip
        await crm.delete_organization(org, idempotency_key=f"{org}/d")
        await crm.delete_organization(org, idempotency_key=f"{org}/d2")  # gone already: fine
        assert [o for o in (await sims.state("crm"))["organizations"] if o["id"] == org] == []
    finally:
        await billing.aclose()
        await crm.aclose()


async def test_a_callback_gets_a_signed_notification(sims: Simulators) -> None:
    client = CallbackClient(CallbackPolicy(allow_http=True, allow_loopback=True))
    secret = webhooks.new_secret()
    name = f"p{uuid.uuid4().hex[:8]}"
    url = f"{sims.urls['partner']}/hooks/{name}"
    response = await sims.http.put(
        f"{sims.urls['partner']}/_sim/secrets/{name}", json={"secret": secret}
    )
    response.raise_for_status()
    try:
        status = await client.notify(
            url, {"hello": name}, secret=secret, message_id="msg_1", timeout=5
        )
        assert status == 204
        [delivery] = [
            d for d in (await sims.state("partner"))["deliveries"] if d["partner"] == name
        ]
        assert delivery["verified"] is True and delivery["webhookId"] == "msg_1"
        assert abs(int(delivery["webhookTimestamp"]) - time.time()) < 60
        # A partner that refuses the signature, or is down, or points at loopback.
        with pytest.raises(CallbackRefused, match="401"):
            await client.notify(url, {}, secret=webhooks.new_secret(), message_id="m2", timeout=5)
        await sims.fault("partner", operation="notify", kind="transient", status=503)
        with pytest.raises(TransientError):
            await client.notify(url, {}, secret=secret, message_id="m3", timeout=5)
        await sims.clear_faults()
        with pytest.raises(TransientError):
            await client.notify(f"http://127.0.0.1:{free_port()}/x", {}, secret=secret,
                                message_id="m4", timeout=2)  # fmt: skip
    finally:
        await client.aclose()
    strict = CallbackClient(CallbackPolicy(allow_http=True))
    try:
        with pytest.raises(CallbackRefused, match="loopback"):
            await strict.notify(url, {}, secret=secret, message_id="m5", timeout=5)
        with pytest.raises(CallbackRefused, match="loopback"):
            await strict.notify(
                "http://localhost:9/x", {}, secret=secret, message_id="m6", timeout=5
            )
    finally:
        await strict.aclose()
