"""Credit agency simulator: decisions, reservations, the declined list."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from simulators import credit


@pytest.fixture
async def client(asgi_client) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(credit.create_app()) as client:
        yield client


async def check(
    client: httpx.AsyncClient, customer: str = "cust-1", amount: float = 100, **extra: object
) -> httpx.Response:
    body = {"customerId": customer, "name": "Ada Lovelace", "amount": amount, **extra}
    return await client.post("/credit-checks", json=body)


async def test_approved_check_has_the_documented_shape(client: httpx.AsyncClient) -> None:
    response = await check(client)
    body = response.json()
    assert response.status_code == 201
    assert body["id"].startswith("chk-")
    assert body["decision"] == "approved"
    assert body["reason"] is None
    assert body["currency"] == "EUR"
    assert 300 <= body["score"] <= 850
    assert set(body) == {
        "id", "customerId", "name", "amount", "currency", "decision", "score", "reason",
        "createdAt",
    }  # fmt: skip


async def test_score_depends_only_on_the_customer(client: httpx.AsyncClient) -> None:
    first = (await check(client, "cust-1", 1)).json()["score"]
    again = (await check(client, "cust-1", 2)).json()["score"]
    scores = {(await check(client, f"cust-{n}", 1)).json()["score"] for n in range(10)}
    assert first == again
    assert len(scores) > 1


async def test_amount_over_the_limit_is_declined(client: httpx.AsyncClient) -> None:
    response = await check(client, amount=500.01)
    assert response.status_code == 201
    assert response.json()["decision"] == "declined"
    assert response.json()["reason"] == "amount exceeds credit limit"


async def test_reservations_add_up_and_deleting_releases(client: httpx.AsyncClient) -> None:
    first = (await check(client, amount=300)).json()
    over = (await check(client, amount=300)).json()
    deleted = await client.delete(f"/credit-checks/{first['id']}")
    fits = (await check(client, amount=300)).json()
    assert first["decision"] == "approved"
    assert over["decision"] == "declined"  # 300 reserved + 300 > 500
    assert deleted.status_code == 204
    assert fits["decision"] == "approved"


async def test_declined_list(client: httpx.AsyncClient) -> None:
    assert (await client.put("/_sim/declined/cust-9")).status_code == 204
    declined = (await check(client, "cust-9", 1)).json()
    state = (await client.get("/_sim/state")).json()
    assert (await client.delete("/_sim/declined/cust-9")).status_code == 204
    approved = (await check(client, "cust-9", 1)).json()
    assert declined["decision"] == "declined"
    assert declined["reason"] == "customer on declined list"
    assert state["declined"] == ["cust-9"]
    assert approved["decision"] == "approved"


async def test_credit_limit_is_configurable(client: httpx.AsyncClient) -> None:
    put = await client.put("/_sim/credit-limit", json={"limit": 50})
    response = (await check(client, amount=60)).json()
    assert put.json() == {"limit": 50.0}
    assert response["decision"] == "declined"


async def test_get_and_delete(client: httpx.AsyncClient) -> None:
    created = (await check(client)).json()
    got = await client.get(f"/credit-checks/{created['id']}")
    first_delete = await client.delete(f"/credit-checks/{created['id']}")
    second_delete = await client.delete(f"/credit-checks/{created['id']}")
    missing = await client.get(f"/credit-checks/{created['id']}")
    assert got.json() == created
    assert first_delete.status_code == second_delete.status_code == 204
    assert missing.status_code == 404
    assert missing.json() == {"error": "credit check not found"}


async def test_invalid_body_names_the_field(client: httpx.AsyncClient) -> None:
    response = await check(client, currency="euro")
    assert response.status_code == 422
    assert response.json()["error"].startswith("currency:")
