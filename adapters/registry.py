"""The company registry (REST): a registration number's company as registered."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from adapters.rest import RestClient


@dataclass(frozen=True)
class RegisteredCompany:
    registration_number: str
    name: str
    legal_form: str
    #: active, inactive, dissolved, inLiquidation.
    status: str
    country: str


class CompanyRegistryClient(RestClient):
    system = "registry"

    async def company(self, registration_number: str) -> RegisteredCompany | None:
        """The company registered under the number; None when the registry knows none."""
        response = await self.request(
            "GET",
            f"/companies/{quote(registration_number, safe='')}",
            ok_statuses=frozenset({404}),
        )
        if response.status_code == 404:
            return None
        body = self.body(response)
        return RegisteredCompany(
            registration_number=str(body["registrationNumber"]),
            name=str(body["name"]),
            legal_form=str(body.get("legalForm") or ""),
            status=str(body.get("status") or "unknown"),
            country=str(body.get("country") or ""),
        )
