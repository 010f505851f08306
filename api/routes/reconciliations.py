"""Billing reconciliation: start a run, follow it, read its summary and its discrepancies.

A run's totals live in the hub database; its discrepancies in one Parquet file, which the
listing reads with filters (never into memory whole) and the download serves as Parquet or CSV.
The daily schedule is a Temporal Schedule that reconciles the day before.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import (
    Client,
    Schedule,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.reconciliation import BILLING_SYSTEM, checked_source
from api.deps import SessionDep, SettingsDep, TemporalDep, require_scope
from api.errors import ApiError, temporal_unreachable
from api.inbound import CheckedRoute
from api.listing import Offset, one_of, page, parquet_page
from hub.errors import PermanentError
from hub.models import ReconciliationCategory, ReconciliationRun, ReconciliationStatus
from hub.paths import LocationRefused, parse_location
from hub.permissions import Scope
from hub.reconciliation.engine import DISCREPANCY_SCHEMA, Tolerances
from hub.reconciliation.workspace import open_result, store_of
from hub.settings import Settings
from hub.usage import Category
from workflows.reconciliation import CONTRACT as RECONCILIATION_PROCESS
from workflows.reconciliation import (
    BillingReconciliation,
    ReconciliationInput,
    ReconciliationProgress,
)

router = APIRouter(
    prefix="/reconciliations", tags=["Billing reconciliation"], route_class=CheckedRoute
)
READ = [Depends(require_scope(Scope.RECONCILIATIONS_READ))]
WRITE = [Depends(require_scope(Scope.RECONCILIATIONS_WRITE))]

SCHEDULE_ID = "billing-reconciliation-daily"
#: How long a read waits for a running workflow to say how far it got.
QUERY_TIMEOUT_SECONDS = 2.0
MAX_PERIOD = timedelta(days=92)
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class TolerancesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    volumeBytes: int = Field(default=1024, ge=0)
    volumeRatio: float = Field(default=0.001, ge=0, le=1)
    durationSeconds: int = Field(default=1, ge=0)
    charge: float = Field(default=0.01, ge=0)
    clockSkewSeconds: int = Field(
        default=3600, ge=0, le=86_400, description="how far apart the sides' clocks may be"
    )

    def to_tolerances(self) -> Tolerances:
        return Tolerances(
            self.volumeBytes,
            self.volumeRatio,
            self.durationSeconds,
            self.charge,
            self.clockSkewSeconds,
        )


class SourcesBody(BaseModel):
    """Where the data comes from and how to compare it; empty fields take the settings."""

    model_config = ConfigDict(extra="forbid")

    networkSource: str | None = Field(
        default=None, description="folder or pyarrow.fs URI of the CDR files"
    )
    billingSource: str | None = Field(
        default=None,
        description=f"`{BILLING_SYSTEM}` (its usage export) or a folder / URI of rated usage",
    )
    tolerances: TolerancesBody = Field(default_factory=TolerancesBody)
    leakageThresholdPct: float | None = Field(default=None, ge=0, le=100)
    partitions: int = Field(default=0, ge=0, le=4096, description="power of two; 0: automatic")

    @field_validator("partitions")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError("must be a power of two (1, 2, 4, ... 4096) or 0 for automatic")
        return value


class ReconciliationCreate(SourcesBody):
    id: str | None = Field(
        default=None, description="your id for the run: the same id again starts nothing"
    )
    periodStart: datetime
    periodEnd: datetime
    keepWork: bool = False

    @field_validator("id")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        if value is not None and not RUN_ID.fullmatch(value):
            raise ValueError(
                "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("periodStart", "periodEnd")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _period(self) -> ReconciliationCreate:
        if self.periodEnd <= self.periodStart:
            raise ValueError("periodEnd must be after periodStart")
        if self.periodEnd - self.periodStart > MAX_PERIOD:
            raise ValueError(f"the period may span at most {MAX_PERIOD.days} days")
        return self


class ScheduleBody(SourcesBody):
    cron: str = Field(
        default="30 2 * * *",
        description="when to run (UTC), as cron; each run reconciles the UTC day before",
    )
    paused: bool = False
    note: str | None = Field(default=None, max_length=500)


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


def run_json(
    request: Request,
    settings: Settings,
    run: ReconciliationRun,
    categories: list[ReconciliationCategory],
) -> dict[str, Any]:
    path = f"/reconciliations/{run.id}"
    return {
        "id": run.id,
        "href": _href(request, settings, path),
        "workflowId": run.workflow_id,
        "status": run.status,
        "periodStart": _iso(run.period_start),
        "periodEnd": _iso(run.period_end),
        "startedAt": _iso(run.started_at),
        "finishedAt": _iso(run.finished_at),
        "currency": run.currency,
        "parameters": run.parameters,
        "networkRecords": run.network_records,
        "billingRecords": run.billing_records,
        "matchedRecords": run.matched_records,
        "discrepancyCount": run.discrepancy_count,
        "billedRevenue": float(run.billed_revenue),
        "leakageAmount": float(run.leakage_amount),
        "overbilledAmount": float(run.overbilled_amount),
        "leakagePct": run.leakage_pct,
        "caseId": run.case_id,
        "errorMessage": run.error_message,
        "categories": [
            {
                "category": row.category,
                "count": row.count,
                "revenueImpact": float(row.revenue_impact),
            }
            for row in categories
        ],
        "discrepancies": (
            {
                "href": _href(request, settings, f"{path}/discrepancies"),
                "download": _href(request, settings, f"{path}/discrepancies/download"),
            }
            if run.status == ReconciliationStatus.COMPLETED
            else None
        ),
    }


async def _run_or_404(session: AsyncSession, run_id: str) -> ReconciliationRun:
    run = await session.get(ReconciliationRun, run_id)
    if run is None:
        raise ApiError(404, f"no reconciliation with id {run_id!r}")
    return run


async def _categories(session: AsyncSession, run_id: str) -> list[ReconciliationCategory]:
    rows = await session.exec(
        select(ReconciliationCategory)
        .where(ReconciliationCategory.run_id == run_id)
        .order_by(col(ReconciliationCategory.category))
    )
    return list(rows)


async def checked_body_source(field: str, source: str | None, settings: Settings) -> str | None:
    """The source as the worker will read it (decoded, resolved: see ``hub.paths``), or a 400:
    outside the allowed roots, ambiguous, with credentials in it, or (a local one) not there:
    a typo is a 400, not a failed run later. The worker checks it again when it reads."""
    if source is None:
        return None
    try:
        checked = checked_source(source, settings)
        location = parse_location(checked) if checked != BILLING_SYSTEM else None
    except LocationRefused as exc:
        raise ApiError(400, f"{field}: {exc}") from None
    if location is not None and location.local:
        path = Path(location.path)
        if not await asyncio.to_thread(path.exists):
            raise ApiError(400, f"{field}: no such file or folder {str(path)!r}")
    return checked


async def workflow_input(
    body: SourcesBody, settings: Settings, **extra: Any
) -> ReconciliationInput:
    return ReconciliationInput(
        network_source=await checked_body_source("networkSource", body.networkSource, settings),
        billing_source=await checked_body_source("billingSource", body.billingSource, settings),
        tolerances=body.tolerances.to_tolerances(),
        leakage_threshold_pct=body.leakageThresholdPct,
        partitions=body.partitions,
        **extra,
    )


# --- runs ------------------------------------------------------------------------------------


@router.post("", status_code=201, summary="Reconcile a period", dependencies=WRITE)
async def start_reconciliation(
    body: ReconciliationCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    run_id = body.id or f"rec-{body.periodStart:%Y%m%d}-{secrets.token_hex(4)}"
    data = await workflow_input(
        body,
        settings,
        run_id=run_id,
        period_start=body.periodStart,
        period_end=body.periodEnd,
        keep_work=body.keepWork,
    )
    if body.id is not None and (existing := await session.get(ReconciliationRun, body.id)):
        return await _again(existing, data, request, response, session, temporal, settings)
    parameters = body.model_dump(mode="json", exclude={"id", "periodStart", "periodEnd"})
    run = ReconciliationRun(
        id=run_id,
        workflow_id=RECONCILIATION_PROCESS.workflow_id(run_id),
        period_start=body.periodStart,
        period_end=body.periodEnd,
        parameters={
            **parameters,
            "networkSource": data.network_source,
            "billingSource": data.billing_source,
        },
    )
    session.add(run)
    try:
        # The row first: a run the hub starts is always one it knows of.
        await session.commit()
    except IntegrityError:
        # The same id, posted at the same moment: that request's run is this one.
        await session.rollback()
        existing = await session.get(ReconciliationRun, run_id)
        if existing is None:
            raise
        return await _again(existing, data, request, response, session, temporal, settings)
    try:
        await _start(temporal, settings, run, data)
    except RPCError as exc:
        # Nothing runs: the row must not claim otherwise.
        await session.delete(run)
        await session.commit()
        raise ApiError(503, f"Temporal refused to start the run: {exc.status.name}") from exc
    response.headers["Location"] = _href(request, settings, f"/reconciliations/{run_id}")
    return run_json(request, settings, run, [])


async def _again(
    run: ReconciliationRun,
    data: ReconciliationInput,
    request: Request,
    response: Response,
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
) -> dict[str, Any]:
    """The run an id names, posted again: 200 with it. If the API died between recording it
    and starting its workflow, the repeated request starts it now."""
    if run.status == ReconciliationStatus.RUNNING:
        try:
            await _start(temporal, settings, run, data)
        except RPCError as exc:
            raise ApiError(503, f"Temporal refused to start the run: {exc.status.name}") from exc
    response.status_code = 200
    return run_json(request, settings, run, await _categories(session, run.id))


async def _start(
    temporal: Client, settings: Settings, run: ReconciliationRun, data: ReconciliationInput
) -> None:
    """Start the run's workflow; one that was started already is left as it is."""
    with suppress(WorkflowAlreadyStartedError):
        await RECONCILIATION_PROCESS.start(temporal, data, run.id, task_queue=settings.task_queue)


