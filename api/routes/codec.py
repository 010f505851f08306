"""The Temporal remote codec protocol: ``POST /codec/encode`` and ``POST /codec/decode``.

The Temporal Web UI and CLI (``--codec-endpoint``) send ``{"payloads": [...]}`` in protobuf
JSON and get the payloads back encoded or decoded with the hub's keys, so an authorised
operator reads decrypted inputs and results while Temporal itself stores only ciphertext.
Browsers may call it from the UI's origin only (CORS); with ``HUB_CODEC_REQUIRES_KEY`` it
also needs an API key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from api.deps import SettingsDep, require_api_key
from api.errors import ApiError
from hub.codec import EncryptionCodec, PayloadEncryptionError


async def _key_if_required(request: Request, settings: SettingsDep) -> None:
    if settings.codec_requires_key:
        require_api_key(request, settings)


router = APIRouter(
    prefix="/codec", tags=["Temporal codec"], dependencies=[Depends(_key_if_required)]
)


def _codec(request: Request) -> PayloadCodec | None:
    settings = request.app.state.settings
    if not settings.payload_keys:
        return None
    if getattr(request.app.state, "codec", None) is None:
        request.app.state.codec = EncryptionCodec.from_specs(settings.payload_keys)
    codec: PayloadCodec = request.app.state.codec
    return codec


async def _payloads(request: Request) -> Payloads:
    try:
        body = await request.json()
        return ParseDict(body, Payloads())
    except (ValueError, ParseError) as exc:
        raise ApiError(
            400, f"body: expected {{'payloads': [...]}} in protobuf JSON ({exc})"
        ) from exc


def _answer(payloads: list[Any]) -> dict[str, Any]:
    return MessageToDict(Payloads(payloads=payloads))


@router.post("/encode", summary="Encode (encrypt) payloads")
async def encode(request: Request) -> dict[str, Any]:
    payloads = list((await _payloads(request)).payloads)
    codec = _codec(request)
    return _answer(await codec.encode(payloads) if codec else payloads)


@router.post("/decode", summary="Decode (decrypt) payloads")
async def decode(request: Request) -> dict[str, Any]:
    payloads = list((await _payloads(request)).payloads)
    codec = _codec(request)
    try:
        return _answer(await codec.decode(payloads) if codec else payloads)
    except PayloadEncryptionError as exc:  # unknown key id, tampered data; never the key
        raise ApiError(400, f"cannot decode: {exc}") from exc
