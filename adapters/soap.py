"""SOAP base client on zeep: the contract (WSDL) comes from the repo, the address from settings.

SOAP faults are permanent (the server understood and refused); transport failures, 5xx
without a fault, and timeouts are transient. Nothing above the adapters sees a zeep error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import zeep
import zeep.exceptions
import zeep.helpers
from lxml import etree
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from hub.errors import (
    AuthenticationError,
    BusinessRejection,
    ConflictError,
    NotFoundError,
    PermanentError,
    TransientError,
)

logger = logging.getLogger(__name__)


def fault_code(fault: zeep.exceptions.Fault) -> str:
    """The application's own fault code from ``<detail>``, else the SOAP fault code."""
    detail = fault.detail
    if detail is not None:
        codes = detail.xpath(".//*[local-name()='code']/text()")
        if codes:
            return str(codes[0]).strip()
    return str(fault.code or "Fault")


class SoapClient:
    """One SOAP port: the binding of a WSDL file, bound to an address.

    Subclasses name the binding and map fault codes that mean "not found", "conflict", the
    system's business refusal (raised as ``rejection``, a ``BusinessRejection`` subclass), or an
    outage the system reports as a fault (``transient_codes``: worth another try).
    """

    system = "soap"
    binding: str = ""
    not_found_codes: frozenset[str] = frozenset()
    conflict_codes: frozenset[str] = frozenset()
    rejection_codes: frozenset[str] = frozenset()
    transient_codes: frozenset[str] = frozenset()
    rejection: type[BusinessRejection] = BusinessRejection

    def __init__(
        self,
        wsdl: Path,
        address: str,
        *,
        username: str = "",
        password: str = "",
        timeout: float = 10.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        auth = httpx.BasicAuth(username, password) if username else None
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(timeout), auth=auth)
        # The WSDL is a local file (contract first): loading it does no network I/O.
        transport = AsyncTransport(client=self._http)
        self._client = zeep.AsyncClient(str(wsdl), transport=transport)
        # AsyncClient.create_service would return a sync proxy; build the async one directly.
        binding = self._client.wsdl.bindings[self.binding]
        self._service = AsyncServiceProxy(self._client, binding, address=address)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def call(self, operation: str, **arguments: Any) -> dict[str, Any]:
        """Call one operation; return its reply as plain dicts and lists."""
        try:
            reply = await getattr(self._service, operation)(**arguments)
        except zeep.exceptions.Fault as exc:
            code = fault_code(exc)
            text = f"{operation} fault {code}: {exc.message}"
            if code in self.transient_codes:
                raise TransientError(text, system=self.system) from exc
            if code in self.not_found_codes:
                raise NotFoundError(text, system=self.system) from exc
            if code in self.conflict_codes:
                raise ConflictError(text, system=self.system) from exc
            if code in self.rejection_codes:
                raise self.rejection(text, system=self.system) from exc
            raise PermanentError(text, system=self.system) from exc
        except zeep.exceptions.TransportError as exc:
            status = exc.status_code or None
            text = f"{operation}: HTTP {exc.status_code} without a SOAP reply"
            if status is None or status >= 500 or status in (408, 429):
                raise TransientError(text, system=self.system, status=status) from exc
            if status in (401, 403):
                raise AuthenticationError(text, system=self.system, status=status) from exc
            raise PermanentError(text, system=self.system, status=status) from exc
        except httpx.TimeoutException as exc:
            raise TransientError(f"{operation}: timeout", system=self.system) from exc
        except httpx.TransportError as exc:
            raise TransientError(f"{operation}: {type(exc).__name__}", system=self.system) from exc
        except zeep.exceptions.ValidationError as exc:
            # Our request does not fit the contract: retrying it cannot help.
            raise PermanentError(
                f"{operation}: invalid request: {exc}", system=self.system
            ) from exc
        except (zeep.exceptions.XMLSyntaxError, etree.XMLSyntaxError) as exc:
            raise TransientError(f"{operation}: reply is not XML", system=self.system) from exc
        result = zeep.helpers.serialize_object(reply, dict)
        return result if isinstance(result, dict) else {"value": result}
