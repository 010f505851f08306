"""The behaviour every REST simulator shares: idempotency, faults, config, reset, persistence."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from simulators import credit, crm, hss

Send = Callable[[httpx.AsyncClient, str, str | None], Awaitable[httpx.Response]]


def _key(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key else {}


@dataclass(frozen=True)
class Case:
    """How to drive one simulator through its main create operation."""

    system: str
    create_app: Callable[[Path | None], FastAPI]
    operation: str
    created_status: int
    #: ``send(client, ident, key)`` creates the record ``ident`` (15 digits).
    create: Send
    #: Same, with a body the simulator must refuse.
    create_invalid: Send
    #: The records list in ``GET /_sim/state``.
    records_key: str


async def _credit_create(client: httpx.AsyncClient, ident: str, key: str | None) -> httpx.Response:
    body = {"customerId": ident, "name": "Ada Lovelace", "amount": 10}
    return await client.post("/credit-checks", json=body, headers=_key(key))


async def _credit_invalid(client: httpx.AsyncClient, ident: str, key: str | None) -> httpx.Response:
    body = {"customerId": ident, "name": "Ada Lovelace", "amount": -1}
    return await client.post("/credit-checks", json=body, headers=_key(key))


async def _crm_create(client: httpx.AsyncClient, ident: str, key: str | None) -> httpx.Response:
    body = {"name": "Ada Lovelace", "email": "ada@example.org", "phone": None}
    return await client.put(f"/customers/{ident}", json=body, headers=_key(key))


async def _crm_invalid(client: httpx.AsyncClient, ident: str, key: str | None) -> httpx.Response:
    return await client.put(f"/customers/{ident}", json={"email": "x"}, headers=_key(key))


async def _hss_create(client: httpx.AsyncClient, ident: str, key: str | None) -> httpx.Response:
    return await client.post("/subscribers", json=hss.example_subscriber(ident), headers=_key(key))


async def _hss_invalid(client: httpx.AsyncClient, ident: str, key: str | None) -> httpx.Response:
    document = hss.example_subscriber(ident)
    document["security"]["opc"] = "not-hex"
    return await client.post("/subscribers", json=document, headers=_key(key))


CASES = [
    Case(
        "credit", credit.create_app, "createCheck", 201, _credit_create, _credit_invalid, "checks"
    ),
    Case("crm", crm.create_app, "upsertCustomer", 201, _crm_create, _crm_invalid, "customers"),
    Case("hss", hss.create_app, "createSubscriber", 201, _hss_create, _hss_invalid, "subscribers"),
]

IMSI_A = "001010000000001"
IMSI_B = "001010000000002"


@pytest.fixture(params=CASES, ids=[case.system for case in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


async def _records(client: httpx.AsyncClient, case: Case) -> list[dict[str, Any]]:
    response = await client.get("/_sim/state")
    assert response.status_code == 200
    return response.json()[case.records_key]


async def test_health(case: Case, asgi_client) -> None:
    async with asgi_client(case.create_app(None)) as client:
        response = await client.get("/_sim/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_same_key_replays_the_first_answer(case: Case, asgi_client) -> None:
    async with asgi_client(case.create_app(None)) as client:
        first = await case.create(client, IMSI_A, "key-1")
        second = await case.create(client, IMSI_A, "key-1")
        records = await _records(client, case)
    assert first.status_code == case.created_status
    assert second.status_code == first.status_code
    assert second.content == first.content
    assert len(records) == 1


async def test_concurrent_requests_with_one_key_create_once(case: Case, asgi_client) -> None:
    async with asgi_client(case.create_app(None)) as client:
        # Latency makes the requests overlap before they reach the lock.
        await client.put("/_sim/config", json={"latency_ms": 20})
        responses = await asyncio.gather(*(case.create(client, IMSI_A, "k") for _ in range(5)))
        records = await _records(client, case)
    assert {r.status_code for r in responses} == {case.created_status}
    assert len({r.content for r in responses}) == 1
    assert len(records) == 1


async def test_transient_fault_fails_n_times_then_lets_through(case: Case, asgi_client) -> None:
    async with asgi_client(case.create_app(None)) as client:
        rule = {"operation": case.operation, "kind": "transient", "times": 2}
        created = await client.post("/_sim/faults", json=rule)
        failures = [await case.create(client, IMSI_A, "k") for _ in range(2)]
        success = await case.create(client, IMSI_A, "k")
        listed = (await client.get("/_sim/faults")).json()
        records = await _records(client, case)
    assert created.status_code == 201
    for failure in failures:
        assert failure.status_code == 503
        assert failure.headers["Retry-After"] == "0"
        assert failure.json()["injected"] is True
    assert success.status_code == case.created_status
    assert listed == [{**created.json(), "remaining": 0, "applied": 2}]
    assert len(records) == 1


async def test_fault_comes_before_the_idempotent_replay(case: Case, asgi_client) -> None:
    async with asgi_client(case.create_app(None)) as client:
        first = await case.create(client, IMSI_A, "k")
        await client.post("/_sim/faults", json={"operation": "*", "kind": "permanent", "times": 1})
        during = await case.create(client, IMSI_A, "k")
        after = await case.create(client, IMSI_A, "k")
    assert during.status_code == 422
    assert during.json() == {"error": "injected permanent fault", "injected": True}
    assert after.content == first.content


async def test_permanent_fault_with_status_and_message_changes_nothing(
    case: Case, asgi_client
) -> None:
    async with asgi_client(case.create_app(None)) as client:
        rule = {"operation": case.operation, "kind": "permanent", "status": 400, "message": "no"}
        await client.post("/_sim/faults", json=rule)
        responses = [await case.create(client, IMSI_A, None) for _ in range(3)]
        records = await _records(client, case)
    assert [r.status_code for r in responses] == [400, 400, 400]
    assert responses[0].json() == {"error": "no", "injected": True}
    assert "Retry-After" not in responses[0].headers
    assert records == []


async def test_fault_matching_an_id_hits_only_that_id(case: Case, asgi_client) -> None:
    async with asgi_client(case.create_app(None)) as client:
        await client.post("/_sim/faults", json={"operation": "*", "match": IMSI_A})
        hit = await case.create(client, IMSI_A, None)
        missed = await case.create(client, IMSI_B, None)
    assert hit.status_code == 503
    assert missed.status_code == case.created_status


async def test_fault_on_another_operation_does_not_apply(case: Case, asgi_client) -> None:
    async with asgi_client(case.create_app(None)) as client:
        await client.post("/_sim/faults", json={"operation": "somethingElse"})
        response = await case.create(client, IMSI_A, None)
    assert response.status_code == case.created_status


async def test_fault_rules_can_be_listed_and_deleted(case: Case, asgi_client) -> None:
    async with asgi_client(case.create_app(None)) as client:
        one = (await client.post("/_sim/faults", json={"operation": "a"})).json()
        two = (await client.post("/_sim/faults", json={"operation": "b", "times": 3})).json()
        assert [r["id"] for r in (await client.get("/_sim/faults")).json()] == [
            one["id"],
            two["id"],
        ]
        assert two["remaining"] == 3
        assert (await client.delete(f"/_sim/faults/{one['id']}")).status_code == 204
        assert (await client.delete(f"/_sim/faults/{one['id']}")).status_code == 404
        assert [r["id"] for r in (await client.get("/_sim/faults")).json()] == [two["id"]]
        assert (await client.delete("/_sim/faults")).status_code == 204
        assert (await client.get("/_sim/faults")).json() == []


async def test_invalid_fault_rule_is_refused(case: Case, asgi_client) -> None:
    async with asgi_client(case.create_app(None)) as client:
        response = await client.post("/_sim/faults", json={"kind": "sometimes"})
    assert response.status_code == 422
    assert response.json()["error"].startswith("kind:")


async def test_error_rate_one_always_fails(case: Case, asgi_client) -> None:
    async with asgi_client(case.create_app(None)) as client:
        put = await client.put("/_sim/config", json={"error_rate": 1.0})
        got = await client.get("/_sim/config")
        failures = [await case.create(client, IMSI_A, None) for _ in range(10)]
        records = await _records(client, case)
        await client.put("/_sim/config", json={"error_rate": 0.0})
        recovered = await case.create(client, IMSI_A, None)
    assert put.status_code == 200
    assert got.json() == {"latency_ms": 0, "error_rate": 1.0, "seed": None}
    assert {r.status_code for r in failures} == {503}
    assert records == []
    assert recovered.status_code == case.created_status


async def test_invalid_config_is_refused(case: Case, asgi_client) -> None:
    async with asgi_client(case.create_app(None)) as client:
        response = await client.put("/_sim/config", json={"error_rate": 2})
        config = (await client.get("/_sim/config")).json()
    assert response.status_code == 422
    assert config["error_rate"] == 0.0


async def test_seeded_error_rate_is_reproducible(case: Case, asgi_client) -> None:
    async def outcomes(client: httpx.AsyncClient) -> list[int]:
        await client.post("/_sim/reset")
        await client.put("/_sim/config", json={"error_rate": 0.5, "seed": 7})
        return [
            (await case.create(client, f"0010100000001{n:02d}", None)).status_code
            for n in range(20)
        ]

    async with asgi_client(case.create_app(None)) as client:
        first = await outcomes(client)
        second = await outcomes(client)
    assert first == second
    assert set(first) == {503, case.created_status}


async def test_latency_delays_business_calls(case: Case, asgi_client) -> None:
    async with asgi_client(case.create_app(None)) as client:
        await client.put("/_sim/config", json={"latency_ms": 60})
        started = time.perf_counter()
        response = await case.create(client, IMSI_A, None)
        elapsed = time.perf_counter() - started
    assert response.status_code == case.created_status
    assert elapsed >= 0.06


async def test_reset_clears_records_memory_faults_and_config(case: Case, asgi_client) -> None:
    async with asgi_client(case.create_app(None)) as client:
        first = await case.create(client, IMSI_A, "k")
        await client.post("/_sim/faults", json={"operation": "nothing"})
        await client.put("/_sim/config", json={"latency_ms": 5, "error_rate": 0.0, "seed": 1})
        reset = await client.post("/_sim/reset")
        records = await _records(client, case)
        faults = (await client.get("/_sim/faults")).json()
        config = (await client.get("/_sim/config")).json()
        again = await case.create(client, IMSI_A, "k")
        after = await _records(client, case)
    assert reset.status_code == 204
    assert records == []
    assert faults == []
    assert config == {"latency_ms": 0, "error_rate": 0.0, "seed": None}
    # The key was forgotten: the create ran again (a replay would have created nothing).
    assert again.status_code == first.status_code == case.created_status
    assert len(after) == 1


async def test_a_failure_is_not_replayed(case: Case, asgi_client) -> None:
    async with asgi_client(case.create_app(None)) as client:
        refused = await case.create_invalid(client, IMSI_A, "k")
        fixed = await case.create(client, IMSI_A, "k")
    assert refused.status_code == 422
    assert "error" in refused.json()
    assert fixed.status_code == case.created_status


async def test_state_survives_a_restart(case: Case, asgi_client, tmp_path: Path) -> None:
    state_file = tmp_path / f"{case.system}.json"
    async with asgi_client(case.create_app(state_file)) as client:
        first = await case.create(client, IMSI_A, "k")
        await client.post("/_sim/faults", json={"operation": "*"})
        await client.put("/_sim/config", json={"latency_ms": 1})
        before = (await client.get("/_sim/state")).json()

    async with asgi_client(case.create_app(state_file)) as client:
        after = (await client.get("/_sim/state")).json()
        faults = (await client.get("/_sim/faults")).json()
        config = (await client.get("/_sim/config")).json()
        replay = await case.create(client, IMSI_A, "k")
        records = await _records(client, case)

    assert after == before
    assert len(records) == 1
    assert replay.status_code == first.status_code
    assert replay.content == first.content
    assert faults == []
    assert config["latency_ms"] == 0
    persisted, files = _read_dir(state_file)
    assert persisted["records"] == before
    assert files == [state_file.name]  # no temp file left behind


def _read_dir(state_file: Path) -> tuple[dict[str, Any], list[str]]:
    return json.loads(state_file.read_text()), sorted(p.name for p in state_file.parent.iterdir())


def test_unreadable_state_file_refuses_to_start(case: Case, tmp_path: Path) -> None:
    state_file = tmp_path / "broken.json"
    state_file.write_text("{not json")
    with pytest.raises(RuntimeError, match="cannot load state file"):
        case.create_app(state_file)
