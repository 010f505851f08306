"""CRM simulator: customer and service upserts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from simulators import crm


@pytest.fixture
async def client(asgi_client) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(crm.create_app()) as client:
        yield client


async def put_customer(
    client: httpx.AsyncClient, customer: str = "c1", key: str | None = None, **body: object
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    payload = {"name": "Ada Lovelace", "email": "ada@example.org", "phone": "+33612345678", **body}
    return await client.put(f"/customers/{customer}", json=payload, headers=headers)


async def put_service(
    client: httpx.AsyncClient, service: str = "s1", customer: str = "c1", **body: object
) -> httpx.Response:
    return await client.put(f"/customers/{customer}/services/{service}", json=body)


async def test_create_then_update_customer(client: httpx.AsyncClient) -> None:
    created = await put_customer(client, key="order-1")
    updated = await put_customer(client, key="order-2", name="Ada King")
    got = await client.get("/customers/c1")
    assert created.status_code == 201
    assert created.json() == {
        "id": "c1",
        "name": "Ada Lovelace",
        "email": "ada@example.org",
        "phone": "+33612345678",
        "services": [],
        "created": True,
        "createdByKey": "order-1",
    }
    assert updated.status_code == 200
    assert updated.json()["created"] is False
    assert updated.json()["createdByKey"] == "order-1"
    assert got.json()["name"] == "Ada King"


async def test_retried_create_still_says_created(client: httpx.AsyncClient) -> None:
    await put_customer(client, key="order-1")
    retried = await put_customer(client, key="order-1")
    assert retried.status_code == 201
    assert retried.json()["created"] is True


async def test_unknown_customer_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/customers/nobody")).status_code == 404
    assert (await client.delete("/customers/nobody")).status_code == 404
    response = await put_service(client, customer="nobody", status="active")
    assert response.status_code == 404
    assert response.json() == {"error": "customer not found"}
    assert (await client.delete("/customers/nobody/services/s1")).status_code == 404


async def test_service_lifecycle_tracks_previous_status(client: httpx.AsyncClient) -> None:
    await put_customer(client)
    created = await put_service(
        client, status="pendingActivation", imsi="001010000000001", msisdn="33612345678",
        plan="BASIC-4G", orderId="o-1",
    )  # fmt: skip
    activated = await put_service(client, status="active")
    got = await client.get("/customers/c1/services/s1")
    customer = await client.get("/customers/c1")
    assert created.status_code == 201
    assert created.json()["previousStatus"] is None
    assert activated.status_code == 200
    assert activated.json()["previousStatus"] == "pendingActivation"
    # Fields left out of the body are kept.
    assert activated.json()["imsi"] == "001010000000001"
    assert got.json() == activated.json()
    assert customer.json()["services"] == [activated.json()]


async def test_if_match_star_updates_a_service_and_never_creates_one(
    client: httpx.AsyncClient,
) -> None:
    await put_customer(client)
    update_only = {"If-Match": "*"}
    absent = await client.put(
        "/customers/c1/services/s1", json={"status": "pendingTermination"}, headers=update_only
    )
    assert absent.status_code == 412
    assert (await client.get("/customers/c1/services/s1")).status_code == 404
    await put_service(client, status="active", plan="BASIC-4G")
    moved = await client.put(
        "/customers/c1/services/s1", json={"plan": "UNLIMITED-5G"}, headers=update_only
    )
    assert moved.status_code == 200
    assert moved.json()["plan"] == "UNLIMITED-5G" and moved.json()["status"] == "active"
    assert moved.json()["previousPlan"] == "BASIC-4G"


async def test_a_new_service_needs_a_status(client: httpx.AsyncClient) -> None:
    await put_customer(client)
    response = await put_service(client, plan="BASIC-4G")
    assert response.status_code == 400
    assert (await client.get("/customers/c1/services/s1")).status_code == 404


async def test_invalid_service_status_is_refused(client: httpx.AsyncClient) -> None:
    await put_customer(client)
    response = await put_service(client, status="sleeping")
    assert response.status_code == 422
    assert response.json()["error"].startswith("status:")


async def test_customer_with_services_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    await put_customer(client)
    await put_service(client, status="active")
    refused = await client.delete("/customers/c1")
    service_deleted = await client.delete("/customers/c1/services/s1")
    absent_deleted = await client.delete("/customers/c1/services/s1")
    missing = await client.get("/customers/c1/services/s1")
    customer_deleted = await client.delete("/customers/c1")
    state = (await client.get("/_sim/state")).json()
    assert refused.status_code == 409
    assert refused.json() == {"error": "customer has services"}
    assert service_deleted.status_code == absent_deleted.status_code == 204
    assert missing.status_code == 404
    assert customer_deleted.status_code == 204
    assert state == {"customers": [], "cases": [], "organizations": []}


async def test_delete_is_replayed_under_its_key(client: httpx.AsyncClient) -> None:
    await put_customer(client)
    headers = {"Idempotency-Key": "del-1"}
    first = await client.delete("/customers/c1", headers=headers)
    retried = await client.delete("/customers/c1", headers=headers)
    unkeyed = await client.delete("/customers/c1")
    assert first.status_code == retried.status_code == 204
    assert unkeyed.status_code == 404


async def test_state_nests_services_in_customers(client: httpx.AsyncClient) -> None:
    await put_customer(client)
    await put_service(client, status="active", msisdn="33612345678")
    state = (await client.get("/_sim/state")).json()
    assert [c["id"] for c in state["customers"]] == ["c1"]
    assert state["customers"][0]["services"][0]["msisdn"] == "33612345678"


async def test_cases_are_opened_once_per_idempotency_key(client: httpx.AsyncClient) -> None:
    body = {"subject": "Revenue leakage 2.1%", "category": "revenue-assurance", "priority": "high"}
    first = await client.post("/cases", json=body, headers={"Idempotency-Key": "rec-1/case"})
    again = await client.post("/cases", json=body, headers={"Idempotency-Key": "rec-1/case"})
    other = await client.post("/cases", json=body, headers={"Idempotency-Key": "rec-2/case"})
    assert first.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert other.json()["id"] != first.json()["id"]
    got = await client.get(f"/cases/{first.json()['id']}")
    assert got.json()["status"] == "open" and got.json()["priority"] == "high"
    state = (await client.get("/_sim/state")).json()
    assert len(state["cases"]) == 2


async def test_a_case_without_subject_is_refused(client: httpx.AsyncClient) -> None:
    refused = await client.post("/cases", json={"priority": "urgent"})
    assert refused.status_code == 422
    assert "subject" in refused.json()["error"]
    assert (await client.get("/cases/case-unknown")).status_code == 404
