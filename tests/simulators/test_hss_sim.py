"""HSS simulator: Open5GS-shaped subscriber documents, validation, key redaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from simulators import hss

IMSI = "001010000000001"


@pytest.fixture
async def client(asgi_client) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(hss.create_app()) as client:
        yield client


async def create(
    client: httpx.AsyncClient, document: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await client.post("/subscribers", json=document, headers=headers)


async def test_create_redacts_keys_but_stores_them(client: httpx.AsyncClient) -> None:
    document = hss.example_subscriber()
    response = await create(client, document)
    got = await client.get(f"/subscribers/{IMSI}")
    state = (await client.get("/_sim/state")).json()
    assert response.status_code == 201
    assert response.json()["security"] == {"k": "***", "opc": "***", "amf": "8000", "sqn": 97}
    assert got.json() == response.json()
    assert state["subscribers"] == [document]
    assert state["subscribers"][0]["security"]["opc"] == "CD63CB71954A9F4E48A5994E37A02BAF"


async def test_defaults_are_filled_in(client: httpx.AsyncClient) -> None:
    document = hss.example_subscriber()
    for optional in ("subscriber_status", "data_quota", "network_access_mode", "msisdn"):
        del document[optional]
    body = (await create(client, document)).json()
    assert body["subscriber_status"] == 0
    assert body["data_quota"] == 0
    assert body["msisdn"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(imsi="00101"), "imsi"),
        (lambda d: d["security"].update(opc="XYZ"), "security.opc"),
        (lambda d: d["security"].update(k="00" * 20), "security.k"),
        (lambda d: d.update(msisdn=["+33612345678"]), "msisdn[0]"),
        (lambda d: d["slice"][0]["session"][0]["qos"]["arp"].update(priority_level=16),
         "slice[0].session[0].qos.arp.priority_level"),
        (lambda d: d["ambr"]["downlink"].update(unit=5), "ambr.downlink.unit"),
        (lambda d: d.pop("ambr"), "ambr"),
        (lambda d: d.update(colour="blue"), "colour"),
    ],
)  # fmt: skip
async def test_invalid_document_names_the_field(
    client: httpx.AsyncClient, change: Any, field: str
) -> None:
    document = hss.example_subscriber()
    change(document)
    response = await create(client, document)
    state = (await client.get("/_sim/state")).json()
    assert response.status_code == 422
    assert response.json()["error"].startswith(f"{field}: ")
    assert state["subscribers"] == []


async def test_existing_imsi_under_another_key_conflicts(client: httpx.AsyncClient) -> None:
    first = await create(client, hss.example_subscriber(), key="a")
    replay = await create(client, hss.example_subscriber(), key="a")
    other = await create(client, hss.example_subscriber(), key="b")
    unkeyed = await create(client, hss.example_subscriber())
    assert first.status_code == replay.status_code == 201
    assert other.status_code == unkeyed.status_code == 409
    assert other.json() == {"error": "subscriber exists"}


async def test_patch_changes_allowed_keys(client: httpx.AsyncClient) -> None:
    await create(client, hss.example_subscriber())
    ambr = {"downlink": {"value": 300, "unit": 2}, "uplink": {"value": 50, "unit": 2}}
    patch = {"ambr": ambr, "subscriber_status": 1, "data_quota": 10**9}
    response = await client.patch(f"/subscribers/{IMSI}", json=patch)
    stored = (await client.get("/_sim/state")).json()["subscribers"][0]
    assert response.status_code == 200
    assert response.json()["ambr"] == ambr
    assert response.json()["security"]["k"] == "***"
    assert stored["subscriber_status"] == 1
    assert stored["data_quota"] == 10**9
    assert stored["security"]["k"] == "465B5CE8B199B49FAA5F0A2EE238A6BC"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"security": {"k": "00" * 16, "opc": "00" * 16}}, "security"),
        ({"imsi": "001010000000002"}, "imsi"),
        ({"subscriber_status": 7}, "subscriber_status"),
        ({"msisdn": "33612345678"}, "msisdn"),
    ],
)
async def test_patch_refuses_other_keys_and_bad_values(
    client: httpx.AsyncClient, patch: dict[str, Any], field: str
) -> None:
    await create(client, hss.example_subscriber())
    response = await client.patch(f"/subscribers/{IMSI}", json=patch)
    stored = (await client.get("/_sim/state")).json()["subscribers"][0]
    assert response.status_code == 422
    assert response.json()["error"].startswith(f"{field}: ")
    assert stored == hss.example_subscriber()


async def test_unknown_subscriber(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"/subscribers/{IMSI}")).status_code == 404
    assert (await client.patch(f"/subscribers/{IMSI}", json={"data_quota": 1})).status_code == 404
    assert (await client.delete(f"/subscribers/{IMSI}")).status_code == 404


async def test_delete(client: httpx.AsyncClient) -> None:
    await create(client, hss.example_subscriber())
    deleted = await client.delete(f"/subscribers/{IMSI}")
    missing = await client.get(f"/subscribers/{IMSI}")
    assert deleted.status_code == 204
    assert missing.status_code == 404
    assert missing.json() == {"error": "subscriber not found"}


async def test_get_can_be_failed_by_a_fault_rule(client: httpx.AsyncClient) -> None:
    await create(client, hss.example_subscriber())
    await client.post("/_sim/faults", json={"operation": "getSubscriber", "times": 1})
    failed = await client.get(f"/subscribers/{IMSI}")
    ok = await client.get(f"/subscribers/{IMSI}")
    assert failed.status_code == 503
    assert ok.status_code == 200
