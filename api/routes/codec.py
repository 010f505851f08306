"""The Temporal remote codec protocol: ``POST /codec/encode`` and ``POST /codec/decode``.

The Temporal Web UI and CLI (``--codec-endpoint``) send ``{"payloads": [...]}`` in protobuf
JSON and get the payloads back encoded or decoded with the hub's keys, so an authorised
operator reads decrypted inputs and results while Temporal itself stores only ciphertext.

Decoding shows workflow inputs in clear, so it needs the scope ``codec:decode``, which plain
``HUB_API_KEY`` keys do not hold, and every decode is an audit event (who, how many payloads,
which namespace; never what they hold). Encoding needs ``codec:encode``. Browsers may call it
from the UI's origins only (CORS). ``HUB_CODEC_ALLOW_ANONYMOUS`` (development only) lets
callers without a key in, as the dev server's UI sends none.

The work (JSON, protobuf, AES-GCM) runs on a worker thread: a large batch must not stall
every other request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from api.deps import (
    ApiKeyHeaderDep,
    BearerDep,
    Principal,
    SettingsDep,
    authenticate,
    offered_key,
    require_scope,
)
from api.errors import ApiError
from api.inbound import CheckedRoute, parse_json
from hub.codec import EncryptionCodec, PayloadEncryptionError
from hub.permissions import Scope

audit = logging.getLogger("hub.audit")

router = APIRouter(prefix="/codec", tags=["Temporal codec"], route_class=CheckedRoute)

#: Who calls without a key when ``HUB_CODEC_ALLOW_ANONYMOUS`` lets them.
ANONYMOUS = Principal(
    "anonymous",
    frozenset({Scope.CODEC_ENCODE, Scope.CODEC_DECODE}),
    authenticated_by="anonymous",
)


async def codec_caller(
    request: Request, settings: SettingsDep, api_key: ApiKeyHeaderDep, bearer: BearerDep
) -> Principal:
    """The authenticated caller; without a key, :data:`ANONYMOUS` where allowed. A key or
    token that is given must be valid, allowed or not."""
    offered = offered_key(api_key, bearer)
    if settings.codec_allow_anonymous and offered is None:
        return ANONYMOUS
    return await authenticate(request, settings, api_key, bearer)


Encoder = Annotated[Principal, Depends(require_scope(Scope.CODEC_ENCODE, caller=codec_caller))]
Decoder = Annotated[Principal, Depends(require_scope(Scope.CODEC_DECODE, caller=codec_caller))]


def _codec(request: Request) -> PayloadCodec | None:
    settings = request.app.state.settings
    if not settings.payload_keys:
        return None
    if getattr(request.app.state, "codec", None) is None:
        request.app.state.codec = EncryptionCodec.from_specs(settings.payload_keys)
    codec: PayloadCodec = request.app.state.codec
    return codec


def _payloads(raw: bytes, most: int) -> list[Payload]:
    body = parse_json(raw)
    if not isinstance(body, dict) or not isinstance(body.get("payloads", []), list):
        raise ApiError(400, "body: expected {'payloads': [...]} in protobuf JSON")
    count = len(body.get("payloads", []))
    if count > most:
        bound = f"at most {most} (the bound HUB_CODEC_MAX_PAYLOADS)"
        raise ApiError(413, f"payloads: {count} in one request, {bound}")
    try:
        return list(ParseDict(body, Payloads()).payloads)
    except ParseError as exc:
        message = f"body: expected {{'payloads': [...]}} in protobuf JSON ({exc})"
        raise ApiError(400, message) from None


def _convert(
    raw: bytes,
    most: int,
    convert: Callable[[Sequence[Payload]], Coroutine[Any, Any, list[Payload]]] | None,
) -> tuple[int, bytes]:
    """Parse, encode or decode, serialise: on a worker thread. Answers (payloads, JSON)."""
    payloads = _payloads(raw, most)
    if convert is not None:
        try:
            # PayloadCodec's interface is async, but the work is CPU only: run it to the end
            # on this thread's own loop rather than the server's.
            payloads = asyncio.run(convert(payloads))
        except PayloadEncryptionError as exc:  # unknown key id, tampered data; never the key
            raise ApiError(400, f"cannot decode: {exc}") from exc
    answer = MessageToDict(Payloads(payloads=payloads))
    return len(payloads), json.dumps(answer, separators=(",", ":")).encode()


async def _run(request: Request, operation: str) -> tuple[int, Response]:
    settings = request.app.state.settings
    raw = await request.body()  # bounded by HUB_CODEC_MAX_BODY_BYTES (api.limits)
    codec = _codec(request)
    convert = getattr(codec, operation) if codec else None
    try:
        count, body = await asyncio.to_thread(_convert, raw, settings.codec_max_payloads, convert)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"body: not valid JSON ({exc.msg})") from None
    return count, Response(body, media_type="application/json")


@router.post("/encode", summary="Encode (encrypt) payloads")
async def encode(request: Request, _: Encoder) -> Response:
    _count, response = await _run(request, "encode")
    return response


@router.post("/decode", summary="Decode (decrypt) payloads")
async def decode(request: Request, decoder: Decoder) -> Response:
    count, response = await _run(request, "decode")
    namespace = request.headers.get("x-namespace")
    # %r: the namespace is the caller's text and must not forge log lines.
    audit.info(
        "codec decode by %s: %d payload(s), namespace %r",
        decoder.subject,
        count,
        namespace,
        extra={
            "audit": "codec.decode",
            "subject": decoder.subject,
            "payloads": count,
            "namespace": namespace,
        },
    )
    return response
