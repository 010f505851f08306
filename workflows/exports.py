"""Export: one run of a scheduled export, copying what changed since the last run.

A Temporal Schedule starts it (every interval or cron time, on trigger, or once per time of a
backfill). The run takes the schedule's time for it from ``TemporalScheduledStartTime`` and:

1. records itself and fixes its window ``(watermark, scheduled time]`` (``exports.begin``);
2. writes the window's rows as part files, then publishes them and the manifest
   (``exports.write``, on the ``<task queue>.exports`` queue, heartbeating);
3. moves the watermark to the end of the window and closes the run (``exports.finish``).

The watermark moves only in step 3, after the files and manifest are in place; a failed write
publishes nothing, records the run ``failed`` and leaves the watermark, so the next run copies
the same rows. Inputs and results are small: rows travel as files, never through history.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.runtime import ProcessContract, ProcessWorkflow, policy_options

with workflow.unsafe.imports_passed_through():
    from activities.exports import (
        BeginExportInput,
        ExportActivities,
        ExportOptions,
        FailExportInput,
        FinishExportInput,
        WriteExportInput,
    )
    from hub import search_attributes as sa

WORKFLOW_NAME = "Export"
PROCESS_KIND = "export"
#: The task queue suffix of the write activity: bulk work on a queue of its own, so it can run
#: on dedicated workers and never delays an order's steps.
EXPORTS_QUEUE = "exports"
#: Set by Temporal on every workflow a schedule starts: the schedule's time for the run.
SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
#: Reading settings is local and quick; this bounds only that first step.
OPTIONS_TIMEOUT = timedelta(seconds=10)


@dataclass
class ExportInput:
    """What a schedule's action carries: the export and its definition."""

    export_id: str
    dataset: str
    format: str
    #: A normalized destination URI (``file:///...``, ``s3://bucket/prefix``).
    destination: str
    #: Where a first run starts (exclusive); None: from the first row.
    start_from: datetime | None = None


@dataclass
class ExportResult:
    run_id: str
    rows: int
    files: int
    bytes: int
    manifest_uri: str
    #: The window copied: ``(after, until]``.
    after: datetime | None
    until: datetime


def _message(err: BaseException) -> str:
    cause: BaseException | None = err
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    return str(getattr(cause, "message", None) or cause or err)


def run_id_for(scheduled: datetime, suffix: str) -> str:
    """Run ids sort by schedule time: ``20260115T010000Z-1a2b3c4d``."""
    return f"{scheduled:%Y%m%dT%H%M%SZ}-{suffix}"


@workflow.defn(name=WORKFLOW_NAME)
class ExportWorkflow(ProcessWorkflow):
    def __init__(self) -> None:
        self._run_id: str | None = None
        self._phase = "starting"

    @workflow.query
    def progress(self) -> dict[str, str | None]:
        """Which run this is and where it stands (rows so far are in the write's heartbeat)."""
        return {"runId": self._run_id, "phase": self._phase}

    @workflow.run
    async def run(self, data: ExportInput) -> ExportResult:
        options: ExportOptions = await workflow.execute_local_activity_method(
            ExportActivities.options, start_to_close_timeout=OPTIONS_TIMEOUT
        )
        hub = policy_options(options.hub)
        info = workflow.info()
        scheduled = info.typed_search_attributes.get(SCHEDULED_START_TIME)
        self._run_id = run_id_for(scheduled or workflow.now(), workflow.uuid4().hex[:8])
        workflow.set_current_details(f"export **{data.export_id}**: run `{self._run_id}`")
        self._phase = "beginning"
        begun = await workflow.execute_activity_method(
            ExportActivities.begin,
            BeginExportInput(
                run_id=self._run_id,
                export_id=data.export_id,
                workflow_id=info.workflow_id,
                dataset=data.dataset,
                format=data.format,
                destination=data.destination,
                scheduled_at=scheduled,
                start_from=data.start_from,
            ),
            **hub,
        )
        self._phase = "writing"
        try:
            written = await workflow.execute_activity_method(
                ExportActivities.write,
                WriteExportInput(
                    run_id=begun.run_id,
                    export_id=data.export_id,
                    dataset=data.dataset,
                    format=data.format,
                    destination=data.destination,
                    after=begun.after,
                    until=begun.until,
                    batch_size=options.batch_size,
                    row_group_rows=options.row_group_rows,
                    max_rows_per_file=options.max_rows_per_file,
                ),
                task_queue=f"{info.task_queue}.{EXPORTS_QUEUE}",
                start_to_close_timeout=timedelta(seconds=options.write_timeout),
                heartbeat_timeout=timedelta(seconds=options.heartbeat_timeout),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    maximum_attempts=options.write_attempts,
                ),
            )
            self._phase = "recording"
            await workflow.execute_activity_method(
                ExportActivities.finish,
                FinishExportInput(
                    run_id=begun.run_id,
                    export_id=data.export_id,
                    dataset=data.dataset,
                    after=begun.after,
                    until=begun.until,
                    rows=written.rows,
                    files=written.files,
                    bytes=written.bytes,
                    manifest_uri=written.manifest_uri,
                ),
                **hub,
            )
        except (ActivityError, asyncio.CancelledError) as err:
            self._phase = "failed"
            reason = "cancelled" if isinstance(err, asyncio.CancelledError) else _message(err)
            await workflow.execute_activity_method(
                ExportActivities.fail, FailExportInput(begun.run_id, reason), **hub
            )
            workflow.upsert_search_attributes([sa.HUB_STATUS.value_set(sa.HubStatus.FAILED.value)])
            if isinstance(err, asyncio.CancelledError):
                raise
            raise ApplicationError(
                f"export {data.export_id} run {begun.run_id} failed: {reason}",
                type="ExportFailed",
                non_retryable=True,
            ) from err
        self._phase = "completed"
        workflow.upsert_search_attributes([sa.HUB_STATUS.value_set(sa.HubStatus.COMPLETED.value)])
        return ExportResult(
            run_id=begun.run_id,
            rows=written.rows,
            files=written.files,
            bytes=written.bytes,
            manifest_uri=written.manifest_uri,
            after=begun.after,
            until=begun.until,
        )


#: Export workflows are started by their schedules only: ``export-<export id>``, to which
#: Temporal appends the schedule's time.
CONTRACT: ProcessContract[ExportInput] = ProcessContract(
    name=WORKFLOW_NAME,
    kind=PROCESS_KIND,
    run=ExportWorkflow.run,
    workflow_id_prefix="export-",
    summary=lambda data: f"export {data.export_id}: {data.dataset} as {data.format}",
    log_field="exportId",
)
