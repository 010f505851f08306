"""The REST base maps every HTTP outcome onto the hub's error taxonomy (unit, MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from adapters.hss import HssClient, QosProfile, qos_document, qos_from_document, subscriber_document
from adapters.rest import RestClient, parse_retry_after
from hub.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermanentError,
    TransientError,
)


def client_answering(
    status: int, body: object = None, headers: dict[str, str] | None = None
) -> RestClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)

    return RestClient("http://system.test", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
        (408, TransientError),
        (429, TransientError),
        (400, PermanentError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (422, PermanentError),
        (404, NotFoundError),
        (409, ConflictError),
    ],
)
async def test_status_mapping(status: int, error: type[Exception]) -> None:
    client = client_answering(status, {"error": "why"})
    with pytest.raises(error) as caught:
        await client.request("GET", "/x")
    assert type(caught.value) is error
    assert "why" in str(caught.value) and str(status) in str(caught.value)


async def test_retry_after_is_carried() -> None:
    client = client_answering(429, {"error": "slow down"}, {"Retry-After": "7"})
    with pytest.raises(TransientError) as caught:
        await client.request("GET", "/x")
    assert caught.value.retry_after == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


async def test_network_errors_are_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    for handler in (refuse, slow):
        client = RestClient("http://system.test", transport=httpx.MockTransport(handler))
        with pytest.raises(TransientError):
            await client.request("POST", "/x", json={})


async def test_idempotency_key_and_bearer_token_are_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    client = HssClient("http://hss.test", token="t0ken", transport=httpx.MockTransport(handler))
    assert await client.delete_subscriber("001010000000001", idempotency_key="wf/1/hss") is True
    assert seen[0].headers["Idempotency-Key"] == "wf/1/hss"
    assert seen[0].headers["Authorization"] == "Bearer t0ken"


async def test_non_json_reply_is_permanent() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>")

    client = HssClient("http://hss.test", transport=httpx.MockTransport(handler))
    with pytest.raises(PermanentError, match="not JSON"):
        await client.get_subscriber("001010000000001")


def test_subscriber_document_round_trips_its_qos() -> None:
    qos = QosProfile(
        qci=8,
        ambr_downlink=1_000_000_000,
        ambr_uplink=100_000_000,
        data_quota=5 * 10**9,
        arp_priority=2,
    )
    document = subscriber_document(
        imsi="001010000000001", msisdn="+436641234567", k="AA" * 16, opc="BB" * 16, qos=qos
    )
    assert document["msisdn"] == ["436641234567"]
    assert document["security"] == {"k": "aa" * 16, "opc": "bb" * 16, "amf": "8000", "sqn": 0}
    assert qos_from_document(document) == qos
    assert qos_from_document({**document, **qos_document(qos)}) == qos
    # Open5GS units: 2 = Mbps.
    scaled = {
        **document,
        "ambr": {"downlink": {"value": 1000, "unit": 2}, "uplink": {"value": 100, "unit": 2}},
    }
    assert qos_from_document(scaled).ambr_downlink == 1_000_000_000
