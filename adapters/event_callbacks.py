"""Subscribers' callbacks (TMF630 ``/hub``): one event POSTed, signed (Standard Webhooks).

The same checks as partners' callbacks (:class:`adapters.callbacks.CallbackClient`): every
address the host resolves to is checked against the callback policy before the request,
redirects are never followed. Unlike a partner's connectivity test, the relay needs the answer
itself (a 410 ends the subscription, ``Retry-After`` sets the next attempt), so
:meth:`EventCallbackClient.post` answers an :class:`Answer` instead of raising.

Signatures: ``webhook-signature`` holds one ``v1,<base64 HMAC-SHA256>`` per secret the
subscription has (during a rotation, the new and the old), space-separated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit, urlunsplit

import httpx

from adapters.callbacks import CallbackClient
from hub.errors import CallbackRefused, TransientError
from hub.partners import webhooks


@dataclass
class Answer:
    #: The HTTP status; None: no answer (refused address, timeout, connection failure).
    status: int | None
    #: Seconds the subscriber asked to wait (``Retry-After`` on 429 / 503).
    retry_after: float | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def signed_headers(
    secrets: list[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Standard Webhooks headers, with one signature per secret."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            webhooks.sign(secret, message_id, timestamp, body) for secret in secrets
        ),
    }


def retry_after_seconds(value: str | None, *, now: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now)


class EventCallbackClient(CallbackClient):
    async def post(
        self, url: str, body: bytes, *, secrets: list[str], message_id: str, timeout: float
    ) -> Answer:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            address = await self._checked_address(host, port)
        except (CallbackRefused, TransientError) as exc:
            return Answer(None, error=str(exc))
        headers = {
            "Content-Type": "application/json",
            **signed_headers(secrets, message_id, int(time.time()), body),
        }
        target = url
        if parts.scheme == "http":
            # Connect to the address checked; the Host header keeps the name.
            netloc = f"[{address}]" if ":" in address else address
            target = urlunsplit(parts._replace(netloc=f"{netloc}:{port}"))
            headers["Host"] = parts.netloc
        try:
            response = await self._http.post(
                target, content=body, headers=headers, timeout=httpx.Timeout(timeout)
            )
        except httpx.TimeoutException:
            return Answer(None, error=f"no answer from {host} within {timeout:g}s")
        except httpx.TransportError as exc:
            return Answer(None, error=f"{type(exc).__name__} calling {host}")
        retry_after = None
        if response.status_code in (429, 503):
            retry_after = retry_after_seconds(response.headers.get("retry-after"), now=time.time())
        error = None if response.is_success else f"{host} answered {response.status_code}"
        return Answer(response.status_code, retry_after=retry_after, error=error)