@router.get("", summary="List reconciliations", dependencies=READ)
async def list_reconciliations(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    status: str | None = Query(default=None, description="running, completed, failed"),
    periodFrom: datetime | None = Query(default=None, description="period starts at or after"),
    periodTo: datetime | None = Query(default=None, description="period starts before"),
    offset: Offset = 0,
    limit: int = Query(default=50, ge=1, le=500),
) -> list[dict[str, Any]]:
    one_of("status", status, ReconciliationStatus)
    conditions: list[Any] = []
    if status is not None:
        conditions.append(ReconciliationRun.status == status)
    if periodFrom is not None:
        conditions.append(col(ReconciliationRun.period_start) >= periodFrom)
    if periodTo is not None:
        conditions.append(col(ReconciliationRun.period_start) < periodTo)
    runs = await page(
        session,
        ReconciliationRun,
        conditions,
        [col(ReconciliationRun.started_at).desc(), col(ReconciliationRun.id)],
        offset=offset,
        limit=limit,
        response=response,
    )
    return [run_json(request, settings, run, await _categories(session, run.id)) for run in runs]


@router.get("/schedule", summary="The daily reconciliation schedule", dependencies=READ)
async def get_schedule(temporal: TemporalDep) -> dict[str, Any]:
    return await _describe_schedule(temporal)


