"""The regulator's reporting portal (SOAP, contract in ``contracts/regulator.wsdl``).

A fault the portal answers with is its refusal of the report (the document does not validate,
the period has not ended, the version clashes): :class:`~hub.errors.ReportRejected`, permanent,
since only a new version can fix it. An unknown receipt is a ``NotFoundError``. An outage (no
SOAP answer, 5xx, a timeout) stays transient, as :class:`~adapters.soap.SoapClient` maps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from adapters.soap import SoapClient
from hub.errors import ReportRejected

NAMESPACE = "urn:telecom-hub:regulator:v1"
#: Fault codes that are the regulator refusing the report itself.
REJECTION_CODES = frozenset(
    {
        "SchemaInvalid",
        "PeriodNotEnded",
        "UnknownReportType",
        "DuplicateVersion",
        "UnknownSupersedes",
        "InjectedFault",
    }
)


@dataclass
class Receipt:
    receipt_id: str
    received_at: datetime


@dataclass
class Submission:
    receipt_id: str
    #: received, validated, accepted or rejected.
    status: str
    reasons: list[str] = field(default_factory=list)


class RegulatorClient(SoapClient):
    system = "regulator"
    binding = f"{{{NAMESPACE}}}RegulatorBinding"
    not_found_codes = frozenset({"UnknownReceipt"})
    rejection_codes = REJECTION_CODES
    rejection = ReportRejected

    async def submit_report(
        self,
        *,
        operator_id: str,
        report_type: str,
        period: str,
        version: int,
        document: bytes,
        supersedes: str | None,
        idempotency_key: str,
    ) -> Receipt:
        reply = await self.call(
            "SubmitReport",
            operatorId=operator_id,
            reportType=report_type,
            period=period,
            version=version,
            document=document,
            supersedes=supersedes,
            idempotencyKey=idempotency_key,
        )
        received: datetime = reply["receivedAt"]
        received = received.replace(tzinfo=UTC) if received.tzinfo is None else received
        return Receipt(str(reply["receiptId"]), received.astimezone(UTC))

    async def get_submission(self, receipt_id: str) -> Submission:
        reply = await self.call("GetSubmission", receiptId=receipt_id)
        return Submission(
            str(reply["receiptId"]),
            str(reply["status"]),
            [str(reason) for reason in reply.get("reasons") or []],
        )
