"""Standard Webhooks signatures (standardwebhooks.com) of the notifications sent to partners.

Each notification carries ``webhook-id`` (unique per message), ``webhook-timestamp`` (Unix
seconds) and ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256, under the partner's
signing secret, of ``<id>.<timestamp>.<body>``. A secret is ``whsec_`` and base64 of 32 random
bytes, and the HMAC key is those bytes. A receiver recomputes the signature, compares it in
constant time, and refuses a timestamp far from its clock (replays).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
#: How far a receiver lets a timestamp be from its own clock.
TOLERANCE_SECONDS = 5 * 60


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value for one message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def verify(
    secret: str, message_id: str, timestamp: str, signature: str, body: bytes, *, now: float
) -> bool:
    """Whether one of the signatures (space-separated) is the message's, and it is recent."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > TOLERANCE_SECONDS:
        return False
    expected = sign(secret, message_id, sent, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signature.split())