@router.put(
    "/schedule",
    summary="Create or change the daily reconciliation schedule",
    dependencies=WRITE,
)
async def put_schedule(
    body: ScheduleBody, temporal: TemporalDep, settings: SettingsDep
) -> dict[str, Any]:
    data = await workflow_input(body, settings)
    schedule = Schedule(
        action=RECONCILIATION_PROCESS.schedule_action(
            data, "daily", task_queue=settings.task_queue
        ),
        spec=ScheduleSpec(cron_expressions=[body.cron]),
        state=ScheduleState(paused=body.paused, note=body.note),
    )
    handle = temporal.get_schedule_handle(SCHEDULE_ID)
    try:
        await temporal.create_schedule(SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise ApiError(400, f"cron: {exc.message}") from exc
        raise _refused(exc) from exc
    return await _describe_schedule(temporal)


def _refused(exc: RPCError) -> ApiError:
    """Temporal's answer as the API's: 503 when it is away, as exports answer."""
    unreachable = temporal_unreachable(exc)
    return unreachable or ApiError(503, f"Temporal refused the request ({exc.status.name})")


@contextmanager
def _the_schedule() -> Iterator[None]:
    """Calls on the schedule: one that does not exist is a 404, Temporal away a 503."""
    try:
        yield
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, "there is no reconciliation schedule") from exc
        raise _refused(exc) from exc


