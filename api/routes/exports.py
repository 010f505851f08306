"""Scheduled exports: Temporal Schedules that run the ``Export`` workflow, and their runs.

A schedule is Temporal's (``export-<id>``): it keeps the timing, pause state and history of
actions; its memo keeps the export's definition as it was given, for reading back, the
creator's ``note`` included. Temporal's own schedule note is the reason of the last pause or
unpause (shown as ``pauseReason`` while paused): pausing never overwrites the creator's note.
Every run is recorded in the hub database, where ``/exportRuns`` reads it. Deleting a schedule
keeps its runs and its watermark: a new schedule with the same id goes on from where it stopped.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import status as http_status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter
from sqlmodel import col
from temporalio.client import (
    Client,
    Schedule,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleListState,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.service import RPCError, RPCStatusCode

from api.deps import SessionDep, SettingsDep, TemporalDep, require_scope
from api.errors import ApiError, temporal_unreachable
from api.inbound import CheckedRoute
from api.listing import Offset, one_of, page
from hub.exports import (
    EXPORT_ID_PATTERN,
    SCHEDULE_PREFIX,
    ExportDataset,
    ExportFormat,
    ExportRunStatus,
    allowed_roots,
    check_destination,
)
from hub.models import ExportRun, ExportWatermark
from hub.paths import LocationRefused
from hub.permissions import Scope
from workflows.exports import CONTRACT as EXPORT_PROCESS
from workflows.exports import ExportInput

router = APIRouter(tags=["Exports"], route_class=CheckedRoute)
READ = [Depends(require_scope(Scope.EXPORTS_READ))]
WRITE = [Depends(require_scope(Scope.EXPORTS_WRITE))]

SCHEDULES = "/exportSchedules"
RUNS = "/exportRuns"
#: A backfill starts one run per schedule time in its range, all queued at once: this many at
#: most (checked for interval schedules, whose times are simple to count).
MAX_BACKFILL_RUNS = 10_000
RPC_TIMEOUT = timedelta(seconds=10)

_DURATION = TypeAdapter(timedelta)


class ExportScheduleCreate(BaseModel):
    """An export and when it runs: ``interval`` or ``cron`` (exactly one)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        pattern=EXPORT_ID_PATTERN.pattern,
        description="Lower-case letters, digits and '-', up to 48; keys the watermark and runs",
    )
    dataset: ExportDataset
    format: ExportFormat
    destination: str = Field(
        min_length=1,
        max_length=1000,
        description="A folder (absolute path or file:// URI) or object storage (s3://...)",
    )
    interval: timedelta | None = Field(
        default=None, description="ISO 8601 duration (PT1H) or seconds; runs at multiples of it"
    )
    cron: str | None = Field(
        default=None, max_length=200, description="Five-field cron, e.g. '0 2 * * *'"
    )
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA time zone of the cron expression"
    )
    startFrom: AwareDatetime | None = Field(
        default=None, description="The first run copies rows changed after this; default: all"
    )
    paused: bool = False
    note: str | None = Field(
        default=None, max_length=500, description="What the export is for; pausing keeps it"
    )


