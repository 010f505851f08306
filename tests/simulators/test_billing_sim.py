"""Billing simulator: SOAP through a real uvicorn server and zeep, plus raw-envelope edge cases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import zeep
from lxml import etree
from zeep.exceptions import Fault, TransportError
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from simulators import billing
from simulators.serving import serve_in_background

TNS = billing.TNS
SOAP_ENV = billing.SOAP_ENV


# -- a real server and a zeep client -----------------------------------------------------------


@pytest.fixture(scope="module")
async def billing_url() -> AsyncIterator[str]:
    async with serve_in_background(billing.create_app()) as url:
        yield url


@pytest.fixture(scope="module")
async def service(billing_url: str) -> AsyncIterator[Any]:
    transport = AsyncTransport(client=httpx.AsyncClient(timeout=10))
    client = zeep.AsyncClient(str(billing.WSDL_PATH), transport=transport)
    # zeep 4.3's AsyncClient.create_service returns a *synchronous* ServiceProxy whose calls
    # break on the async transport (python-zeep#1168, #1288); build the async proxy directly.
    binding = client.wsdl.bindings[billing.BINDING]
    yield AsyncServiceProxy(client, binding, address=f"{billing_url}/billing")
    await transport.aclose()
    transport.wsdl_client.close()


@pytest.fixture
async def control(billing_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The simulator's /_sim endpoints, reset before each test."""
    async with httpx.AsyncClient(base_url=billing_url) as client:
        assert (await client.post("/_sim/reset")).status_code == 204
        yield client


def detail_code(fault: Fault) -> str:
    return fault.detail.findtext(f"{{{TNS}}}BillingFault/{{{TNS}}}code")


async def state(control: httpx.AsyncClient) -> dict[str, Any]:
    return (await control.get("/_sim/state")).json()


async def new_account(service: Any, customer: str = "cust-1") -> str:
    result = await service.CreateAccount(
        idempotencyKey=f"acc-{customer}", customerId=customer, name="Ada", currency="EUR"
    )
    return result.accountId


async def test_list_plans(service: Any, control: httpx.AsyncClient) -> None:
    plans = await service.ListPlans()
    by_code = {plan.code: plan for plan in plans}
    assert list(by_code) == ["BASIC-4G", "STANDARD-5G", "UNLIMITED-5G", "IOT-M2M"]
    assert by_code["BASIC-4G"].monthlyFee == Decimal("9.90")
    assert (by_code["UNLIMITED-5G"].qci, by_code["UNLIMITED-5G"].downlinkBps) == (8, 10**9)
    assert by_code["IOT-M2M"].uplinkBps == 256_000


