"""Export activities: read one dataset of the hub database in batches, write it through the
files adapter, and keep the run record and the export's watermark in the hub database.

A run copies the rows whose change time lies in ``(after, until]``: ``after`` is the export's
watermark (or its ``start_from``, or nothing on a first run), ``until`` the schedule's time for
the run, but never later than now minus ``export_settle_lag``. Rows are read through a
server-side cursor ``export_batch_size`` at a time, converted to Arrow and written off the event
loop, so memory stays flat whatever the table size and heartbeats keep flowing. What each
dataset reads (its rows, columns, change time and partition date) is :mod:`hub.datasets`'s.

A row changed again after it was exported is exported again by a later run (orders move
through states, dead letters are decided): the exports are change feeds, latest version wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.definitions import HUB, defn
from activities.errors import outside_call
from activities.policies import SystemPolicy
from adapters.files import Files, WriterOptions
from hub.datasets import DATASETS, Chunk, Dataset, Window
from hub.db import session_scope
from hub.errors import PermanentError, TransientError
from hub.exports import (
    ExportFormat,
    ExportRunStatus,
    allowed_roots,
    check_destination,
)
from hub.models import ExportRun, ExportWatermark, utcnow
from hub.paths import LocationRefused
from hub.settings import Settings

# --- Inputs and results ---------------------------------------------------------------------


@dataclass
class ExportOptions:
    """What the export workflow needs from settings (read once, recorded in history)."""

    batch_size: int
    row_group_rows: int
    max_rows_per_file: int
    write_timeout: float
    heartbeat_timeout: float
    write_attempts: int
    #: The hub database's retry policy, for the run record and watermark steps.
    hub: SystemPolicy


@dataclass
class BeginExportInput:
    run_id: str
    export_id: str
    workflow_id: str
    dataset: str
    format: str
    destination: str
    scheduled_at: datetime | None = None
    start_from: datetime | None = None


@dataclass
class BeginExportResult:
    run_id: str
    #: The window of change times this run copies: ``(after, until]``.
    after: datetime | None
    until: datetime


@dataclass
class WriteExportInput:
    run_id: str
    export_id: str
    dataset: str
    format: str
    destination: str
    after: datetime | None
    until: datetime
    batch_size: int
    row_group_rows: int
    max_rows_per_file: int


@dataclass
class WriteExportResult:
    rows: int
    files: int
    bytes: int
    manifest_uri: str


@dataclass
class FinishExportInput:
    run_id: str
    export_id: str
    dataset: str
    after: datetime | None
    until: datetime
    rows: int
    files: int
    bytes: int
    manifest_uri: str


@dataclass
class FailExportInput:
    run_id: str
    error: str


# --- Activities -----------------------------------------------------------------------------


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


class ExportActivities:
    """The export steps; the hub database and the files adapter come from the worker."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], files: Files, settings: Settings
    ) -> None:
        self.sessions = sessions
        self.files = files
        self.settings = settings

    @defn("exports.options", system=HUB)
    async def options(self) -> ExportOptions:
        settings, hub = self.settings, self.settings.retry_for("hub")
        return ExportOptions(
            batch_size=settings.export_batch_size,
            row_group_rows=settings.export_row_group_rows,
            max_rows_per_file=settings.export_max_rows_per_file,
            write_timeout=settings.export_write_timeout.total_seconds(),
            heartbeat_timeout=settings.export_heartbeat_timeout.total_seconds(),
            write_attempts=settings.export_write_attempts,
            hub=SystemPolicy(
                initial_interval=hub.initial_interval.total_seconds(),
                backoff_coefficient=hub.backoff_coefficient,
                maximum_interval=hub.maximum_interval.total_seconds(),
                maximum_attempts=hub.maximum_attempts,
                attempt_timeout=hub.attempt_timeout.total_seconds(),
                schedule_to_close=(
                    hub.schedule_to_close.total_seconds() if hub.schedule_to_close else None
                ),
            ),
        )

    @defn("exports.begin", system=HUB)
    async def begin(self, data: BeginExportInput) -> BeginExportResult:
        """Record the run and fix its window; a retry finds the run and answers the same."""
        async with session_scope(self.sessions) as session:
            run = await session.get(ExportRun, data.run_id)
            if run is not None and run.watermark_to is not None:
                return BeginExportResult(run.id, run.watermark_from, run.watermark_to)
            mark = await session.get(ExportWatermark, data.export_id)
            if mark is not None and mark.dataset != data.dataset:
                raise ApplicationError(
                    f"export {data.export_id} has a watermark for dataset {mark.dataset}, "
                    f"not {data.dataset}",
                    type="WatermarkMismatch",
                    non_retryable=True,
                )
            after = mark.watermark if mark is not None else data.start_from
            now = utcnow()
            until = now - self.settings.export_settle_lag
            if data.scheduled_at is not None and data.scheduled_at < until:
                until = data.scheduled_at
            if after is not None and until < after:
                until = after  # a backfilled time the watermark has passed: an empty window
            session.add(
                ExportRun(
                    id=data.run_id,
                    export_id=data.export_id,
                    workflow_id=data.workflow_id,
                    dataset=data.dataset,
                    format=data.format,
                    destination=data.destination,
                    status=ExportRunStatus.RUNNING,
                    scheduled_at=data.scheduled_at,
                    watermark_from=after,
                    watermark_to=until,
                    started_at=now,
                )
            )
        return BeginExportResult(data.run_id, after, until)

    @defn("exports.write")
    async def write(self, data: WriteExportInput) -> WriteExportResult:
        """Write the window's rows as part files and publish them with the manifest.

        An empty window publishes a manifest with no files: every run leaves a manifest, so a
        consumer can tell "nothing changed" from "the run did not happen", and no empty file
        invents a date partition.
        """
        dataset = DATASETS.get(data.dataset)
        if dataset is None:
            raise ApplicationError(
                f"unknown dataset {data.dataset!r}", type="UnknownDataset", non_retryable=True
            )
        with outside_call():
            try:
                roots = allowed_roots(self.settings.export_destinations, self.settings.data_dir)
                destination_uri = check_destination(data.destination, roots)
            except LocationRefused as exc:
                raise PermanentError(f"destination: {exc}", system="files") from exc
            destination = await asyncio.to_thread(self.files.destination, destination_uri)
            writer = destination.writer(
                dataset=dataset.name.value,
                export_id=data.export_id,
                run_id=data.run_id,
                format=data.format,
                options=WriterOptions(
                    row_group_rows=data.row_group_rows, max_rows_per_file=data.max_rows_per_file
                ),
            )
            # Every call on the writer goes through one thread, in order: an abort waits for a
            # write still running (a cancelled await does not stop the thread).
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-write")
            loop = asyncio.get_running_loop()

            def in_writer_thread(function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
                return loop.run_in_executor(executor, function, *args)

            try:
                await in_writer_thread(writer.start)
                rows = await self._write_rows(dataset, writer, data, in_writer_thread)
                manifest = {
                    "exportId": data.export_id,
                    "runId": data.run_id,
                    "dataset": dataset.name.value,
                    "format": data.format,
                    "compression": "zstd" if data.format == ExportFormat.PARQUET else None,
                    "createdAt": _iso(utcnow()),
                    "watermark": {
                        "column": dataset.watermark,
                        "after": _iso(data.after),
                        "until": _iso(data.until),
                    },
                    "partitioning": {"date": dataset.partition},
                }
                published = await in_writer_thread(writer.publish, manifest, dataset.schema)
            except BaseException:
                await asyncio.shield(in_writer_thread(writer.abort))
                raise
            finally:
                executor.shutdown(wait=False)
        activity.logger.info(
            "export %s run %s: %d rows in %d files",
            data.export_id,
            data.run_id,
            rows,
            len(published.files),
        )
        return WriteExportResult(
            rows=published.rows,
            files=len(published.files),
            bytes=published.bytes,
            manifest_uri=published.manifest_uri,
        )

    async def _write_rows(
        self,
        dataset: Dataset,
        writer: Any,
        data: WriteExportInput,
        in_writer_thread: Callable[..., asyncio.Future[Any]],
    ) -> int:
        """Read batch n+1 while batch n is converted and written in the writer's thread (the
        database driver and the compression release the GIL): at most two batches in memory."""
        window = Window(data.after, data.until)
        rows = 0
        writing: asyncio.Future[int] | None = None
        try:
            async with self.sessions() as session:
                async for chunk in dataset.chunks(session, self.files, window, data.batch_size):
                    if writing is not None:
                        rows += await writing
                        activity.heartbeat({"rows": rows, "files": writer.files_written})
                    writing = in_writer_thread(self._write_chunk, writer, chunk)
            if writing is not None:
                rows += await writing
                activity.heartbeat({"rows": rows, "files": writer.files_written})
        except DBAPIError as exc:
            raise TransientError(
                f"reading {dataset.name.value}: {type(exc.orig).__name__}", system="hub"
            ) from exc
        finally:
            if writing is not None:
                # On the way out with an error, the write in flight ends on its own (the
                # abort queues behind it); its outcome is no longer anyone's business.
                writing.add_done_callback(_consume)
        return rows

    @staticmethod
    def _write_chunk(writer: Any, chunk: Chunk) -> int:
        written = 0
        for partition, batch in chunk():
            writer.write(partition, batch)
            written += batch.num_rows
        return written

    @defn("exports.finish", system=HUB)
    async def finish(self, data: FinishExportInput) -> None:
        """Move the watermark to the run's ``until`` and close the run, in one transaction.

        The watermark must still be where the run began; if another run moved it meanwhile
        (two runs of one export at once), this one fails rather than skip or repeat rows.
        """
        async with session_scope(self.sessions) as session:
            run = await session.get(ExportRun, data.run_id)
            if run is None:
                raise ApplicationError(
                    f"export run {data.run_id} is not recorded", type="RunMissing"
                )
            if run.status == ExportRunStatus.COMPLETED:
                return  # a retry after the commit
            mark = await session.get(ExportWatermark, data.export_id, with_for_update=True)
            if mark is not None and mark.watermark != data.after:
                raise ApplicationError(
                    f"export {data.export_id}: the watermark moved to {_iso(mark.watermark)} "
                    f"while run {data.run_id} copied from {_iso(data.after)}",
                    type="WatermarkMoved",
                    non_retryable=True,
                )
            now = utcnow()
            if mark is None:
                mark = ExportWatermark(
                    export_id=data.export_id,
                    dataset=data.dataset,
                    watermark=data.until,
                    run_id=data.run_id,
                )
            mark.watermark, mark.run_id, mark.updated_at = data.until, data.run_id, now
            session.add(mark)
            run.status = ExportRunStatus.COMPLETED
            run.finished_at = now
            run.rows, run.files, run.bytes = data.rows, data.files, data.bytes
            run.manifest_uri = data.manifest_uri
            session.add(run)

    @defn("exports.fail", system=HUB)
    async def fail(self, data: FailExportInput) -> None:
        """Close the run as failed; the watermark stays where it was."""
        async with session_scope(self.sessions) as session:
            run = await session.get(ExportRun, data.run_id)
            if run is None or run.status != ExportRunStatus.RUNNING:
                return
            run.status = ExportRunStatus.FAILED
            run.finished_at = utcnow()
            run.error_message = data.error[:2000]
            session.add(run)
