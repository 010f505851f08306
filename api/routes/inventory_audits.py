"""Inventory audits: start one, read its totals per category, list its differences; the daily
schedule.

An audit's totals live in the hub database; its differences in one Parquet file, which the
listing reads with filters (never into memory whole). The categories are
:class:`hub.inventory.engine.Category`'s (README, "Inventory audit").
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import (
    Client,
    Schedule,
    ScheduleAlreadyRunningError,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import SessionDep, SettingsDep, TemporalDep, require_scope
from api.errors import ApiError, temporal_unreachable
from api.inbound import CheckedRoute
from api.listing import Offset, one_of, page, parquet_page
from api.routes.reconciliations import cron_of
from hub.inventory.engine import DIFFERENCE_SCHEMA, Category
from hub.models import InventoryAudit, InventoryAuditCategory, InventoryAuditStatus
from hub.permissions import Scope
from hub.settings import Settings
from workflows.inventory_audit import CONTRACT as AUDIT_PROCESS
from workflows.inventory_audit import InventoryAudit as InventoryAuditWorkflow
from workflows.inventory_audit import (
    InventoryAuditInput,
    InventoryAuditProgress,
)

router = APIRouter(prefix="/inventoryAudits", tags=["Inventory audit"], route_class=CheckedRoute)
READ = [Depends(require_scope(Scope.INVENTORY_READ))]
WRITE = [Depends(require_scope(Scope.INVENTORY_WRITE))]

SCHEDULE_ID = "inventory-audit-daily"
QUERY_TIMEOUT_SECONDS = 2.0
AUDIT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class AuditOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pageSize: int = Field(default=1000, ge=1, le=5000, description="subscribers per page read")
    heartbeatTimeoutSeconds: float = Field(default=120.0, gt=0, le=3600)

    def to_input(self, **extra: Any) -> InventoryAuditInput:
        return InventoryAuditInput(
            page_size=self.pageSize, heartbeat_timeout=self.heartbeatTimeoutSeconds, **extra
        )


class InventoryAuditCreate(AuditOptions):
    id: str | None = Field(
        default=None, description="your id for the audit: the same id again starts nothing"
    )
    keepWork: bool = False

    @field_validator("id")
    @classmethod
    def _audit_id(cls, value: str | None) -> str | None:
        if value is not None and not AUDIT_ID.fullmatch(value):
            raise ValueError(
                "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value


class ScheduleBody(AuditOptions):
    cron: str = Field(default="0 3 * * *", description="when to audit (UTC), as cron")
    paused: bool = False
    note: str | None = Field(default=None, max_length=500)


class CategoryPublic(BaseModel):
    category: str
    count: int
    revenueAtStake: float


class InventoryAuditPublic(BaseModel):
    id: str
    href: str
    workflowId: str
    status: str
    startedAt: str | None
    finishedAt: str | None
    currency: str
    records: dict[str, int] = Field(description="what each side holds (hub, billing: active)")
    differenceCount: int
    revenueAtStake: float = Field(description="per month, in currency")
    categories: list[CategoryPublic]
    differences: str | None = Field(description="the differences' listing, once completed")
    errorMessage: str | None
    progress: dict[str, Any] | None = None


class DifferencePublic(BaseModel):
    imsi: str
    msisdn: str | None
    customerId: str | None
    category: str
    system: str
    hubStatus: str | None
    plan: str | None
    expected: str | None
    observed: str | None
    revenueAtStake: float


class SchedulePublic(BaseModel):
    id: str
    cron: list[str]
    paused: bool
    note: str | None
    nextRuns: list[str | None]


# --- helpers ---------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _href(request: Request, settings: Settings, path: str) -> str:
    base = settings.public_url.rstrip("/") if settings.public_url else str(request.base_url)
    return f"{base.rstrip('/')}{path}"


def audit_public(
    request: Request,
    settings: Settings,
    audit: InventoryAudit,
    categories: list[InventoryAuditCategory],
) -> InventoryAuditPublic:
    path = f"/inventoryAudits/{audit.id}"
    return InventoryAuditPublic(
        id=audit.id,
        href=_href(request, settings, path),
        workflowId=audit.workflow_id,
        status=audit.status,
        startedAt=_iso(audit.started_at),
        finishedAt=_iso(audit.finished_at),
        currency=audit.currency,
        records={
            "hub": audit.hub_records,
            "hss": audit.hss_records,
            "billing": audit.billing_records,
            "crm": audit.crm_records,
        },
        differenceCount=audit.difference_count,
        revenueAtStake=float(audit.revenue_at_stake),
        categories=[
            CategoryPublic(
                category=row.category, count=row.count, revenueAtStake=float(row.revenue_at_stake)
            )
            for row in categories
        ],
        differences=(
            _href(request, settings, f"{path}/differences")
            if audit.status == InventoryAuditStatus.COMPLETED
            else None
        ),
        errorMessage=audit.error_message,
    )


async def _audit_or_404(session: AsyncSession, audit_id: str) -> InventoryAudit:
    audit = await session.get(InventoryAudit, audit_id)
    if audit is None:
        raise ApiError(404, f"no inventory audit with id {audit_id!r}")
    return audit


async def _categories(session: AsyncSession, audit_id: str) -> list[InventoryAuditCategory]:
    rows = await session.exec(
        select(InventoryAuditCategory)
        .where(InventoryAuditCategory.audit_id == audit_id)
        .order_by(col(InventoryAuditCategory.category))
    )
    return list(rows)


async def _start(
    temporal: Client, settings: Settings, audit_id: str, data: InventoryAuditInput
) -> None:
    """Start the audit's workflow; one that was started already is left as it is."""
    try:
        with suppress(WorkflowAlreadyStartedError):
            await AUDIT_PROCESS.start(temporal, data, audit_id, task_queue=settings.task_queue)
    except RPCError as exc:
        raise ApiError(503, f"Temporal refused to start the audit: {exc.status.name}") from exc