@router.post(
    "/schedule/trigger",
    status_code=202,
    summary="Run the scheduled reconciliation now",
    dependencies=WRITE,
)
async def trigger_schedule(temporal: TemporalDep) -> dict[str, Any]:
    with _the_schedule():
        await temporal.get_schedule_handle(SCHEDULE_ID).trigger()
    return {"triggered": SCHEDULE_ID}


@router.delete(
    "/schedule",
    status_code=204,
    summary="Remove the daily reconciliation schedule",
    dependencies=WRITE,
)
async def delete_schedule(temporal: TemporalDep) -> Response:
    with _the_schedule():
        await temporal.get_schedule_handle(SCHEDULE_ID).delete()
    return Response(status_code=204)


#: A cron field's full range, written ``*``: (minute, hour, day of month, month, day of week).
_CRON_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day_of_month", 1, 31),
    ("month", 1, 12),
    ("day_of_week", 0, 6),
)


def cron_of(calendar: ScheduleCalendarSpec) -> str:
    """The cron expression of a calendar (the server keeps cron as calendars)."""
    fields = []
    for name, low, high in _CRON_FIELDS:
        parts = []
        for r in getattr(calendar, name):
            end = max(r.end, r.start)
            span = (
                "*"
                if (r.start, end) == (low, high)
                else (str(r.start) if end == r.start else f"{r.start}-{end}")
            )
            parts.append(span if r.step == 1 else f"{span}/{r.step}")
        fields.append(",".join(parts) or "*")
    return " ".join(fields)


async def _describe_schedule(temporal: Client) -> dict[str, Any]:
    with _the_schedule():
        described = await temporal.get_schedule_handle(SCHEDULE_ID).describe()
    schedule = described.schedule
    return {
        "id": SCHEDULE_ID,
        "cron": [cron_of(calendar) for calendar in schedule.spec.calendars],
        "paused": schedule.state.paused,
        "note": schedule.state.note,
        "nextRuns": [_iso(moment) for moment in described.info.next_action_times[:5]],
        "recentRuns": [
            {
                "scheduledAt": _iso(action.scheduled_at),
                "startedAt": _iso(action.started_at),
                "workflowId": getattr(action.action, "workflow_id", None),
            }
            for action in described.info.recent_actions[-10:]
        ],
    }


