"""The VAT number check (SOAP, modelled on EU VIES ``checkVat``; ``contracts/vies.wsdl``).

VIES reports a member state's system being down as a fault (``MS_UNAVAILABLE``, ``TIMEOUT``,
too many requests): transient, worth another try. ``INVALID_INPUT`` is our request's fault:
permanent. A number that is not registered is no fault at all: ``valid`` is false.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from adapters.soap import SoapClient

NAMESPACE = "urn:telecom-hub:vies:v1"
#: What VIES answers for a name or address it does not disclose.
UNDISCLOSED = "---"


@dataclass(frozen=True)
class VatCheck:
    country_code: str
    vat_number: str
    valid: bool
    name: str | None
    address: str | None
    request_date: date


class ViesClient(SoapClient):
    system = "vies"
    binding = f"{{{NAMESPACE}}}checkVatBinding"
    transient_codes = frozenset(
        {
            "SERVICE_UNAVAILABLE",
            "MS_UNAVAILABLE",
            "TIMEOUT",
            "MS_MAX_CONCURRENT_REQ",
            "GLOBAL_MAX_CONCURRENT_REQ",
        }
    )

    async def check_vat(self, country_code: str, vat_number: str) -> VatCheck:
        reply = await self.call("checkVat", countryCode=country_code, vatNumber=vat_number)

        def disclosed(value: object) -> str | None:
            text = str(value).strip() if value is not None else ""
            return text if text and text != UNDISCLOSED else None

        return VatCheck(
            country_code=str(reply["countryCode"]),
            vat_number=str(reply["vatNumber"]),
            valid=bool(reply["valid"]),
            name=disclosed(reply.get("name")),
            address=disclosed(reply.get("address")),
            request_date=reply["requestDate"],
        )
