"""Regulatory reports: start one, follow it, download what was submitted and the receipt.

A report is one version of one report type for one operator and period (``kev-mobile-quarterly``
for ``2026-Q3``); each version is a row in the hub database and one ``RegulatoryReport``
workflow. Whoever starts a version is its preparer, and may not approve it (four-eyes: the
approval is a task in ``/tasks``). A rejected version ends; the next POST starts version n+1.
A correction of an accepted report is version n+1 that supersedes it at the regulator.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.reporting import next_version, open_version, report_id_for
from api.deps import Principal, SessionDep, SettingsDep, TemporalDep, require_scope
from api.errors import ApiError
from api.inbound import CheckedRoute
from api.listing import Offset, one_of, page
from api.routes.reconciliations import checked_body_source
from hub.models import RegulatoryReport, ReportStatus
from hub.permissions import Scope
from hub.reporting.periods import Quarter
from hub.reporting.registry import report_type as lookup_report_type
from hub.settings import Settings
from workflows.regulatory_report import CONTRACT as REPORT_PROCESS
from workflows.regulatory_report import ReportInput

router = APIRouter(
    prefix="/regulatoryReports", tags=["Regulatory reporting"], route_class=CheckedRoute
)
READ = [Depends(require_scope(Scope.REPORTS_READ))]
Preparer = Annotated[Principal, Depends(require_scope(Scope.REPORTS_WRITE))]

OPERATOR_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"


class ManualFigures(BaseModel):
    """Figures no system the hub reads holds; shown to the approver like every other."""

    model_config = ConfigDict(extra="forbid")

    employees: int | None = Field(default=None, ge=0, le=10_000_000)
    investments: str | None = Field(
        default=None, pattern=r"^[0-9]{1,15}(\.[0-9]{1,2})?$", description="amount, 2 decimals"
    )


class ReportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reportType: str = Field(min_length=1, max_length=64, examples=["kev-mobile-quarterly"])
    period: str = Field(min_length=1, max_length=16, examples=["2026-Q3"])
    operatorId: str | None = Field(default=None, pattern=OPERATOR_ID)
    networkSource: str | None = Field(default=None, description="folder or URI of CDR files")
    billingSource: str | None = Field(
        default=None, description="`billing-system` (its usage export) or a folder / URI"
    )
    manualFigures: ManualFigures | None = None


class CorrectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)
    networkSource: str | None = None
    billingSource: str | None = None
    manualFigures: ManualFigures | None = None


class ReportPublic(BaseModel):
    id: str
    href: str
    reportType: str
    operatorId: str
    period: str
    version: int
    status: str
    workflowId: str
    preparedBy: str
    approvedBy: str | None
    indicators: dict[str, Any] | None
    findings: list[dict[str, Any]]
    taskId: str | None
    receiptId: str | None
    receivedAt: datetime | None
    verdict: str | None
    reasons: list[str]
    documentSha256: str | None
    document: str | None = Field(description="the XML submitted (or to be), once rendered")
    receipt: str | None
    dueDate: datetime | None
    supersedes: str | None
    parameters: dict[str, Any]
    createdAt: datetime
    updatedAt: datetime


# --- helpers ---------------------------------------------------------------------------------


def _href(request: Request, settings: Settings, path: str) -> str:
    base = settings.public_url.rstrip("/") if settings.public_url else str(request.base_url)
    return f"{base.rstrip('/')}{path}"


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def public(request: Request, settings: Settings, report: RegulatoryReport) -> ReportPublic:
    path = f"/regulatoryReports/{report.id}"
    return ReportPublic(
        id=report.id,
        href=_href(request, settings, path),
        reportType=report.report_type,
        operatorId=report.operator_id,
        period=report.period,
        version=report.version,
        status=report.status,
        workflowId=report.workflow_id,
        preparedBy=report.prepared_by,
        approvedBy=report.approved_by,
        indicators=report.indicators,
        findings=report.findings,
        taskId=report.task_id,
        receiptId=report.receipt_id,
        receivedAt=_utc(report.received_at),
        verdict=report.verdict,
        reasons=report.reasons,
        documentSha256=report.document_sha256,
        document=_href(request, settings, f"{path}/document") if report.document_uri else None,
        receipt=_href(request, settings, f"{path}/receipt") if report.receipt_id else None,
        dueDate=_utc(report.due_date),
        supersedes=report.supersedes,
        parameters=report.parameters,
        createdAt=_utc(report.created_at) or report.created_at,
        updatedAt=_utc(report.updated_at) or report.updated_at,
    )


def _bad(field: str, exc: ValueError) -> ApiError:
    """A 400 whose message starts with the field (the engine's messages may name it already)."""
    message = str(exc)
    return ApiError(400, message if message.startswith(f"{field}:") else f"{field}: {message}")


def _quarter(period: str, settings: Settings) -> Quarter:
    """The period, if it is a quarter that has ended in the operator's time zone; else 400."""
    try:
        quarter = Quarter.parse(period)
    except ValueError as exc:
        raise _bad("period", exc) from None
    if not quarter.has_ended(datetime.now(UTC), settings.reporting_time_zone):
        raise ApiError(400, f"period: {period} has not ended yet")
    return quarter


async def _report_or_404(session: AsyncSession, report_id: str) -> RegulatoryReport:
    session.expire_all()  # the workflow writes the row; this session may have read it before
    report = await session.get(RegulatoryReport, report_id)
    if report is None:
        raise ApiError(404, f"no regulatory report with id {report_id!r}")
    return report


def workflow_input(report: RegulatoryReport) -> ReportInput:
    parameters = report.parameters
    return ReportInput(
        report_id=report.id,
        report_type=report.report_type,
        period=report.period,
        operator_id=report.operator_id,
        version=report.version,
        prepared_by=report.prepared_by,
        network_source=parameters.get("networkSource"),
        billing_source=parameters.get("billingSource"),
        manual_figures=parameters.get("manualFigures"),
        supersedes=report.supersedes,
        reason=parameters.get("reason"),
        due_date=_utc(report.due_date),
    )


async def _start(temporal: Client, settings: Settings, report: RegulatoryReport) -> None:
    """Start the version's workflow; one started already is left as it is."""
    with suppress(WorkflowAlreadyStartedError):
        await REPORT_PROCESS.start(
            temporal, workflow_input(report), report.id, task_queue=settings.task_queue
        )


async def _create(
    request: Request,
    response: Response,
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
    report: RegulatoryReport,
) -> ReportPublic:
    """Record the version, then start its workflow (a row the hub starts is one it knows)."""
    session.add(report)
    try:
        await session.commit()
    except IntegrityError:
        # The same version posted at the same moment: that request's report is this one.
        await session.rollback()
        existing = await open_version(
            session, report.report_type, report.period, report.operator_id
        )
        if existing is None:
            raise ApiError(409, "another version of this report was started meanwhile") from None
        return await _again(request, response, session, temporal, settings, existing)
    try:
        await _start(temporal, settings, report)
    except RPCError as exc:
        await session.delete(report)
        await session.commit()
        raise ApiError(503, f"Temporal refused to start the report: {exc.status.name}") from exc
    response.headers["Location"] = _href(request, settings, f"/regulatoryReports/{report.id}")
    return public(request, settings, report)


async def _again(
    request: Request,
    response: Response,
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
    report: RegulatoryReport,
) -> ReportPublic:
    """The open version, asked for again: 200 with it (its workflow started if the API died
    between recording and starting it)."""
    if report.status == ReportStatus.EXTRACTING:
        try:
            await _start(temporal, settings, report)
        except RPCError as exc:
            raise ApiError(503, f"Temporal refused to start the report: {exc.status.name}") from exc
    response.status_code = 200
    return public(request, settings, report)


async def _parameters(
    settings: Settings,
    network: str | None,
    billing: str | None,
    manual: ManualFigures | None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "networkSource": await checked_body_source("networkSource", network, settings),
        "billingSource": await checked_body_source("billingSource", billing, settings),
        "manualFigures": manual.model_dump(exclude_none=True) if manual else None,
        **extra,
    }


# --- routes ----------------------------------------------------------------------------------


@router.post("", status_code=201, summary="Prepare a report", response_model=ReportPublic)
async def start_report(
    body: ReportCreate,
    preparer: Preparer,
    request: Request,
    response: Response,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> ReportPublic:
    try:
        lookup_report_type(body.reportType)
    except ValueError as exc:
        raise _bad("reportType", exc) from None
    quarter = _quarter(body.period, settings)
    period = str(quarter)
    operator_id = body.operatorId or settings.reporting_operator_id
    parameters = await _parameters(
        settings, body.networkSource, body.billingSource, body.manualFigures
    )
    existing = await open_version(session, body.reportType, period, operator_id)
    if existing is not None:
        return await _again(request, response, session, temporal, settings, existing)
    version = await next_version(session, body.reportType, period, operator_id)
    report_id = report_id_for(body.reportType, period, operator_id, version)
    _, end = quarter.bounds(settings.reporting_time_zone)
    report = RegulatoryReport(
        id=report_id,
        report_type=body.reportType,
        operator_id=operator_id,
        period=period,
        version=version,
        workflow_id=REPORT_PROCESS.workflow_id(report_id),
        prepared_by=preparer.subject,
        parameters=parameters,
        due_date=end + settings.reporting_due_after,
    )
    return await _create(request, response, session, temporal, settings, report)


@router.post(
    "/{report_id}/corrections",
    status_code=201,
    summary="Correct an accepted report: version n+1, superseding it",
    response_model=ReportPublic,
)
async def correct_report(
    report_id: str,
    body: CorrectionCreate,
    preparer: Preparer,
    request: Request,
    response: Response,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> ReportPublic:
    accepted = await _report_or_404(session, report_id)
    if accepted.status != ReportStatus.ACCEPTED:
        raise ApiError(
            409, f"report {report_id} is {accepted.status}: only an accepted report is corrected"
        )
    key = (accepted.report_type, accepted.period, accepted.operator_id)
    existing = await open_version(session, *key)
    if existing is not None:
        return await _again(request, response, session, temporal, settings, existing)
    old = accepted.parameters
    parameters = await _parameters(
        settings,
        body.networkSource or old.get("networkSource"),
        body.billingSource or old.get("billingSource"),
        body.manualFigures
        or (ManualFigures(**old["manualFigures"]) if old.get("manualFigures") else None),
        reason=body.reason,
        corrects=accepted.id,
    )
    version = await next_version(session, *key)
    new_id = report_id_for(*key, version)
    report = RegulatoryReport(
        id=new_id,
        report_type=accepted.report_type,
        operator_id=accepted.operator_id,
        period=accepted.period,
        version=version,
        workflow_id=REPORT_PROCESS.workflow_id(new_id),
        prepared_by=preparer.subject,
        parameters=parameters,
        due_date=accepted.due_date,
        supersedes=accepted.receipt_id,
    )
    return await _create(request, response, session, temporal, settings, report)


class ScheduleBody(BaseModel):
    """A Temporal Schedule per report type: each run reports the quarter before it."""

    model_config = ConfigDict(extra="forbid")

    reportType: str = Field(min_length=1, max_length=64)
    operatorId: str | None = Field(default=None, pattern=OPERATOR_ID)
    daysAfterQuarter: int = Field(
        default=5, ge=0, le=27, description="days after the quarter's end (its first day: 0)"
    )
    hour: int = Field(default=6, ge=0, le=23, description="local time, HUB_REPORTING_TIME_ZONE")
    networkSource: str | None = None
    billingSource: str | None = None
    paused: bool = False
    note: str | None = Field(default=None, max_length=500)


def schedule_id_for(report_type: str) -> str:
    return f"regulatory-report-{report_type}"


async def _describe_schedule(temporal: Client, report_type: str) -> dict[str, Any]:
    schedule_id = schedule_id_for(report_type)
    try:
        described = await temporal.get_schedule_handle(schedule_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, f"there is no schedule for {report_type!r}") from exc
        raise ApiError(503, f"Temporal refused the request ({exc.status.name})") from exc
    return {
        "id": schedule_id,
        "reportType": report_type,
        "paused": described.schedule.state.paused,
        "note": described.schedule.state.note,
        "nextRuns": [_utc(moment) for moment in described.info.next_action_times[:4]],
        "recentRuns": [
            {"scheduledAt": _utc(run.scheduled_at), "workflowId": run.action.workflow_id}
            for run in described.info.recent_actions
            if isinstance(run.action, ScheduleActionExecutionStartWorkflow)
        ],
    }


@router.get("/schedule", summary="A report type's schedule", dependencies=READ)
async def get_schedule(
    temporal: TemporalDep, reportType: str = Query(min_length=1, max_length=64)
) -> dict[str, Any]:
    return await _describe_schedule(temporal, reportType)


@router.put("/schedule", summary="Create or change a report type's schedule")
async def put_schedule(
    body: ScheduleBody, preparer: Preparer, temporal: TemporalDep, settings: SettingsDep
) -> dict[str, Any]:
    try:
        lookup_report_type(body.reportType)
    except ValueError as exc:
        raise _bad("reportType", exc) from None
    data = ReportInput(
        report_id="",
        report_type=body.reportType,
        period="",
        operator_id=body.operatorId or settings.reporting_operator_id,
        version=0,
        prepared_by="",
        network_source=await checked_body_source("networkSource", body.networkSource, settings),
        billing_source=await checked_body_source("billingSource", body.billingSource, settings),
    )
    schedule_id = schedule_id_for(body.reportType)
    schedule = Schedule(
        action=REPORT_PROCESS.schedule_action(
            data, f"scheduled-{body.reportType}", task_queue=settings.task_queue
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    second=[ScheduleRange(0)],
                    minute=[ScheduleRange(0)],
                    hour=[ScheduleRange(body.hour)],
                    day_of_month=[ScheduleRange(1 + body.daysAfterQuarter)],
                    month=[ScheduleRange(1, 10, 3)],
                    comment="a few days after each quarter",
                )
            ],
            time_zone_name=settings.reporting_time_zone,
        ),
        state=ScheduleState(paused=body.paused, note=body.note),
        # Every run looks for itself: one finds its quarter's report under way and stops.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
    )
    try:
        await temporal.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await temporal.get_schedule_handle(schedule_id).update(replace)
    except RPCError as exc:
        raise ApiError(503, f"Temporal refused the schedule ({exc.status.name})") from exc
    return await _describe_schedule(temporal, body.reportType)


@router.post("/schedule/trigger", status_code=202, summary="Run a report type's schedule now")
async def trigger_schedule(
    preparer: Preparer,
    temporal: TemporalDep,
    reportType: str = Query(min_length=1, max_length=64),
) -> dict[str, Any]:
    schedule_id = schedule_id_for(reportType)
    try:
        await temporal.get_schedule_handle(schedule_id).trigger()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, f"there is no schedule for {reportType!r}") from exc
        raise ApiError(503, f"Temporal refused the request ({exc.status.name})") from exc
    return {"triggered": schedule_id}


