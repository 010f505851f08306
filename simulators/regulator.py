"""Regulator portal simulator (SOAP 1.1 document/literal, default port 8105), contract first.

Modelled on a national regulator's statistics portal (RTR's KEV 2022 reporting), not on its
official interface. The contract is ``contracts/regulator.wsdl``, read with zeep as the billing
simulator reads its own (:class:`simulators.billing.SoapContract`). What the portal does:

- ``SubmitReport`` validates the document against the report type's XSD
  (``contracts/<reportType>.xsd``, with lxml), refuses a quarter that has not ended in the
  regulator's time zone, keeps every version of a report, and honours the idempotency key: a
  retried submission answers the first receipt and is stored once;
- ``GetSubmission`` answers ``received`` until the verdict delay has passed, then the verdict
  policy's answer: ``accepted``, ``rejected`` (with reasons), or ``validated`` (held until a
  person at the regulator decides, ``POST /_sim/submissions/{receiptId}/verdict``).

The verdict policy is ``PUT /_sim/verdicts`` (delay, verdict, reasons); latency and fault
injection are those of every simulator (``/_sim/config``, ``/_sim/faults``).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request, Response
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from simulators.base import BusinessError, Reply, Simulator, create_sim_app, new_id
from simulators.billing import XML_MEDIA_TYPE, SoapContract

CONTRACTS_DIR = Path(__file__).resolve().parents[1] / "contracts"
WSDL_PATH = CONTRACTS_DIR / "regulator.wsdl"
TNS = "urn:telecom-hub:regulator:v1"
#: Quarters end at midnight in the regulator's time zone (Austria's, as RTR's would).
TIME_ZONE = ZoneInfo("Europe/Vienna")
PERIOD = re.compile(r"(?P<year>[0-9]{4})-Q(?P<quarter>[1-4])")
REPORT_TYPE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def fault(code: str, message: str) -> BusinessError:
    """A soap:Client fault with a ``RegulatorFault`` detail."""
    return BusinessError(500, message, code=code)


def quarter_end(period: str, tz: ZoneInfo = TIME_ZONE) -> datetime:
    """The first moment after the quarter ``2026-Q3`` (local midnight), in UTC."""
    match = PERIOD.fullmatch(period)
    if match is None:
        raise fault("MalformedRequest", f"period {period!r} is not a quarter like 2026-Q3")
    year, quarter = int(match["year"]), int(match["quarter"])
    month = quarter * 3 + 1
    if month > 12:
        year, month = year + 1, 1
    return datetime(year, month, 1, tzinfo=tz).astimezone(UTC)


class VerdictPolicy(BaseModel):
    """Body of ``PUT /_sim/verdicts``: what the portal answers, and after how long."""

    model_config = ConfigDict(extra="forbid")

    delay_seconds: float = Field(default=1.0, ge=0, le=86_400)
    #: ``hold``: stay ``validated`` until ``POST /_sim/submissions/{id}/verdict``.
    verdict: Literal["accept", "reject", "hold"] = "accept"
    reasons: list[str] = Field(default_factory=list)


class VerdictIn(BaseModel):
    """Body of ``POST /_sim/submissions/{receiptId}/verdict``."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["accept", "reject"]
    reasons: list[str] = Field(default_factory=list)


@functools.cache
def default_contract() -> SoapContract:
    return SoapContract(
        WSDL_PATH, binding=f"{{{TNS}}}RegulatorBinding", fault_element=f"{{{TNS}}}RegulatorFault"
    )


