"""REST base client on httpx: timeouts, auth, idempotency keys, and error translation.

Every httpx exception and every unsuccessful HTTP status becomes one of the hub's errors
(:mod:`hub.errors`) here, so nothing above the adapters sees httpx.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from hub.errors import (
    AuthenticationError,
    ConflictError,
    HubError,
    NotFoundError,
    PermanentError,
    TransientError,
)

logger = logging.getLogger(__name__)

#: Statuses worth retrying although they are 4xx: request timeout and rate limiting.
_TRANSIENT_4XX = frozenset({408, 425, 429})


def _open_new(path: Path) -> BinaryIO:
    """``path`` opened for writing from scratch, never through a symlink at ``path``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PermanentError(
                f"{path} is a symbolic link: not followed", system="files"
            ) from exc
        raise
    return os.fdopen(fd, "wb")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_detail(response: httpx.Response) -> str:
    """The most useful short text of an error reply, whatever its shape."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, Mapping):
        for key in ("error", "message", "detail", "reason"):
            if body.get(key):
                return str(body[key])[:200]
    return str(body)[:200]


def error_for_response(system: str, response: httpx.Response) -> HubError:
    """Map an unsuccessful HTTP reply onto the hub's taxonomy."""
    status = response.status_code
    text = f"HTTP {status} on {response.request.method} {response.request.url.path}: "
    text += _error_detail(response)
    if status >= 500 or status in _TRANSIENT_4XX:
        return TransientError(
            text,
            system=system,
            status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status in (401, 403):
        return AuthenticationError(text, system=system, status=status)
    if status == 404:
        return NotFoundError(text, system=system, status=status)
    if status == 409:
        return ConflictError(text, system=system, status=status)
    return PermanentError(text, system=system, status=status)


class RestClient:
    """An outside REST system: one base URL, one credential, one httpx connection pool.

    ``transport`` lets unit tests inject ``httpx.MockTransport``; everything else talks to a
    real server.
    """

    system = "rest"

    def __init__(
        self,
        base_url: str,
        *,
        token: str = "",
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "telecom-hub"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        idempotency_key: str | None = None,
        ok_statuses: frozenset[int] = frozenset(),
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; return the reply if 2xx (or listed in ``ok_statuses``).

        Raises :class:`TransientError` for network failures, 5xx, 408 and 429, and a
        :class:`PermanentError` subclass for the other 4xx.
        """
        sent = dict(headers or {})
        if idempotency_key:
            sent["Idempotency-Key"] = idempotency_key
        try:
            response = await self._http.request(method, path, json=json, headers=sent or None)
        except httpx.TimeoutException as exc:
            raise TransientError(f"timeout on {method} {path}", system=self.system) from exc
        except httpx.TransportError as exc:
            # Connection refused/reset, DNS, protocol errors: the system may be back soon.
            raise TransientError(
                f"{type(exc).__name__} on {method} {path}", system=self.system
            ) from exc
        if response.is_success or response.status_code in ok_statuses:
            return response
        error = error_for_response(self.system, response)
        logger.info(
            "outside call failed",
            extra={"system": self.system, "status": response.status_code, "path": path},
        )
        raise error

    async def download(
        self,
        path: str,
        destination: Path,
        *,
        sha256: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Stream ``GET path`` into ``destination`` (atomically); answer the bytes written.

        With ``sha256`` the content must match it, else a :class:`TransientError` (a download
        cut short by a proxy is worth another try). ``progress`` gets the byte count so far.
        The partial file is opened without following a symlink planted in its place, and the
        rename replaces a link at ``destination`` rather than writing through it.
        """
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        digest = hashlib.sha256()
        written = 0
        try:
            async with self._http.stream("GET", path) as response:
                if not response.is_success:
                    await response.aread()
                    raise error_for_response(self.system, response)
                with _open_new(partial) as out:
                    async for chunk in response.aiter_bytes(1 << 20):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        if progress is not None:
                            progress(written)
        except httpx.TimeoutException as exc:
            raise TransientError(f"timeout on GET {path}", system=self.system) from exc
        except httpx.TransportError as exc:
            raise TransientError(f"{type(exc).__name__} on GET {path}", system=self.system) from exc
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            partial.unlink(missing_ok=True)
            raise TransientError(
                f"GET {path}: content does not match its sha256", system=self.system
            )
        partial.replace(destination)
        return written

    @staticmethod
    def body(response: httpx.Response) -> dict[str, Any]:
        """The JSON object of a reply; a reply that is not one is a permanent error."""
        try:
            data = response.json()
        except ValueError as exc:
            raise PermanentError(
                f"reply to {response.request.url.path} is not JSON", status=response.status_code
            ) from exc
        if not isinstance(data, dict):
            raise PermanentError(
                f"reply to {response.request.url.path} is not a JSON object",
                status=response.status_code,
            )
        return data