@router.get("", summary="List reports", response_model=list[ReportPublic], dependencies=READ)
async def list_reports(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    reportType: str | None = Query(default=None),
    period: str | None = Query(default=None, description="a quarter, 2026-Q3"),
    status: str | None = Query(default=None),
    offset: Offset = 0,
    limit: int = Query(default=50, ge=1, le=500),
) -> list[ReportPublic]:
    one_of("status", status, ReportStatus)
    conditions: list[Any] = []
    if reportType is not None:
        conditions.append(RegulatoryReport.report_type == reportType)
    if period is not None:
        conditions.append(RegulatoryReport.period == period)
    if status is not None:
        conditions.append(RegulatoryReport.status == status)
    rows = await page(
        session,
        RegulatoryReport,
        conditions,
        [
            col(RegulatoryReport.period).desc(),
            col(RegulatoryReport.version).desc(),
            col(RegulatoryReport.id),
        ],
        offset=offset,
        limit=limit,
        response=response,
    )
    return [public(request, settings, row) for row in rows]


@router.get("/{report_id}", summary="Read a report", response_model=ReportPublic, dependencies=READ)
async def get_report(
    report_id: str, request: Request, session: SessionDep, settings: SettingsDep
) -> ReportPublic:
    return public(request, settings, await _report_or_404(session, report_id))