class RegulatorSimulator(Simulator):
    name = "regulator"

    def __init__(
        self,
        state_file: Path | None = None,
        contract: SoapContract | None = None,
        schemas_dir: Path = CONTRACTS_DIR,
    ) -> None:
        self.contract = contract or default_contract()
        self.schemas_dir = schemas_dir
        self._schemas: dict[str, etree.XMLSchema] = {}
        super().__init__(state_file)
        self.handlers = {"SubmitReport": self.submit_report, "GetSubmission": self.get_submission}

    # -- state --------------------------------------------------------------------------------

    def clear_records(self) -> None:
        #: By receipt id, in the order received; every version of every report.
        self.submissions: dict[str, dict[str, Any]] = {}
        self.policy = VerdictPolicy()

    def dump_records(self) -> dict[str, Any]:
        return {
            "submissions": list(self.submissions.values()),
            "policy": self.policy.model_dump(),
        }

    def load_records(self, data: dict[str, Any]) -> None:
        self.submissions = {item["receiptId"]: item for item in data["submissions"]}
        self.policy = VerdictPolicy(**data.get("policy", {}))

    # -- protocol -----------------------------------------------------------------------------

    def error_reply(self, error: BusinessError) -> Reply:
        faultcode: Literal["Client", "Server"] = "Server" if error.code is None else "Client"
        envelope = self.contract.render_fault(
            faultcode, error.code or "InternalError", error.message
        )
        return Reply(500, envelope, XML_MEDIA_TYPE)

    def fault_reply(
        self, kind: Literal["transient", "permanent"], status: int | None, message: str | None
    ) -> Reply:
        if kind == "transient":
            return Reply(status or 503, "", None, {"Retry-After": "0"})
        text = message or "injected permanent fault"
        return Reply(
            status or 500,
            self.contract.render_fault("Client", "InjectedFault", text),
            XML_MEDIA_TYPE,
        )

    def dispatch(self, operation: str, values: dict[str, Any]) -> Reply:
        result = self.handlers[operation](values)
        return Reply(200, self.contract.render(operation, result), XML_MEDIA_TYPE)

    # -- the report types' schemas ------------------------------------------------------------

    def schema(self, report_type: str) -> etree.XMLSchema:
        if not REPORT_TYPE.fullmatch(report_type):
            raise fault("UnknownReportType", f"no report type {report_type!r}")
        if report_type not in self._schemas:
            path = self.schemas_dir / f"{report_type}.xsd"
            if not path.is_file():
                raise fault("UnknownReportType", f"no report type {report_type!r}")
            self._schemas[report_type] = etree.XMLSchema(etree.parse(str(path)))
        return self._schemas[report_type]

    def check_document(self, report_type: str, document: bytes) -> None:
        schema = self.schema(report_type)
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True
        )
        try:
            tree = etree.fromstring(document, parser=parser)
        except etree.XMLSyntaxError as exc:
            raise fault("SchemaInvalid", f"the document is not XML: {exc}") from exc
        if not schema.validate(tree):
            errors = "; ".join(
                f"line {error.line}: {error.message}" for error in list(schema.error_log)[:5]
            )
            raise fault("SchemaInvalid", f"the document does not validate: {errors}")

    # -- operations ---------------------------------------------------------------------------

    def submit_report(self, values: dict[str, Any]) -> dict[str, Any]:
        operator, report_type = values["operatorId"], values["reportType"]
        period, version = values["period"], int(values["version"])
        now = datetime.now(UTC)
        if now < quarter_end(period):
            raise fault("PeriodNotEnded", f"the period {period} has not ended yet")
        document = values["document"]
        if isinstance(document, str):  # zeep hands base64Binary over decoded; be lenient
            try:
                document = base64.b64decode(document, validate=True)
            except binascii.Error as exc:
                raise fault("MalformedRequest", "document is not base64") from exc
        self.check_document(report_type, document)
        same_report = [
            s
            for s in self.submissions.values()
            if (s["operatorId"], s["reportType"], s["period"]) == (operator, report_type, period)
        ]
        if any(s["version"] == version for s in same_report):
            raise fault(
                "DuplicateVersion",
                f"version {version} of {report_type} {period} was submitted already",
            )
        supersedes = values.get("supersedes") or None
        if supersedes is not None and supersedes not in {s["receiptId"] for s in same_report}:
            raise fault(
                "UnknownSupersedes",
                f"{supersedes!r} is no receipt of {report_type} {period} for {operator}",
            )
        submission = {
            "receiptId": new_id("rcpt"),
            "operatorId": operator,
            "reportType": report_type,
            "period": period,
            "version": version,
            "supersedes": supersedes,
            "supersededBy": None,
            "idempotencyKey": values["idempotencyKey"],
            "sha256": hashlib.sha256(document).hexdigest(),
            "size": len(document),
            "document": base64.b64encode(document).decode(),
            "receivedAt": now.isoformat(),
            "status": "received",
            "reasons": [],
        }
        self.submissions[submission["receiptId"]] = submission
        return {"receiptId": submission["receiptId"], "receivedAt": now}

    def get_submission(self, values: dict[str, Any]) -> dict[str, Any]:
        submission = self._submission(values["receiptId"])
        if submission["status"] == "received":
            received = datetime.fromisoformat(submission["receivedAt"])
            if datetime.now(UTC) - received >= timedelta(seconds=self.policy.delay_seconds):
                if self.policy.verdict == "hold":
                    submission["status"] = "validated"
                else:
                    self.decide(submission, self.policy.verdict, self.policy.reasons)
        return {
            "receiptId": submission["receiptId"],
            "status": submission["status"],
            "reasons": list(submission["reasons"]),
        }

    def _submission(self, receipt_id: str) -> dict[str, Any]:
        submission = self.submissions.get(receipt_id)
        if submission is None:
            raise fault("UnknownReceipt", f"no submission with receipt {receipt_id!r}")
        return submission

    def decide(
        self, submission: dict[str, Any], verdict: Literal["accept", "reject"], reasons: list[str]
    ) -> None:
        if submission["status"] in ("accepted", "rejected"):
            return
        if verdict == "accept":
            submission["status"], submission["reasons"] = "accepted", []
            if submission["supersedes"]:
                self.submissions[submission["supersedes"]]["supersededBy"] = submission["receiptId"]
        else:
            submission["status"] = "rejected"
            submission["reasons"] = reasons or ["rejected by the regulator"]


