"""The remote codec endpoint the Temporal UI and CLI use to show decrypted payloads."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from hub.codec import generate_key_spec
from hub.settings import ApiClient, Settings

UI = "http://127.0.0.1:8233"
KEY = "codec-test-key-" + "z" * 20
#: A client that may decode (HUB_API_KEY keys may not).
OPERATOR = ApiClient(
    name="operator", key="operator-key-" + "o" * 20, scopes=["codec:encode", "codec:decode"]
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def json_payload(value: object) -> dict[str, object]:
    return {"metadata": {"encoding": b64("json/plain")}, "data": b64(json.dumps(value))}


async def client_for(tmp_path: Path, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        api_key=[KEY],
        api_clients=[OPERATOR],
        payload_keys=[generate_key_spec("ui-1")],
        **overrides,  # type: ignore[arg-type]
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://hub.test",
            headers={"Authorization": f"Bearer {OPERATOR.key.get_secret_value()}"},
        ) as client,
    ):
        yield client


@pytest.fixture
async def codec_api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(tmp_path):
        yield client


async def test_encode_then_decode_round_trips(codec_api: httpx.AsyncClient) -> None:
    original = [json_payload({"ki": "465b5ce8b199b49faa5f0a2ee238a6bc"}), json_payload(42)]
    encoded = await codec_api.post("/codec/encode", json={"payloads": original})
    assert encoded.status_code == 200
    sealed = encoded.json()["payloads"]
    assert all(base64.b64decode(p["metadata"]["encoding"]) == b"binary/encrypted" for p in sealed)
    assert all(base64.b64decode(p["metadata"]["encryption-key-id"]) == b"ui-1" for p in sealed)
    assert "465b5ce8" not in base64.b64decode(sealed[0]["data"]).decode("latin-1")
    decoded = await codec_api.post(
        "/codec/decode", json={"payloads": sealed}, headers={"X-Namespace": "default"}
    )
    assert decoded.status_code == 200
    assert decoded.json()["payloads"] == original


async def test_cors_allows_the_ui_origin_only(codec_api: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    allowed = await codec_api.options("/codec/decode", headers={"Origin": UI, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == UI
    denied = await codec_api.options(
        "/codec/decode", headers={"Origin": "http://evil.test", **preflight}
    )
    assert "access-control-allow-origin" not in denied.headers


async def test_garbage_and_unknown_keys_are_400(codec_api: httpx.AsyncClient) -> None:
    assert (await codec_api.post("/codec/decode", content=b"nope")).status_code == 400
    foreign = {
        "metadata": {"encoding": b64("binary/encrypted"), "encryption-key-id": b64("other-key")},
        "data": b64("x" * 40),
    }
    response = await codec_api.post("/codec/decode", json={"payloads": [foreign]})
    assert response.status_code == 400 and "other-key" in response.json()["message"]


async def test_a_key_is_required_by_default(tmp_path: Path) -> None:
    async for client in client_for(tmp_path):
        body = {"payloads": [json_payload(1)]}
        for operation in ("encode", "decode"):
            response = await client.post(
                f"/codec/{operation}", json=body, headers={"Authorization": ""}
            )
            assert response.status_code == 401, operation
        # A plain HUB_API_KEY key encodes, but does not decode.
        plain = {"Authorization": f"Bearer {KEY}"}
        assert (await client.post("/codec/encode", json=body, headers=plain)).status_code == 200
        assert (await client.post("/codec/decode", json=body, headers=plain)).status_code == 403