def _archived(settings: Settings, uri: str) -> Path:
    path = Path(uri).resolve()
    if not path.is_relative_to(settings.resolved_reporting_dir.resolve()):
        raise ApiError(404, "the archived document is not where reports are kept")
    return path


@router.get(
    "/{report_id}/document",
    summary="The report's XML, as submitted (or to be)",
    response_class=FileResponse,
    dependencies=READ,
)
async def get_document(report_id: str, session: SessionDep, settings: SettingsDep) -> Response:
    report = await _report_or_404(session, report_id)
    if report.document_uri is None:
        raise ApiError(404, f"report {report_id} has no document yet ({report.status})")
    path = _archived(settings, report.document_uri)
    if not await asyncio.to_thread(path.is_file):
        raise ApiError(404, f"the document of report {report_id} is gone from the archive")
    headers = {"X-Content-SHA256": report.document_sha256 or ""}
    return FileResponse(
        path, media_type="application/xml", filename=f"{report_id}.xml", headers=headers
    )


@router.get("/{report_id}/receipt", summary="The regulator's receipt", dependencies=READ)
async def get_receipt(report_id: str, session: SessionDep) -> dict[str, Any]:
    report = await _report_or_404(session, report_id)
    if report.receipt_id is None:
        raise ApiError(404, f"report {report_id} has no receipt yet ({report.status})")
    return {
        "reportId": report.id,
        "receiptId": report.receipt_id,
        "receivedAt": _utc(report.received_at),
        "verdict": report.verdict,
        "reasons": report.reasons,
        "documentSha256": report.document_sha256,
        "supersedes": report.supersedes,
    }
