"""Company registry simulator (REST, default port 8107): a registration number's company.

``GET /companies/{registrationNumber}`` answers the company as registered: its name, legal
form, status (``active``, ``inactive``, ``dissolved``, ``inLiquidation``) and country; an
unknown number is a 404. Companies are added with ``PUT /_sim/companies/{registrationNumber}``;
the demo company of the VAT simulator is there from the start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from simulators.base import BusinessError, Reply, Simulator, create_sim_app

CompanyStatus = Literal["active", "inactive", "dissolved", "inLiquidation"]
DEMO_COMPANIES = {
    "FN 123456a": {
        "registrationNumber": "FN 123456a",
        "name": "Alpine Wholesale Telecom GmbH",
        "legalForm": "GmbH",
        "status": "active",
        "country": "AT",
    }
}


class CompanyIn(BaseModel):
    """Body of ``PUT /_sim/companies/{registrationNumber}``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    legalForm: str = Field(default="GmbH", max_length=40)
    status: CompanyStatus = "active"
    country: str = Field(default="AT", pattern=r"^[A-Z]{2}$")


class RegistrySimulator(Simulator):
    name = "registry"

    def clear_records(self) -> None:
        self.companies: dict[str, dict[str, Any]] = {k: dict(v) for k, v in DEMO_COMPANIES.items()}

    def dump_records(self) -> dict[str, Any]:
        return {"companies": list(self.companies.values())}

    def load_records(self, data: dict[str, Any]) -> None:
        self.companies = {c["registrationNumber"]: c for c in data["companies"]}

    def get_company(self, number: str) -> Reply:
        company = self.companies.get(number)
        if company is None:
            raise BusinessError(404, f"no company registered under {number!r}")
        return Reply.json(200, company)


def create_app(state_file: Path | None = None) -> FastAPI:
    """The company registry simulator app; ``state_file`` persists its companies."""
    sim = RegistrySimulator(state_file)
    app = create_sim_app(sim, title="Company registry simulator")

    @app.get("/companies/{number:path}", tags=["companies"])
    async def get_company(request: Request, number: str) -> Response:
        return await sim.call(
            request, "getCompany", lambda _: sim.get_company(number), mutating=False
        )

    @app.put("/_sim/companies/{number:path}", tags=["simulator control"])
    async def put_company(number: str, body: CompanyIn) -> dict[str, Any]:
        async with sim.lock:
            sim.companies[number] = {"registrationNumber": number, **body.model_dump()}
            await sim.persist()
        return sim.companies[number]

    return app
