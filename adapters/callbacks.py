"""Partners' callback endpoints: a notification POSTed, signed (Standard Webhooks).

Unlike the other REST systems, every partner has an address of its own, which the partner
chose: before each request the host's addresses are resolved and checked against the callback
policy (:func:`hub.partners.callbacks.refused_address`), so a name that resolves into the
hub's own network is refused, whatever the URL looked like at the door. Over plain http the
connection goes to the address that was checked; over https it goes by name (the certificate is
verified against it), so a resolver that answers differently a moment later is not excluded.

A 2xx is delivered; a timeout, a connection failure, a 5xx, 408 or 429 is transient; any other
answer, or an address the hub may not call, is :class:`~hub.errors.CallbackRefused` (parks).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from adapters.rest import error_for_response
from hub.errors import CallbackRefused, TransientError
from hub.partners import webhooks
from hub.partners.callbacks import CallbackPolicy, refused_address

SYSTEM = "partner"


class CallbackClient:
    """Sends notifications to partners' callbacks; ``transport`` for tests' mocks."""

    system = SYSTEM

    def __init__(
        self,
        policy: CallbackPolicy,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.policy = policy
        self._http = httpx.AsyncClient(
            headers={"User-Agent": "telecom-hub"}, transport=transport, follow_redirects=False
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _checked_address(self, host: str, port: int) -> str:
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            except OSError as exc:
                raise TransientError(f"cannot resolve {host}: {exc}", system=SYSTEM) from exc
            addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        for address in addresses:
            if problem := refused_address(address, self.policy):
                raise CallbackRefused(
                    f"{host} resolves to {address}, which {problem}", system=SYSTEM
                )
        return str(addresses[0])

    async def notify(
        self,
        url: str,
        payload: dict[str, Any],
        *,
        secret: str,
        message_id: str,
        timeout: float,
    ) -> int:
        """POST ``payload`` to ``url`` signed with ``secret``; answers the 2xx status."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await self._checked_address(host, port)
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            **webhooks.headers(secret, message_id, int(time.time()), body),
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
        except httpx.TimeoutException as exc:
            raise TransientError(
                f"no answer from {host} within {timeout:g}s", system=SYSTEM
            ) from exc
        except httpx.TransportError as exc:
            raise TransientError(f"{type(exc).__name__} calling {host}", system=SYSTEM) from exc
        if response.is_success:
            return response.status_code
        error = error_for_response(SYSTEM, response)
        if isinstance(error, TransientError):
            raise error
        raise CallbackRefused(str(error.message), system=SYSTEM, status=response.status_code)
