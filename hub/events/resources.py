"""Events of partners (TMF669 ``partyRole``) and of regulatory reports (the hub's own domain).

The party role is the one ``GET /tmf-api/partyRoleManagement/v4/partyRole/{id}`` answers
(built here, the route uses it too). A regulatory report's event carries the report's
identity and status (``regulatoryReport``: ``id``, ``href``, ``reportType``, ``operatorId``,
``period``, ``version``, ``status``, ``verdict``, ``receiptId``, ``dueDate``); no TMF API
defines it: it is the hub's own ``regulatoryReporting`` domain, published to brokers and to
``/regulatoryReports/hub`` subscribers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from hub.events.envelopes import Event, EventType
from hub.events.models import OutboxEvent
from hub.events.outbox import add_event
from hub.models import PartnerApplication, RegulatoryReport

PARTY = "/tmf-api/partyManagement/v4"
PARTY_ROLE = "/tmf-api/partyRoleManagement/v4"
ROLE_NAME = "wholesalePartner"


def _utc(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def party_role_json(row: PartnerApplication, base: str) -> dict[str, Any]:
    """TMF669 PartyRole of a partner; ``base``: the API's URL."""
    valid_for: dict[str, Any] = {"startDateTime": _utc(row.created_at)}
    if row.party_role_status in ("terminated", "rejected", "failed"):
        valid_for["endDateTime"] = _utc(row.updated_at)
    return {
        "id": row.party_role_id,
        "href": f"{base}{PARTY_ROLE}/partyRole/{row.party_role_id}",
        "name": ROLE_NAME,
        "status": row.party_role_status,
        "statusReason": "; ".join(row.reasons) or None,
        "engagedParty": {
            "id": row.organization_id,
            "href": f"{base}{PARTY}/organization/{row.organization_id}",
            "name": row.name,
            "@referredType": "Organization",
        },
        "characteristic": [
            {"name": "scopes", "value": list(row.requested_scopes), "valueType": "array"},
            *(
                [{"name": "clientId", "value": row.client_id, "valueType": "string"}]
                if row.client_id
                else []
            ),
        ],
        "validFor": valid_for,
        "@type": "PartyRole",
    }


async def add_party_role_event(
    session: AsyncSession, row: PartnerApplication, *, changed: bool, public_url: str
) -> bool:
    """A PartyRoleCreateEvent if the party role has no event yet, else a
    PartyRoleStateChangeEvent if its status ``changed``; whether one was added."""
    known = (
        await session.exec(
            select(OutboxEvent.seq).where(
                OutboxEvent.resource_type == "partyRole",
                OutboxEvent.resource_id == row.party_role_id,
            )
        )
    ).first()
    if known is not None and not changed:
        return False
    await add_event(
        session,
        Event(
            event_type=EventType.PARTY_ROLE_CREATE
            if known is None
            else EventType.PARTY_ROLE_STATE_CHANGE,
            resource_id=row.party_role_id,
            resource=party_role_json(row, public_url.rstrip("/")),
            description=f"partner {row.name}: party role {row.party_role_status}",
            # The partner's own token (its partner_id is the organization) hears of it too.
            partner_id=row.organization_id,
            correlation_id=row.id,
        ),
    )
    return True


def report_json(report: RegulatoryReport, base: str) -> dict[str, Any]:
    return {
        "id": report.id,
        "href": f"{base}/regulatoryReports/{report.id}",
        "reportType": report.report_type,
        "operatorId": report.operator_id,
        "period": report.period,
        "version": report.version,
        "status": report.status,
        "verdict": report.verdict,
        "receiptId": report.receipt_id,
        "dueDate": _utc(report.due_date) if report.due_date else None,
        "@type": "RegulatoryReport",
    }


async def add_report_event(
    session: AsyncSession, report: RegulatoryReport, *, public_url: str
) -> None:
    await add_event(
        session,
        Event(
            event_type=EventType.REGULATORY_REPORT_STATE_CHANGE,
            resource_id=report.id,
            resource=report_json(report, public_url.rstrip("/")),
            description=f"report {report.report_type} {report.period} v{report.version} is "
            f"{report.status}",
        ),
    )
