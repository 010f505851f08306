"""The SOAP billing adapter against the billing simulator on loopback (same WSDL both sides)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from adapters.billing import BillingClient
from hub.errors import ConflictError, NotFoundError, PermanentError, TransientError
from hub.settings import CONTRACTS_DIR
from tests.conftest import Simulators, free_port
from tests.factories import new_identity

WSDL = CONTRACTS_DIR / "billing.wsdl"


@pytest.fixture
async def billing(sims: Simulators) -> AsyncIterator[BillingClient]:
    client = BillingClient(WSDL, sims.urls["billing"] + "/billing", timeout=5)
    yield client
    await client.aclose()


def key() -> str:
    return uuid.uuid4().hex


async def test_account_and_subscription_lifecycle(billing: BillingClient) -> None:
    identity = new_identity()
    account, created = await billing.create_account(
        customer_id=identity["customer"], name="A", currency="EUR", idempotency_key=key()
    )
    assert created is True
    again, created_again = await billing.create_account(
        customer_id=identity["customer"], name="A", currency="EUR", idempotency_key=key()
    )
    assert (again, created_again) == (account, False)
    subscription = await billing.create_subscription(
        account_id=account,
        msisdn=identity["msisdn"],
        imsi=identity["imsi"],
        plan="BASIC-4G",
        idempotency_key=key(),
    )
    details = await billing.get_subscription(identity["msisdn"])
    assert details["subscriptionId"] == subscription and details["planCode"] == "BASIC-4G"
    assert (
        await billing.change_plan(msisdn=identity["msisdn"], plan="IOT-M2M", idempotency_key=key())
        == "BASIC-4G"
    )
    with pytest.raises(ConflictError, match="AccountHasSubscriptions"):
        await billing.close_account(account, idempotency_key=key())
    await billing.void_subscription(subscription, idempotency_key=key())
    await billing.close_account(account, idempotency_key=key())
    with pytest.raises(NotFoundError, match="UnknownSubscription"):
        await billing.get_subscription(identity["msisdn"])


async def test_the_same_idempotency_key_creates_one_subscription(
    billing: BillingClient, sims: Simulators
) -> None:
    identity = new_identity()
    account, _ = await billing.create_account(
        customer_id=identity["customer"], name="A", currency="EUR", idempotency_key=key()
    )
    once = key()
    ids = {
        await billing.create_subscription(
            account_id=account,
            msisdn=identity["msisdn"],
            imsi=identity["imsi"],
            plan="BASIC-4G",
            idempotency_key=once,
        )
        for _ in range(3)
    }
    assert len(ids) == 1
    state = await sims.state("billing")
    assert sum(s["imsi"] == identity["imsi"] for s in state["subscriptions"]) == 1


async def test_business_faults_are_permanent(billing: BillingClient) -> None:
    identity = new_identity()
    account, _ = await billing.create_account(
        customer_id=identity["customer"], name="A", currency="EUR", idempotency_key=key()
    )
    with pytest.raises(PermanentError, match="UnknownPlan") as caught:
        await billing.create_subscription(
            account_id=account,
            msisdn=identity["msisdn"],
            imsi=identity["imsi"],
            plan="GOLD",
            idempotency_key=key(),
        )
    assert not isinstance(caught.value, NotFoundError)


async def test_transport_failures_are_transient(billing: BillingClient, sims: Simulators) -> None:
    identity = new_identity()
    await sims.fault(
        "billing", operation="CreateAccount", match=identity["customer"], kind="transient", times=1
    )
    with pytest.raises(TransientError, match="503"):
        await billing.create_account(
            customer_id=identity["customer"], name="A", currency="EUR", idempotency_key=key()
        )
    closed = BillingClient(WSDL, f"http://127.0.0.1:{free_port()}/billing", timeout=2)
    try:
        with pytest.raises(TransientError):
            await closed.list_plans()
    finally:
        await closed.aclose()


async def test_injected_soap_fault_is_permanent(billing: BillingClient, sims: Simulators) -> None:
    identity = new_identity()
    await sims.fault(
        "billing", operation="CreateAccount", match=identity["customer"], kind="permanent", times=1
    )
    with pytest.raises(PermanentError, match="InjectedFault"):
        await billing.create_account(
            customer_id=identity["customer"], name="A", currency="EUR", idempotency_key=key()
        )


async def test_catalogue(billing: BillingClient) -> None:
    plans = {plan["code"]: plan for plan in await billing.list_plans()}
    assert set(plans) == {"BASIC-4G", "STANDARD-5G", "UNLIMITED-5G", "IOT-M2M"}
    assert plans["STANDARD-5G"]["monthlyFee"] == pytest.approx(24.90)
