"""Rows for the export tests, written straight into the hub database, and readers of what an
export published (manifests, part files)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from hub.db import session_scope
from hub.models import (
    DeadLetter,
    OrderStateChange,
    ReconciliationCategory,
    ReconciliationRun,
    RegulatoryReport,
    ServiceOrder,
    ServiceOrderItem,
)
from tests.factories import add_item, item, new_identity, order


async def add_order(
    sessions: Any,
    *,
    at: datetime,
    state: str = "completed",
    items: list[dict[str, Any]] | None = None,
    identity: dict[str, str] | None = None,
) -> ServiceOrder:
    """An order as the API and the workflow leave it: document redacted, items, state."""
    identity = identity or new_identity()
    items = items or [add_item(identity)]
    document = order(identity, *items)
    for entry in document["serviceOrderItem"]:
        for characteristic in entry["service"]["serviceCharacteristic"]:
            if characteristic["name"] in ("ki", "op", "opc"):
                characteristic["value"] = "***"
    order_id = uuid.uuid4().hex
    row = ServiceOrder(
        id=order_id,
        external_id=document.get("externalId"),
        state=state,
        customer_id=identity["customer"],
        workflow_id=f"service-order-{order_id}",
        order_date=at,
        completion_date=at if state in ("completed", "failed", "cancelled") else None,
        document=document,
        updated_at=at,
    )
    async with session_scope(sessions) as session:
        session.add(row)
        await session.flush()
        for entry in items:
            session.add(
                ServiceOrderItem(
                    order_id=order_id, item_id=entry["id"], action=entry["action"], state=state
                )
            )
    return row


def delete_item(identity: dict[str, str]) -> dict[str, Any]:
    return item(identity, "delete")


async def add_state_changes(sessions: Any, times: list[datetime]) -> list[int]:
    """One order, and one state change of it at each of ``times``; answers their ids."""
    owner = await add_order(sessions, at=min(times), state="inProgress")
    changes = [
        OrderStateChange(
            order_id=owner.id,
            from_state="acknowledged",
            to_state="inProgress",
            reason=f"r{i}",
            at=t,
        )
        for i, t in enumerate(times)
    ]
    async with session_scope(sessions) as session:
        session.add_all(changes)
    return [change.id for change in changes if change.id is not None]


async def add_dead_letter(sessions: Any, *, at: datetime, **fields: Any) -> DeadLetter:
    values: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "workflow_id": "service-order-x",
        "run_id": "run-1",
        "process": "service-activation",
        "step": "1/billing.create_subscription",
        "system": "billing",
        "activity": "billing.create_subscription",
        "input": {"imsi": "001010000000001"},
        "error_type": "TransientError",
        "last_error": "billing: HTTP 503",
        "attempts": 5,
        "first_failure_at": at,
        "last_failure_at": at,
        "parked_at": at,
        "deadline": at,
    }
    letter = DeadLetter(**{**values, **fields})
    async with session_scope(sessions) as session:
        session.add(letter)
    return letter


async def add_regulatory_report(
    sessions: Any, *, at: datetime, version: int = 1, **fields: Any
) -> RegulatoryReport:
    """A version of ``kev-mobile-quarterly`` for 2026-Q1, submitted (a receipt) unless told."""
    report_id = uuid.uuid4().hex[:12]
    values: dict[str, Any] = {
        "id": report_id,
        "report_type": "kev-mobile-quarterly",
        "operator_id": "AT-OP-1",
        "period": "2026-Q1",
        "version": version,
        "status": "accepted",
        "workflow_id": f"regulatory-report-{report_id}",
        "prepared_by": "api-key:preparer",
        "approved_by": "api-key:approver",
        "receipt_id": f"RCPT-{report_id}",
        "received_at": at,
        "verdict": "accepted",
        "document_uri": f"file:///archive/{report_id}.xml",
        "document_sha256": hashlib.sha256(report_id.encode()).hexdigest(),
        "created_at": at,
        "updated_at": at,
    }
    report = RegulatoryReport(**{**values, **fields})
    async with session_scope(sessions) as session:
        session.add(report)
    return report


async def add_reconciliation(
    sessions: Any,
    *,
    period_start: datetime,
    period_end: datetime,
    finished_at: datetime,
    discrepancy_uri: str | None,
    categories: dict[str, tuple[int, Decimal]],
    status: str = "completed",
) -> ReconciliationRun:
    run = ReconciliationRun(
        id=uuid.uuid4().hex,
        workflow_id="reconciliation-x",
        period_start=period_start,
        period_end=period_end,
        status=status,
        started_at=finished_at,
        finished_at=finished_at,
        network_records=100,
        billing_records=98,
        matched_records=95,
        discrepancy_count=sum(count for count, _ in categories.values()),
        billed_revenue=Decimal("1000.5000"),
        leakage_amount=Decimal("12.3400"),
        leakage_pct=1.233,
        discrepancy_uri=discrepancy_uri,
    )
    async with session_scope(sessions) as session:
        session.add(run)
        await session.flush()
        for category, (count, impact) in categories.items():
            session.add(
                ReconciliationCategory(
                    run_id=run.id, category=category, count=count, revenue_impact=impact
                )
            )
    return run


def manifest_at(uri: str) -> dict[str, Any]:
    assert uri.startswith("file://"), uri
    return json.loads(Path(uri.removeprefix("file://")).read_text(encoding="utf-8"))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(root: Path) -> list[str]:
    """Every file below ``root``, relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