# --- audits ----------------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    summary="Audit the HSS, billing and CRM inventories against the hub's record",
    dependencies=WRITE,
    response_model=InventoryAuditPublic,
)
async def start_audit(
    body: InventoryAuditCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> InventoryAuditPublic:
    audit_id = body.id or f"inv-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"
    data = body.to_input(audit_id=audit_id, keep_work=body.keepWork)
    if body.id is not None and (existing := await session.get(InventoryAudit, body.id)):
        return await _again(existing, data, request, response, session, temporal, settings)
    audit = InventoryAudit(id=audit_id, workflow_id=AUDIT_PROCESS.workflow_id(audit_id))
    session.add(audit)
    try:
        # The row first: an audit the hub starts is always one it knows of.
        await session.commit()
    except IntegrityError:
        await session.rollback()
        existing = await session.get(InventoryAudit, audit_id)
        if existing is None:
            raise
        return await _again(existing, data, request, response, session, temporal, settings)
    try:
        await _start(temporal, settings, audit_id, data)
    except ApiError:
        await session.delete(audit)
        await session.commit()
        raise
    response.headers["Location"] = _href(request, settings, f"/inventoryAudits/{audit_id}")
    return audit_public(request, settings, audit, [])


async def _again(
    audit: InventoryAudit,
    data: InventoryAuditInput,
    request: Request,
    response: Response,
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
) -> InventoryAuditPublic:
    """The audit an id names, posted again: 200 with it (started now if the API died between
    recording and starting it)."""
    if audit.status == InventoryAuditStatus.RUNNING:
        await _start(temporal, settings, audit.id, data)
    response.status_code = 200
    return audit_public(request, settings, audit, await _categories(session, audit.id))


@router.get(
    "",
    summary="List inventory audits",
    dependencies=READ,
    response_model=list[InventoryAuditPublic],
)
async def list_audits(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    status: str | None = Query(default=None, description="running, completed, failed"),
    offset: Offset = 0,
    limit: int = Query(default=50, ge=1, le=500),
) -> list[InventoryAuditPublic]:
    one_of("status", status, InventoryAuditStatus)
    conditions = [] if status is None else [InventoryAudit.status == status]
    audits = await page(
        session,
        InventoryAudit,
        conditions,
        [col(InventoryAudit.started_at).desc(), col(InventoryAudit.id)],
        offset=offset,
        limit=limit,
        response=response,
    )
    return [
        audit_public(request, settings, audit, await _categories(session, audit.id))
        for audit in audits
    ]


# --- the daily schedule ----------------------------------------------------------------------


def _refused(exc: RPCError) -> ApiError:
    unreachable = temporal_unreachable(exc)
    return unreachable or ApiError(503, f"Temporal refused the request ({exc.status.name})")


@contextmanager
def _the_schedule() -> Iterator[None]:
    try:
        yield
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, "there is no inventory audit schedule") from exc
        raise _refused(exc) from exc


