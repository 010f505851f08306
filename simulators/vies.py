"""VAT number check simulator (SOAP 1.1 document/literal, default port 8106), contract first.

Modelled on the European Commission's VIES ``checkVat``; the contract is ``contracts/vies.wsdl``,
read with zeep as the billing simulator reads its own (:class:`simulators.billing.SoapContract`).
A number the simulator knows answers ``valid`` with its name and address as registered; any
other well-formed number answers ``valid=false`` (VIES does not say why). Numbers are added
with ``PUT /_sim/numbers/{countryCode}{vatNumber}`` (name, address, valid); one demo company is
there from the start. An outage of a member state's system is a fault rule with
``kind=permanent`` and the message ``MS_UNAVAILABLE`` (VIES answers it as a SOAP fault).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from simulators.base import BusinessError, Reply, Simulator, create_sim_app
from simulators.billing import XML_MEDIA_TYPE, SoapContract

WSDL_PATH = Path(__file__).resolve().parents[1] / "contracts" / "vies.wsdl"
TNS = "urn:telecom-hub:vies:v1"
COUNTRY = re.compile(r"[A-Z]{2}")
NUMBER = re.compile(r"[0-9A-Za-z+*.]{2,12}")
#: The company ``make run``'s README onboards (the registry simulator knows it too).
DEMO_NUMBERS = {
    "ATU12345678": {
        "name": "Alpine Wholesale Telecom GmbH",
        "address": "Opernring 1\n1010 Wien",
        "valid": True,
    }
}


class NumberIn(BaseModel):
    """Body of ``PUT /_sim/numbers/{vatId}``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    address: str = Field(default="", max_length=500)
    valid: bool = True


@functools.cache
def default_contract() -> SoapContract:
    return SoapContract(
        WSDL_PATH, binding=f"{{{TNS}}}checkVatBinding", fault_element=f"{{{TNS}}}ViesFault"
    )


class ViesSimulator(Simulator):
    name = "vies"

    def __init__(self, state_file: Path | None = None) -> None:
        self.contract = default_contract()
        super().__init__(state_file)

    def clear_records(self) -> None:
        self.numbers: dict[str, dict[str, Any]] = {k: dict(v) for k, v in DEMO_NUMBERS.items()}
        self.checks: list[dict[str, Any]] = []

    def dump_records(self) -> dict[str, Any]:
        return {"numbers": self.numbers, "checks": self.checks}

    def load_records(self, data: dict[str, Any]) -> None:
        self.numbers = dict(data["numbers"])
        self.checks = list(data.get("checks", []))

    def error_reply(self, error: BusinessError) -> Reply:
        faultcode: Literal["Client", "Server"] = "Client" if error.code else "Server"
        code = error.code or "SERVICE_UNAVAILABLE"
        # VIES says what went wrong in the faultstring: the code itself.
        return Reply(500, self.contract.render_fault(faultcode, code, code), XML_MEDIA_TYPE)

    def fault_reply(
        self, kind: Literal["transient", "permanent"], status: int | None, message: str | None
    ) -> Reply:
        if kind == "transient":
            return Reply(status or 503, "", None, {"Retry-After": "0"})
        code = message or "MS_UNAVAILABLE"
        return Reply(
            status or 500, self.contract.render_fault("Server", code, code), XML_MEDIA_TYPE
        )

    def check_vat(self, values: dict[str, Any]) -> Reply:
        country, number = values["countryCode"], values["vatNumber"]
        # The contract's pattern facets, which zeep does not enforce when it parses.
        if not COUNTRY.fullmatch(country) or not NUMBER.fullmatch(number):
            raise BusinessError(500, "INVALID_INPUT", code="INVALID_INPUT")
        known = self.numbers.get(f"{country}{number}")
        self.checks.append({"countryCode": country, "vatNumber": number})
        result = {
            "countryCode": country,
            "vatNumber": number,
            "requestDate": datetime.now(UTC).date(),
            "valid": bool(known and known["valid"]),
            # VIES answers "---" for what it does not disclose.
            "name": known["name"] if known and known["valid"] else "---",
            "address": known["address"] if known and known["valid"] else "---",
        }
        return Reply(200, self.contract.render("checkVat", result), XML_MEDIA_TYPE)


def create_app(state_file: Path | None = None) -> FastAPI:
    """The VAT check simulator app; ``state_file`` persists the numbers across restarts."""
    sim = ViesSimulator(state_file)
    app = create_sim_app(sim, title="VAT number check simulator (VIES-like, SOAP 1.1)")

    @app.put("/_sim/numbers/{vat_id}", tags=["simulator control"])
    async def put_number(vat_id: str, body: NumberIn) -> dict[str, Any]:
        async with sim.lock:
            sim.numbers[vat_id.upper()] = body.model_dump()
            await sim.persist()
        return {"vatId": vat_id.upper(), **body.model_dump()}

    @app.get("/vies", tags=["vies"], response_class=Response)
    async def wsdl(request: Request) -> Response:
        if not any(name.lower() == "wsdl" for name in request.query_params):
            return Response("append ?wsdl for the contract\n", 400, media_type="text/plain")
        return Response(sim.contract.wsdl_for(f"{request.base_url}vies"), media_type=XML_MEDIA_TYPE)

    @app.post("/vies", tags=["vies"], response_class=Response)
    async def soap(request: Request) -> Response:
        raw = await request.body()
        try:
            operation, values = sim.contract.parse(raw, request.headers.get("SOAPAction"))
        except BusinessError as error:
            invalid = BusinessError(500, error.message, code="INVALID_INPUT")

            def refuse(_: bytes, error: BusinessError = invalid) -> Reply:
                raise error

            return await sim.call(request, "", refuse, mutating=False)
        return await sim.call(request, operation, lambda _: sim.check_vat(values))

    return app