async def test_get_tariffs_prices_sms_per_plan(
    service: Any, control: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = await service.GetTariffs()
    by_code = {tariff.planCode: tariff for tariff in reply.tariff}
    assert {code: t.smsPricePerMessage for code, t in by_code.items()} == {
        code: plan.sms_price_per_message for code, plan in billing.PLANS.items()
    }
    assert by_code["BASIC-4G"].smsPricePerMessage == billing.SMS_PRICE
    # A plan without an SMS price answers without the (optional) element.
    monkeypatch.setitem(
        billing.PLANS, "IOT-M2M", replace(billing.PLANS["IOT-M2M"], sms_price_per_message=None)
    )
    reply = await service.GetTariffs()
    by_code = {tariff.planCode: tariff for tariff in reply.tariff}
    assert by_code["IOT-M2M"].smsPricePerMessage is None
    assert by_code["IOT-M2M"].voicePricePerMinute == Decimal("0.2000")


async def test_account_is_one_per_customer(service: Any, control: httpx.AsyncClient) -> None:
    first = await service.CreateAccount(
        idempotencyKey="k1", customerId="cust-1", name="Ada", currency="EUR"
    )
    second = await service.CreateAccount(
        idempotencyKey="k2", customerId="cust-1", name="Ada", currency="EUR"
    )
    assert first.created is True
    assert second.created is False
    assert second.accountId == first.accountId
    assert len((await state(control))["accounts"]) == 1


async def test_subscription_lifecycle(service: Any, control: httpx.AsyncClient) -> None:
    account = await new_account(service)
    created = await service.CreateSubscription(
        idempotencyKey="sub-1", accountId=account, msisdn="33612345678",
        imsi="001010000000001", planCode="STANDARD-5G",
    )  # fmt: skip
    assert (created.status, created.monthlyFee) == ("active", Decimal("24.90"))

    got = await service.GetSubscription(msisdn="33612345678")
    assert (got.subscriptionId, got.accountId, got.imsi) == (
        created.subscriptionId, account, "001010000000001",
    )  # fmt: skip

    changed = await service.ChangePlan(
        idempotencyKey="chg-1", msisdn="33612345678", planCode="UNLIMITED-5G"
    )
    assert (changed.previousPlanCode, changed.planCode) == ("STANDARD-5G", "UNLIMITED-5G")
    assert (await service.GetSubscription(msisdn="33612345678")).monthlyFee == Decimal("49.90")

    with pytest.raises(Fault) as has_subscriptions:
        await service.CloseAccount(idempotencyKey="close-1", accountId=account)
    assert detail_code(has_subscriptions.value) == "AccountHasSubscriptions"

    terminated = await service.TerminateSubscription(idempotencyKey="t-1", msisdn="33612345678")
    assert terminated.status == "terminated"
    assert (await service.GetSubscription(msisdn="33612345678")).status == "terminated"

    reactivated = await service.ReactivateSubscription(idempotencyKey="r-1", msisdn="33612345678")
    assert (reactivated.subscriptionId, reactivated.status) == (created.subscriptionId, "active")

    await service.TerminateSubscription(idempotencyKey="t-2", msisdn="33612345678")
    closed = await service.CloseAccount(idempotencyKey="close-2", accountId=account)
    assert (closed.accountId, closed.status) == (account, "closed")
    records = await state(control)
    assert records["accounts"] == []
    assert [s["status"] for s in records["subscriptions"]] == ["terminated"]


async def test_unknown_plan_is_a_client_fault(service: Any, control: httpx.AsyncClient) -> None:
    account = await new_account(service)
    with pytest.raises(Fault) as caught:
        await service.CreateSubscription(
            idempotencyKey="s", accountId=account, msisdn="33612345678",
            imsi="001010000000001", planCode="GOLD",
        )  # fmt: skip
    assert caught.value.code == "soap:Client"
    assert detail_code(caught.value) == "UnknownPlan"
    assert "GOLD" in caught.value.message
    assert (await state(control))["subscriptions"] == []


@pytest.mark.parametrize(
    ("operation", "arguments", "code"),
    [
        ("CloseAccount", {"accountId": "acc-nope"}, "UnknownAccount"),
        ("CreateSubscription", {"accountId": "acc-nope", "msisdn": "33600000000",
                                "imsi": "001010000000009", "planCode": "BASIC-4G"},
         "UnknownAccount"),
        ("ChangePlan", {"msisdn": "33600000000", "planCode": "BASIC-4G"}, "UnknownSubscription"),
        ("TerminateSubscription", {"msisdn": "33600000000"}, "UnknownSubscription"),
        ("ReactivateSubscription", {"msisdn": "33600000000"}, "UnknownSubscription"),
        ("VoidSubscription", {"subscriptionId": "sub-nope"}, "UnknownSubscription"),
    ],
)  # fmt: skip
async def test_unknown_records_fault(
    service: Any, control: httpx.AsyncClient, operation: str, arguments: dict[str, str], code: str
) -> None:
    with pytest.raises(Fault) as caught:
        await service[operation](idempotencyKey="k", **arguments)
    assert detail_code(caught.value) == code


async def test_get_unknown_subscription_faults(service: Any, control: httpx.AsyncClient) -> None:
    with pytest.raises(Fault) as caught:
        await service.GetSubscription(msisdn="33600000000")
    assert detail_code(caught.value) == "UnknownSubscription"


async def test_change_to_unknown_plan_faults(service: Any, control: httpx.AsyncClient) -> None:
    account = await new_account(service)
    await service.CreateSubscription(
        accountId=account, msisdn="33612345678", imsi="001010000000001", planCode="BASIC-4G"
    )
    with pytest.raises(Fault) as caught:
        await service.ChangePlan(msisdn="33612345678", planCode="GOLD")
    assert detail_code(caught.value) == "UnknownPlan"
    assert (await service.GetSubscription(msisdn="33612345678")).planCode == "BASIC-4G"


async def test_second_active_subscription_is_a_duplicate(
    service: Any, control: httpx.AsyncClient
) -> None:
    account = await new_account(service)
    args = {"accountId": account, "msisdn": "33612345678", "imsi": "001010000000001",
            "planCode": "BASIC-4G"}  # fmt: skip
    first = await service.CreateSubscription(idempotencyKey="a", **args)
    replay = await service.CreateSubscription(idempotencyKey="a", **args)
    with pytest.raises(Fault) as caught:
        await service.CreateSubscription(idempotencyKey="b", **args)
    assert replay.subscriptionId == first.subscriptionId
    assert detail_code(caught.value) == "DuplicateSubscription"
    assert len((await state(control))["subscriptions"]) == 1


async def test_void_leaves_no_trace(service: Any, control: httpx.AsyncClient) -> None:
    account = await new_account(service)
    args = {"accountId": account, "msisdn": "33612345678", "imsi": "001010000000001",
            "planCode": "BASIC-4G"}  # fmt: skip
    created = await service.CreateSubscription(idempotencyKey="a", **args)
    voided = await service.VoidSubscription(
        idempotencyKey="v", subscriptionId=created.subscriptionId
    )
    after_void = await state(control)
    again = await service.CreateSubscription(idempotencyKey="b", **args)
    assert (voided.subscriptionId, voided.status) == (created.subscriptionId, "voided")
    assert after_void["subscriptions"] == []
    assert again.subscriptionId != created.subscriptionId


async def test_failure_is_not_replayed(service: Any, control: httpx.AsyncClient) -> None:
    account = await new_account(service)
    args = {"accountId": account, "msisdn": "33612345678", "imsi": "001010000000001"}
    with pytest.raises(Fault):
        await service.CreateSubscription(idempotencyKey="k", planCode="GOLD", **args)
    fixed = await service.CreateSubscription(idempotencyKey="k", planCode="BASIC-4G", **args)
    assert fixed.status == "active"


async def test_injected_transient_fault_is_a_transport_error(
    service: Any, control: httpx.AsyncClient
) -> None:
    rule = {"operation": "CreateAccount", "kind": "transient", "times": 1}
    assert (await control.post("/_sim/faults", json=rule)).status_code == 201
    with pytest.raises(TransportError) as caught:
        await new_account(service)
    account = await new_account(service)
    assert caught.value.status_code == 503
    assert [a["accountId"] for a in (await state(control))["accounts"]] == [account]


async def test_injected_permanent_fault_is_a_soap_fault(
    service: Any, control: httpx.AsyncClient
) -> None:
    rule = {"operation": "ListPlans", "kind": "permanent", "message": "billing says no"}
    await control.post("/_sim/faults", json=rule)
    with pytest.raises(Fault) as caught:
        await service.ListPlans()
    assert caught.value.code == "soap:Client"
    assert caught.value.message == "billing says no"
    assert detail_code(caught.value) == "InjectedFault"


async def test_fault_matching_one_msisdn(service: Any, control: httpx.AsyncClient) -> None:
    account = await new_account(service)
    for n, msisdn in enumerate(("33600000001", "33600000002")):
        await service.CreateSubscription(
            accountId=account, msisdn=msisdn, imsi=f"00101000000000{n}", planCode="BASIC-4G"
        )
    await control.post("/_sim/faults", json={"operation": "*", "match": "33600000001"})
    with pytest.raises(TransportError):
        await service.GetSubscription(msisdn="33600000001")
    assert (await service.GetSubscription(msisdn="33600000002")).status == "active"


async def test_error_rate_one_fails_every_call(service: Any, control: httpx.AsyncClient) -> None:
    await control.put("/_sim/config", json={"error_rate": 1.0})
    for _ in range(3):
        with pytest.raises(TransportError):
            await service.ListPlans()


async def test_wsdl_endpoint_points_at_the_server(billing_url: str) -> None:
    async with httpx.AsyncClient(base_url=billing_url) as client:
        response = await client.get("/billing?wsdl")
        without_query = await client.get("/billing")
    document = etree.fromstring(response.content)
    address = document.find(f".//{{{billing.WSDL_NS}}}port/{{{billing.WSDL_SOAP}}}address").get(
        "location"
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert address == f"{billing_url}/billing"
    assert without_query.status_code == 400

    def load_over_http() -> set[str]:
        client = zeep.Client(f"{billing_url}/billing?wsdl")
        return set(client.wsdl.bindings[billing.BINDING].all())

    # zeep loads a WSDL synchronously, so off the loop that serves it.
    assert await asyncio.to_thread(load_over_http) == set(billing.default_contract().operations)


# -- raw envelopes, in process -------------------------------------------------------------------


@pytest.fixture
def contract() -> billing.SoapContract:
    return billing.SoapContract()


def envelope(contract: billing.SoapContract, operation: str, **values: Any) -> bytes:
    """A request envelope built by zeep from the contract, as the hub's adapter would."""
    message = contract.operations[operation].input.serialize(**values)
    return etree.tostring(message.content)


def soap_headers(operation: str) -> dict[str, str]:
    return {
        "Content-Type": "text/xml; charset=utf-8",
        "SOAPAction": f'"urn:telecom-hub:billing:v1/{operation}"',
    }


def parse_fault(content: bytes) -> tuple[str | None, str | None]:
    document = etree.fromstring(content)
    fault = document.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    code = fault.findtext(f"detail/{{{TNS}}}BillingFault/{{{TNS}}}code")
    return fault.findtext("faultcode"), code


def raw_envelope(body: str) -> bytes:
    """A hand-written envelope: only for requests the contract would not let zeep build."""
    return f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body>{body}</s:Body></s:Envelope>'.encode()


@pytest.mark.parametrize(
    "body",
    [
        b"this is not xml",
        b"<Envelope/>",
        raw_envelope(""),
        raw_envelope(f'<Nope xmlns="{TNS}"/>'),
        raw_envelope(f'<CloseAccountRequest xmlns="{TNS}"/>'),  # accountId is required
        raw_envelope(
            f'<CreateAccountRequest xmlns="{TNS}"><customerId>c</customerId><name>n</name>'
            "<currency>euro</currency></CreateAccountRequest>"
        ),
    ],
    ids=["not-xml", "not-soap", "empty-body", "unknown-element", "missing-element", "bad-currency"],
)
async def test_malformed_request_is_a_client_fault(asgi_client, body: bytes) -> None:
    async with asgi_client(billing.create_app()) as client:
        response = await client.post("/billing", content=body, headers=soap_headers("X"))
    assert response.status_code == 500
    assert parse_fault(response.content) == ("soap:Client", "MalformedRequest")


async def test_soap_action_must_match_the_body(asgi_client, contract) -> None:
    body = envelope(contract, "ListPlans")
    async with asgi_client(billing.create_app()) as client:
        wrong = await client.post("/billing", content=body, headers=soap_headers("CloseAccount"))
        right = await client.post("/billing", content=body, headers=soap_headers("ListPlans"))
    assert parse_fault(wrong.content) == ("soap:Client", "MalformedRequest")
    assert right.status_code == 200


async def test_transient_fault_is_a_bare_503(asgi_client, contract) -> None:
    async with asgi_client(billing.create_app()) as client:
        await client.post("/_sim/faults", json={"operation": "*", "times": 1})
        response = await client.post(
            "/billing", content=envelope(contract, "ListPlans"), headers=soap_headers("ListPlans")
        )
    assert response.status_code == 503
    assert response.content == b""
    assert response.headers["Retry-After"] == "0"


async def test_state_and_replay_survive_a_restart(asgi_client, contract, tmp_path: Path) -> None:
    state_file = tmp_path / "billing.json"
    request = envelope(
        contract, "CreateAccount", idempotencyKey="k", customerId="c", name="Ada", currency="EUR"
    )
    headers = soap_headers("CreateAccount")
    async with asgi_client(billing.create_app(state_file)) as client:
        first = await client.post("/billing", content=request, headers=headers)
        before = (await client.get("/_sim/state")).json()
    async with asgi_client(billing.create_app(state_file)) as client:
        replay = await client.post("/billing", content=request, headers=headers)
        after = (await client.get("/_sim/state")).json()
    assert first.status_code == 200
    assert replay.content == first.content
    assert after == before
    assert len(after["accounts"]) == 1