class PauseBody(BaseModel):
    """Why a schedule is paused or unpaused: Temporal's schedule note, also in its Web UI."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)
    note: str | None = Field(
        default=None,
        max_length=500,
        # Marked in the schema only: pydantic's deprecated=True warns on every read.
        json_schema_extra={"deprecated": True},
        description="The reason, as older clients send it; use reason",
    )

    @property
    def why(self) -> str | None:
        return self.reason if self.reason is not None else self.note


class BackfillBody(BaseModel):
    """Run the schedule now for each of its times in ``[start, end]``, oldest first."""

    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime
    end: AwareDatetime


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _schedule_id(export_id: str) -> str:
    return f"{SCHEDULE_PREFIX}{export_id}"


def _handle(temporal: Client, export_id: str) -> ScheduleHandle:
    if not EXPORT_ID_PATTERN.fullmatch(export_id):  # match() would let "id\n" through
        raise ApiError(404, f"no export schedule {export_id!r}")
    return temporal.get_schedule_handle(_schedule_id(export_id))


def _refused(exc: RPCError, export_id: str) -> ApiError:
    if exc.status == RPCStatusCode.NOT_FOUND:
        return ApiError(404, f"no export schedule {export_id!r}")
    return temporal_unreachable(exc) or ApiError(
        503, f"Temporal refused the request ({exc.status.name}: {exc.message})"
    )


def _definition(memo: dict[str, Any]) -> dict[str, Any]:
    keys = ("dataset", "format", "destination", "startFrom", "interval", "cron", "timezone")
    return {key: memo.get(key) for key in keys}


def _notes(memo: dict[str, Any], state: ScheduleState | ScheduleListState | None) -> dict[str, Any]:
    """The creator's note (in the memo) and, while paused, why (Temporal's schedule note)."""
    # Schedules created before the note moved to the memo kept it in Temporal's note only.
    note = memo.get("note", state.note if state else None)
    paused = state is not None and state.paused
    return {"note": note, "pauseReason": (state.note or None) if state and paused else None}


def run_json(run: ExportRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "exportId": run.export_id,
        "workflowId": run.workflow_id,
        "dataset": run.dataset,
        "format": run.format,
        "destination": run.destination,
        "status": run.status,
        "scheduledAt": _iso(run.scheduled_at),
        "watermarkFrom": _iso(run.watermark_from),
        "watermarkTo": _iso(run.watermark_to),
        "startedAt": _iso(run.started_at),
        "finishedAt": _iso(run.finished_at),
        "rows": run.rows,
        "files": run.files,
        "bytes": run.bytes,
        "manifestUri": run.manifest_uri,
        "errorMessage": run.error_message,
    }


async def _watermark(session: SessionDep, export_id: str) -> str | None:
    mark = await session.get(ExportWatermark, export_id)
    return _iso(mark.watermark) if mark else None


async def _schedule_json(
    export_id: str, described: ScheduleDescription, watermark: str | None
) -> dict[str, Any]:
    info, state = described.info, described.schedule.state
    memo = dict(await described.memo())
    return {
        "id": export_id,
        **_definition(memo),
        "paused": state.paused,
        **_notes(memo, state),
        "watermark": watermark,
        "createdAt": _iso(info.created_at),
        "actions": info.num_actions,
        "nextRunTimes": [_iso(moment) for moment in info.next_action_times[:5]],
        "recentRuns": [
            {
                "scheduledAt": _iso(action.scheduled_at),
                "startedAt": _iso(action.started_at),
                "workflowId": getattr(action.action, "workflow_id", None),
            }
            for action in info.recent_actions
        ],
        "runningWorkflowIds": [
            getattr(running, "workflow_id", None) for running in info.running_actions
        ],
    }


def _spec(body: ExportScheduleCreate) -> ScheduleSpec:
    if (body.interval is None) == (body.cron is None):
        raise ApiError(400, "interval: give either an interval or a cron expression, not both")
    if body.interval is not None:
        if body.interval < timedelta(seconds=1):
            raise ApiError(400, "interval: must be at least 1 second")
        if body.timezone is not None:
            raise ApiError(400, "timezone: applies to a cron expression only")
        return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=body.interval)])
    assert body.cron is not None
    if len(body.cron.split()) != 5:
        raise ApiError(400, "cron: must have five fields (minute hour day month weekday)")
    if body.timezone is not None:
        try:
            zoneinfo.ZoneInfo(body.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ApiError(400, f"timezone: unknown time zone {body.timezone!r}") from None
    return ScheduleSpec(cron_expressions=[body.cron], time_zone_name=body.timezone)


@router.post(
    SCHEDULES,
    status_code=http_status.HTTP_201_CREATED,
    summary="Create an export schedule",
    dependencies=WRITE,
)
async def create_export_schedule(
    body: ExportScheduleCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    spec = _spec(body)
    try:
        roots = allowed_roots(settings.export_destinations, settings.data_dir)
        destination = check_destination(body.destination, roots)
    except LocationRefused as exc:
        raise ApiError(400, f"destination: {exc}") from None
    mark = await session.get(ExportWatermark, body.id)
    if mark is not None and mark.dataset != body.dataset.value:
        raise ApiError(
            409,
            f"id: export {body.id!r} has copied dataset {mark.dataset} (its runs and watermark "
            "are kept); choose another id",
        )
    definition = {
        "dataset": body.dataset.value,
        "format": body.format.value,
        "destination": destination,
        "startFrom": _iso(body.startFrom),
        "interval": _DURATION.dump_python(body.interval, mode="json") if body.interval else None,
        "cron": body.cron,
        "timezone": body.timezone,
        "note": body.note,
    }
    action = EXPORT_PROCESS.schedule_action(
        ExportInput(
            export_id=body.id,
            dataset=body.dataset.value,
            format=body.format.value,
            destination=destination,
            start_from=body.startFrom,
        ),
        body.id,
        task_queue=settings.task_queue,
    )
    schedule = Schedule(
        action=action,
        spec=spec,
        # A run copies everything since the last one, so a missed or overlapping time needs
        # no run of its own: skip it.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(
            paused=body.paused, note="created paused through the hub API" if body.paused else None
        ),
    )
    try:
        handle = await temporal.create_schedule(
            _schedule_id(body.id), schedule, memo=definition, rpc_timeout=RPC_TIMEOUT
        )
    except ScheduleAlreadyRunningError:
        raise ApiError(409, f"id: an export schedule {body.id!r} exists already") from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT and "schedule spec" in exc.message:
            field = "cron" if body.cron else "interval"
            raise ApiError(400, f"{field}: {exc.message}") from None
        raise _refused(exc, body.id) from exc
    response.headers["Location"] = f"{str(request.base_url).rstrip('/')}{SCHEDULES}/{body.id}"
    described = await handle.describe(rpc_timeout=RPC_TIMEOUT)
    return await _schedule_json(body.id, described, _iso(mark.watermark) if mark else None)


@router.get(SCHEDULES, summary="List export schedules", dependencies=READ)
async def list_export_schedules(response: Response, temporal: TemporalDep) -> list[dict[str, Any]]:
    # Temporal's schedule list is eventually consistent: a schedule created a moment ago may
    # not be listed yet (GET /exportSchedules/{id} sees it at once).
    rows = []
    try:
        async for entry in await temporal.list_schedules(rpc_timeout=RPC_TIMEOUT):
            if not entry.id.startswith(SCHEDULE_PREFIX):
                continue
            state = entry.schedule.state if entry.schedule else None
            memo = dict(await entry.memo())
            rows.append(
                {
                    "id": entry.id.removeprefix(SCHEDULE_PREFIX),
                    **_definition(memo),
                    "paused": state.paused if state else None,
                    **_notes(memo, state),
                    "nextRunTimes": [
                        _iso(moment)
                        for moment in (entry.info.next_action_times[:5] if entry.info else [])
                    ],
                }
            )
    except RPCError as exc:
        raise temporal_unreachable(exc) or ApiError(
            503, f"Temporal refused the request ({exc.status.name})"
        ) from exc
    rows.sort(key=lambda row: row["id"])
    response.headers["X-Total-Count"] = str(len(rows))
    response.headers["X-Result-Count"] = str(len(rows))
    return rows


@router.get(f"{SCHEDULES}/{{export_id}}", summary="Describe an export schedule", dependencies=READ)
async def get_export_schedule(
    export_id: str, session: SessionDep, temporal: TemporalDep
) -> dict[str, Any]:
    handle = _handle(temporal, export_id)
    try:
        described = await handle.describe(rpc_timeout=RPC_TIMEOUT)
    except RPCError as exc:
        raise _refused(exc, export_id) from exc
    return await _schedule_json(export_id, described, await _watermark(session, export_id))


async def _set_paused(temporal: Client, export_id: str, paused: bool, reason: str | None) -> None:
    handle = _handle(temporal, export_id)
    try:
        if paused:
            await handle.pause(note=reason or "paused through the hub API", rpc_timeout=RPC_TIMEOUT)
        else:
            await handle.unpause(
                note=reason or "unpaused through the hub API", rpc_timeout=RPC_TIMEOUT
            )
    except RPCError as exc:
        raise _refused(exc, export_id) from exc


@router.post(
    f"{SCHEDULES}/{{export_id}}/pause", summary="Pause an export schedule", dependencies=WRITE
)
async def pause_export_schedule(
    export_id: str, session: SessionDep, temporal: TemporalDep, body: PauseBody | None = None
) -> dict[str, Any]:
    await _set_paused(temporal, export_id, True, body.why if body else None)
    return await get_export_schedule(export_id, session, temporal)


@router.post(
    f"{SCHEDULES}/{{export_id}}/unpause", summary="Unpause an export schedule", dependencies=WRITE
)
async def unpause_export_schedule(
    export_id: str, session: SessionDep, temporal: TemporalDep, body: PauseBody | None = None
) -> dict[str, Any]:
    await _set_paused(temporal, export_id, False, body.why if body else None)
    return await get_export_schedule(export_id, session, temporal)


@router.post(
    f"{SCHEDULES}/{{export_id}}/trigger",
    status_code=http_status.HTTP_202_ACCEPTED,
    summary="Run an export now (also when paused)",
    dependencies=WRITE,
)
async def trigger_export_schedule(export_id: str, temporal: TemporalDep) -> dict[str, Any]:
    handle = _handle(temporal, export_id)
    try:
        # Queued behind a run in progress rather than skipped: a person asked for this one.
        await handle.trigger(overlap=ScheduleOverlapPolicy.BUFFER_ALL, rpc_timeout=RPC_TIMEOUT)
    except RPCError as exc:
        raise _refused(exc, export_id) from exc
    return {"accepted": True, "id": export_id}


@router.post(
    f"{SCHEDULES}/{{export_id}}/backfill",
    status_code=http_status.HTTP_202_ACCEPTED,
    summary="Run an export for each of its schedule times in a range",
    dependencies=WRITE,
)
async def backfill_export_schedule(
    export_id: str, body: BackfillBody, temporal: TemporalDep
) -> dict[str, Any]:
    if body.end <= body.start:
        raise ApiError(400, "end: must be after start")
    handle = _handle(temporal, export_id)
    try:
        described = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        intervals = described.schedule.spec.intervals
        if intervals and (body.end - body.start) / min(i.every for i in intervals) > (
            MAX_BACKFILL_RUNS
        ):
            raise ApiError(
                400, f"end: the range holds more than {MAX_BACKFILL_RUNS} runs of this schedule"
            )
        # One after the other, oldest first: each run's window starts where the last one ended.
        await handle.backfill(
            ScheduleBackfill(
                start_at=body.start, end_at=body.end, overlap=ScheduleOverlapPolicy.BUFFER_ALL
            ),
            rpc_timeout=RPC_TIMEOUT,
        )
    except RPCError as exc:
        raise _refused(exc, export_id) from exc
    return {"accepted": True, "id": export_id, "start": _iso(body.start), "end": _iso(body.end)}


@router.delete(
    f"{SCHEDULES}/{{export_id}}",
    status_code=http_status.HTTP_204_NO_CONTENT,
    summary="Delete an export schedule (its runs and watermark are kept)",
    dependencies=WRITE,
)
async def delete_export_schedule(export_id: str, temporal: TemporalDep) -> Response:
    handle = _handle(temporal, export_id)
    try:
        await handle.delete(rpc_timeout=RPC_TIMEOUT)
    except RPCError as exc:
        raise _refused(exc, export_id) from exc
    return Response(status_code=http_status.HTTP_204_NO_CONTENT)


@router.get(RUNS, summary="List export runs, newest first", dependencies=READ)
async def list_export_runs(
    response: Response,
    session: SessionDep,
    exportId: str | None = None,
    status: str | None = Query(default=None, description="running, completed or failed"),
    since: AwareDatetime | None = Query(default=None, description="started at or after"),
    until: AwareDatetime | None = Query(default=None, description="started before"),
    offset: Offset = 0,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    one_of("status", status, ExportRunStatus)
    conditions: list[Any] = []
    if exportId is not None:
        conditions.append(col(ExportRun.export_id) == exportId)
    if status is not None:
        conditions.append(col(ExportRun.status) == status)
    if since is not None:
        conditions.append(col(ExportRun.started_at) >= since)
    if until is not None:
        conditions.append(col(ExportRun.started_at) < until)
    runs = await page(
        session,
        ExportRun,
        conditions,
        [col(ExportRun.started_at).desc(), col(ExportRun.id).desc()],
        offset=offset,
        limit=limit,
        response=response,
    )
    return [run_json(run) for run in runs]


@router.get(f"{RUNS}/{{run_id}}", summary="Read one export run", dependencies=READ)
async def get_export_run(run_id: str, session: SessionDep) -> dict[str, Any]:
    run = await session.get(ExportRun, run_id)
    if run is None:
        raise ApiError(404, f"no export run {run_id!r}")
    return run_json(run)