async def _describe_schedule(temporal: Client) -> SchedulePublic:
    with _the_schedule():
        described = await temporal.get_schedule_handle(SCHEDULE_ID).describe()
    schedule = described.schedule
    return SchedulePublic(
        id=SCHEDULE_ID,
        cron=[cron_of(calendar) for calendar in schedule.spec.calendars],
        paused=schedule.state.paused,
        note=schedule.state.note,
        nextRuns=[_iso(moment) for moment in described.info.next_action_times[:5]],
    )


@router.get(
    "/schedule",
    summary="The daily inventory audit schedule",
    dependencies=READ,
    response_model=SchedulePublic,
)
async def get_schedule(temporal: TemporalDep) -> SchedulePublic:
    return await _describe_schedule(temporal)


@router.put(
    "/schedule",
    summary="Create or change the daily inventory audit schedule",
    dependencies=WRITE,
    response_model=SchedulePublic,
)
async def put_schedule(
    body: ScheduleBody, temporal: TemporalDep, settings: SettingsDep
) -> SchedulePublic:
    schedule = Schedule(
        action=AUDIT_PROCESS.schedule_action(
            body.to_input(), "daily", task_queue=settings.task_queue
        ),
        spec=ScheduleSpec(cron_expressions=[body.cron]),
        state=ScheduleState(paused=body.paused, note=body.note),
    )
    try:
        await temporal.create_schedule(SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        with _the_schedule():
            await temporal.get_schedule_handle(SCHEDULE_ID).update(replace)
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise ApiError(400, f"cron: {exc.message}") from exc
        raise _refused(exc) from exc
    return await _describe_schedule(temporal)


@router.delete(
    "/schedule",
    status_code=204,
    summary="Remove the daily inventory audit schedule",
    dependencies=WRITE,
)
async def delete_schedule(temporal: TemporalDep) -> Response:
    with _the_schedule():
        await temporal.get_schedule_handle(SCHEDULE_ID).delete()
    return Response(status_code=204)


# --- one audit -------------------------------------------------------------------------------


@router.get(
    "/{audit_id}",
    summary="An inventory audit: status, count and revenue at stake per category",
    dependencies=READ,
    response_model=InventoryAuditPublic,
)
async def get_audit(
    audit_id: str,
    request: Request,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> InventoryAuditPublic:
    audit = await _audit_or_404(session, audit_id)
    body = audit_public(request, settings, audit, await _categories(session, audit.id))
    if audit.status == InventoryAuditStatus.RUNNING:
        try:
            progress: InventoryAuditProgress = await temporal.get_workflow_handle(
                audit.workflow_id
            ).query(
                InventoryAuditWorkflow.progress,
                rpc_timeout=timedelta(seconds=QUERY_TIMEOUT_SECONDS),
            )
            body.progress = {"phase": progress.phase, "records": progress.records}
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
            body.progress = None  # not started, no worker, or Temporal away: the row stands
    return body


def _completed_file(audit: InventoryAudit) -> Path:
    if audit.status != InventoryAuditStatus.COMPLETED or not audit.differences_uri:
        raise ApiError(409, f"inventory audit {audit.id} is {audit.status}: no differences yet")
    path = Path(audit.differences_uri)
    if not path.exists():
        raise ApiError(410, f"the differences of {audit.id} are no longer at {path}")
    return path


@router.get(
    "/{audit_id}/differences",
    summary="List an audit's differences, with filters",
    dependencies=READ,
    response_model=list[DifferencePublic],
)
async def list_differences(
    audit_id: str,
    response: Response,
    session: SessionDep,
    category: str | None = Query(default=None, description=", ".join(Category)),
    imsi: str | None = Query(default=None, max_length=15),
    msisdn: str | None = Query(default=None, max_length=16, description="with or without +"),
    offset: Offset = 0,
    limit: int = Query(default=100, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    one_of("category", category, Category)
    path = _completed_file(await _audit_or_404(session, audit_id))
    expression: pc.Expression | None = None
    for name, value in (
        ("category", category),
        ("imsi", imsi),
        ("msisdn", msisdn.removeprefix("+") if msisdn else None),
    ):
        if value is not None:
            condition = pc.field(name) == value
            expression = condition if expression is None else expression & condition
    total, rows = await asyncio.to_thread(_read_page, path, expression, offset, limit)
    response.headers["X-Total-Count"] = str(total)
    response.headers["X-Result-Count"] = str(len(rows))
    return rows


def _read_page(
    path: Path, expression: pc.Expression | None, offset: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    total, rows = parquet_page(path, DIFFERENCE_SCHEMA, expression, offset, limit)
    return total, [_camel(row) for row in rows]


def _camel(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        head, *rest = key.split("_")
        out[head + "".join(part.title() for part in rest)] = value
    return out