@router.get(
    "/{run_id}",
    summary="A reconciliation: progress, summary, categories",
    dependencies=READ,
)
async def get_reconciliation(
    run_id: str,
    request: Request,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    run = await _run_or_404(session, run_id)
    body = run_json(request, settings, run, await _categories(session, run.id))
    if run.status == ReconciliationStatus.RUNNING:
        try:
            # Briefly: with no worker up, a query waits; the row answers meanwhile.
            progress: ReconciliationProgress = await temporal.get_workflow_handle(
                run.workflow_id
            ).query(
                BillingReconciliation.progress,
                rpc_timeout=timedelta(seconds=QUERY_TIMEOUT_SECONDS),
            )
            body["progress"] = {
                "phase": progress.phase,
                "filesTotal": progress.files_total,
                "filesDone": progress.files_done,
                "rowsRead": progress.rows_read,
                "rowsInPeriod": progress.rows_kept,
                "partitionsTotal": progress.partitions_total,
                "partitionsDone": progress.partitions_done,
                "discrepanciesSoFar": progress.discrepancies,
            }
        except (RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError):
            body["progress"] = None  # not started, no worker, or Temporal away: the row stands
    return body


@router.post(
    "/{run_id}/cancel",
    status_code=202,
    summary="Stop a running reconciliation",
    dependencies=WRITE,
)
async def cancel_reconciliation(
    run_id: str,
    request: Request,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    run = await _run_or_404(session, run_id)
    if run.status != ReconciliationStatus.RUNNING:
        raise ApiError(409, f"reconciliation {run_id} is already {run.status}")
    try:
        await temporal.get_workflow_handle(run.workflow_id).cancel()
    except RPCError as exc:
        if (unreachable := temporal_unreachable(exc)) is not None:
            raise unreachable from exc
        raise ApiError(409, f"reconciliation {run_id} is not running ({exc.status.name})") from exc
    return run_json(request, settings, run, [])


@dataclass(frozen=True)
class _ResultFile:
    """A run's discrepancy file, where the reconciliation workspace keeps it."""

    filesystem: pafs.FileSystem
    path: str

    @property
    def local(self) -> bool:
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    def dataset(self) -> ds.Dataset:
        return ds.dataset(
            self.path, filesystem=self.filesystem, format="parquet", schema=DISCREPANCY_SCHEMA
        )

    def chunks(self) -> Iterator[bytes]:
        with self.filesystem.open_input_stream(self.path) as source:
            while chunk := source.read(1 << 20):
                yield chunk


def _completed_file(run: ReconciliationRun, settings: Settings) -> _ResultFile:
    if run.status != ReconciliationStatus.COMPLETED or not run.discrepancy_uri:
        raise ApiError(409, f"reconciliation {run.id} is {run.status}: no discrepancies yet")
    try:
        result = _ResultFile(*open_result(store_of(settings), run.discrepancy_uri))
        found = result.filesystem.get_file_info(result.path).type == pafs.FileType.File
    except PermanentError as exc:
        raise ApiError(410, f"the discrepancies of {run.id}: {exc}") from exc
    except OSError as exc:
        raise ApiError(
            503, f"the reconciliation workspace did not answer: {type(exc).__name__}"
        ) from exc
    if not found:
        raise ApiError(410, f"the discrepancies of {run.id} are no longer at {run.discrepancy_uri}")
    return result


def _filter(
    category: str | None, msisdn: str | None, usage_type: str | None
) -> pc.Expression | None:
    expression: pc.Expression | None = None
    for name, value in (("category", category), ("msisdn", msisdn), ("usage_type", usage_type)):
        if value is not None:
            condition = pc.field(name) == value
            expression = condition if expression is None else expression & condition
    return expression


CategoryQuery = Query(default=None, description=", ".join(c.value for c in Category))


@router.get(
    "/{run_id}/discrepancies",
    summary="List a run's discrepancies, with filters",
    dependencies=READ,
)
async def list_discrepancies(
    run_id: str,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    category: str | None = CategoryQuery,
    msisdn: str | None = None,
    usageType: Literal["data", "voice", "sms"] | None = None,
    offset: Offset = 0,
    limit: int = Query(default=100, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    one_of("category", category, Category)
    result = _completed_file(await _run_or_404(session, run_id), settings)
    total, rows = await asyncio.to_thread(
        _read_page, result, _filter(category, msisdn, usageType), offset, limit
    )
    response.headers["X-Total-Count"] = str(total)
    response.headers["X-Result-Count"] = str(len(rows))
    return rows


def _read_page(
    result: _ResultFile, expression: pc.Expression | None, offset: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    total, rows = parquet_page(
        result.path, DISCREPANCY_SCHEMA, expression, offset, limit, filesystem=result.filesystem
    )
    return total, [_camel(row) for row in rows]


def _camel(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        head, *rest = key.split("_")
        out[head + "".join(part.title() for part in rest)] = (
            _iso(value) if isinstance(value, datetime) else value
        )
    return out


@router.get(
    "/{run_id}/discrepancies/by-msisdn",
    summary="The subscribers with the most revenue at stake, from a run's discrepancies",
    dependencies=READ,
)
async def discrepancies_by_msisdn(
    run_id: str,
    session: SessionDep,
    settings: SettingsDep,
    category: str | None = CategoryQuery,
    limit: int = Query(default=20, ge=1, le=1000),
) -> list[dict[str, Any]]:
    one_of("category", category, Category)
    result = _completed_file(await _run_or_404(session, run_id), settings)
    return await asyncio.to_thread(_by_msisdn, result, _filter(category, None, None), limit)


def _by_msisdn(
    result: _ResultFile, expression: pc.Expression | None, limit: int
) -> list[dict[str, Any]]:
    """Per MSISDN: discrepancies, revenue lost and over-billed; the largest lost first."""
    table = result.dataset().to_table(columns=["msisdn", "revenue_impact"], filter=expression)
    impact = table["revenue_impact"]
    table = table.append_column("lost", pc.max_element_wise(impact, 0.0))
    table = table.append_column("over", pc.min_element_wise(impact, 0.0))
    grouped = table.group_by("msisdn").aggregate(
        [("revenue_impact", "count"), ("lost", "sum"), ("over", "sum")]
    )
    top = grouped.sort_by([("lost_sum", "descending"), ("msisdn", "ascending")]).slice(0, limit)
    return [
        {
            "msisdn": row["msisdn"],
            "discrepancies": row["revenue_impact_count"],
            "revenueLost": round(row["lost_sum"], 4),
            "overbilled": round(-row["over_sum"], 4),
        }
        for row in top.to_pylist()
    ]


@router.get(
    "/{run_id}/discrepancies/download",
    summary="Download a run's discrepancies (Parquet, or CSV)",
    response_class=Response,
    dependencies=READ,
)
async def download_discrepancies(
    run_id: str,
    session: SessionDep,
    settings: SettingsDep,
    format: Literal["parquet", "csv"] = "parquet",
    category: str | None = CategoryQuery,
) -> Response:
    one_of("category", category, Category)
    result = _completed_file(await _run_or_404(session, run_id), settings)
    if format == "parquet" and category is None:
        media_type = "application/vnd.apache.parquet"
        if result.local:
            return FileResponse(result.path, media_type=media_type, filename=f"{run_id}.parquet")
        return StreamingResponse(
            result.chunks(),
            media_type=media_type,
            headers={"Content-Disposition": f'attachment; filename="{run_id}.parquet"'},
        )
    expression = _filter(category, None, None)
    if format == "parquet":
        raise ApiError(400, "category: filtering is for format=csv; Parquet comes whole")
    return StreamingResponse(
        _csv(result, expression),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{run_id}.csv"'},
    )


def _csv(result: _ResultFile, expression: pc.Expression | None) -> Iterator[bytes]:
    dataset = result.dataset()
    header = True
    for batch in dataset.to_batches(filter=expression):
        sink = pa.BufferOutputStream()
        pacsv.write_csv(batch, sink, write_options=pacsv.WriteOptions(include_header=header))
        header = False
        yield sink.getvalue().to_pybytes()
    if header:  # no rows: still a valid CSV with its header
        sink = pa.BufferOutputStream()
        pacsv.write_csv(DISCREPANCY_SCHEMA.empty_table(), sink)
        yield sink.getvalue().to_pybytes()