def create_app(state_file: Path | None = None, schemas_dir: Path = CONTRACTS_DIR) -> FastAPI:
    """The regulator portal app; ``state_file`` persists submissions across restarts."""
    sim = RegulatorSimulator(state_file, schemas_dir=schemas_dir)
    app = create_sim_app(sim, title="Regulator portal simulator (SOAP 1.1)")

    @app.get("/_sim/verdicts", tags=["simulator control"])
    async def get_verdicts() -> VerdictPolicy:
        return sim.policy

    @app.put("/_sim/verdicts", tags=["simulator control"])
    async def put_verdicts(policy: VerdictPolicy) -> VerdictPolicy:
        async with sim.lock:
            sim.policy = policy
            await sim.persist()
        return sim.policy

    @app.post(
        "/_sim/submissions/{receipt_id}/verdict", tags=["simulator control"], response_model=None
    )
    async def decide(receipt_id: str, body: VerdictIn) -> Response:
        async with sim.lock:
            submission = sim.submissions.get(receipt_id)
            if submission is None:
                return Reply.json(404, {"error": f"no receipt {receipt_id!r}"}).to_response()
            sim.decide(submission, body.verdict, body.reasons)
            await sim.persist()
        summary = {k: v for k, v in submission.items() if k != "document"}
        return Reply.json(200, summary).to_response()

    @app.get("/regulator", tags=["regulator"], response_class=Response)
    async def wsdl(request: Request) -> Response:
        if not any(name.lower() == "wsdl" for name in request.query_params):
            return Response("append ?wsdl for the contract\n", 400, media_type="text/plain")
        return Response(
            sim.contract.wsdl_for(f"{request.base_url}regulator"), media_type=XML_MEDIA_TYPE
        )

    @app.post("/regulator", tags=["regulator"], response_class=Response)
    async def soap(request: Request) -> Response:
        raw = await request.body()
        try:
            operation, values = sim.contract.parse(raw, request.headers.get("SOAPAction"))
        except BusinessError as error:

            def refuse(_: bytes, error: BusinessError = error) -> Reply:
                raise error

            return await sim.call(request, "", refuse, mutating=False)
        # GetSubmission moves a submission to its verdict: it runs under the lock too.
        return await sim.call(
            request,
            operation,
            lambda _: sim.dispatch(operation, values),
            idempotency_key=values.get("idempotencyKey"),
        )

    return app
