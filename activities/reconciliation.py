"""Activities of billing reconciliation: the data work (split, reconcile, finalize) and its record.

The data activities are synchronous: they are CPU-bound (Arrow and numpy, which release the
GIL), so the worker runs them in a thread pool on their own task queue, never on the event
loop that drives the other activities. Bulk data never crosses Temporal: each activity reads
its inputs from the run's workspace and writes its outputs there, answering with counts and
keys; so two activities of a run may run on workers of two hosts when the workspace is on
object storage (``HUB_RECONCILIATION_WORKSPACE``, see ``hub.reconciliation.workspace``).

Every file the activities read is checked where it is read (``hub.paths``): the run's sources,
and each file listed under them, must resolve inside ``HUB_RECONCILIATION_SOURCE_ROOTS`` (or
the run's copy of billing's export), whatever the API accepted when the run or its schedule was
made; a symlink in a source folder that leads out is refused. The workspace's keys are checked
each time they are used (locally: they must resolve inside the reconciliation folder). A
refusal is a permanent error: the run fails, it does not retry.

A run's workspace (``<reconciliation_dir>/<run id>/``, or ``<workspace prefix>/<run id>/``)::

    billing-export/             billing's usage export, copied from the billing system
    work/network/00000.arrow    the split of network input file 0 (one batch per partition)
    work/billing/00000.arrow
    work/parts/part-00000.parquet   a partition's discrepancies
    discrepancies.parquet       the run's result, kept; ``work/`` is removed at the end
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import delete
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.definitions import HUB, defn
from activities.errors import outside_call
from adapters import usage_files
from adapters.billing_export import BillingExportClient
from hub.db import session_scope
from hub.errors import HubError, PermanentError, TransientError
from hub.models import ReconciliationCategory, ReconciliationRun, ReconciliationStatus, utcnow
from hub.paths import LocationRefused, check_location
from hub.reconciliation import engine
from hub.reconciliation.engine import PartitionSummary, Tolerances
from hub.reconciliation.workspace import Store, check_key, store_of
from hub.redact import redact_uri
from hub.settings import Settings
from hub.usage import Tariff

#: ``billing_source`` value that means: fetch billing's usage export from the billing system.
BILLING_SYSTEM = "billing-system"
SUBSCRIPTIONS_FILE = "subscriptions.parquet"
SIDES = ("network", "billing")


# --- Inputs and results ----------------------------------------------------------------------


@dataclass
class ReconciliationDefaults:
    """What a run takes from the worker's settings where its input says nothing."""

    network_source: str
    billing_source: str
    leakage_threshold_pct: float
    parallelism: int
    heartbeat_timeout: float


@dataclass
class ListSourcesInput:
    run_id: str
    network_source: str
    billing_source: str
    #: 0: chosen from the input size.
    partitions: int = 0


@dataclass
class ListSourcesResult:
    """How the input was cut into split tasks; the file lists stay in the workspace."""

    network_files: int
    billing_files: int
    #: Split tasks per side: consecutive files of about ``reconciliation_task_bytes``.
    network_tasks: int
    billing_tasks: int
    bytes: int
    partitions: int


@dataclass
class FetchExportInput:
    run_id: str


@dataclass
class FetchExportResult:
    folder: str
    files: int
    bytes: int


@dataclass
class SplitInput:
    run_id: str
    side: str  # network | billing
    #: Which of the side's split tasks (its files are listed in the workspace).
    index: int
    partitions: int
    period_start: datetime
    period_end: datetime
    tariffs: list[Tariff]
    #: Read this many seconds beyond the period (the tolerated clock skew between the sides).
    margin_seconds: float = 0.0


@dataclass
class SplitResult:
    side: str
    index: int
    files: int
    rows_read: int
    rows_kept: int
    bytes: int


@dataclass
class ReconcilePartitionInput:
    run_id: str
    partition: int
    partitions: int
    network_tasks: int
    billing_tasks: int
    tariffs: list[Tariff]
    period_start: datetime
    period_end: datetime
    tolerances: Tolerances = field(default_factory=Tolerances)


@dataclass
class ReconcilePartitionResult:
    partition: int
    summary: PartitionSummary


@dataclass
class FinalizeInput:
    run_id: str
    partitions: int
    keep_work: bool = False


@dataclass
class DiscardInput:
    run_id: str


@dataclass
class FinalizeResult:
    uri: str
    rows: int
    bytes: int


@dataclass
class RecordReconciliationInput:
    """The run's row in the hub database: created, progressed, finished (idempotent)."""

    run_id: str
    workflow_id: str
    period_start: datetime
    period_end: datetime
    status: str
    currency: str = "EUR"
    parameters: dict[str, Any] = field(default_factory=dict)
    summary: PartitionSummary | None = None
    discrepancy_uri: str | None = None
    case_id: str | None = None
    error_message: str | None = None


# --- Workspace -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    """A run's files in the reconciliation store, by key (``hub.reconciliation.workspace``):
    every key is checked where the store turns it into a path."""

    store: Store
    run_id: str

    @classmethod
    def of(cls, settings: Settings, run_id: str, store: Store | None = None) -> Workspace:
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise PermanentError(f"run id {run_id!r} cannot name a folder", system="hub")
        store = store or store_of(settings)
        store.uri(run_id)  # a local run folder that links out is refused now
        return cls(store, run_id)

    @property
    def sources(self) -> str:
        """The run's input files, grouped into split tasks (written by ``list_sources``)."""
        return f"{self.work}/sources.json"

    def read_sources(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.store.read_text(self.sources)))
        except FileNotFoundError as exc:
            raise PermanentError(
                f"{self.store.uri(self.sources)} is gone: the run's workspace was removed",
                system="files",
            ) from exc

    @property
    def export(self) -> str:
        return f"{self.run_id}/billing-export"

    @property
    def export_uri(self) -> str:
        """The folder of the run's copy of billing's export, as sources name it."""
        return self.store.uri(self.export)

    @property
    def work(self) -> str:
        return f"{self.run_id}/work"

    def split(self, side: str, index: int) -> str:
        if side not in SIDES:
            raise PermanentError(f"no side {side!r}: {' or '.join(SIDES)}", system="hub")
        return f"{self.work}/{side}/{index:05d}.arrow"

    def open_splits(self, side: str, count: int) -> list[pa.NativeFile]:
        opened, missing = [], []
        for index in range(count):
            try:
                opened.append(self.store.open_input(self.split(side, index)))
            except FileNotFoundError:
                missing.append(f"{index:05d}.arrow")
        if missing:
            # The workflow only reconciles once every split finished: the workspace is gone.
            raise PermanentError(
                f"{side} splits missing from {self.store.uri(self.work)}: {', '.join(missing[:5])}",
                system="hub",
            )
        return opened

    def part(self, partition: int) -> str:
        return f"{self.work}/parts/part-{partition:05d}.parquet"

    @property
    def result(self) -> str:
        return f"{self.run_id}/discrepancies.parquet"

    def discard(self) -> None:
        """The intermediate files; the result, if any, stays."""
        self.store.remove(self.work)
        self.store.remove(self.export)


def _data_errors(func: Any) -> Any:
    """Map the hub's errors onto Temporal's retry model, as ``outside_call`` does, for the
    synchronous data activities; a malformed value is a permanent error naming its file."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with outside_call():
            try:
                return func(*args, **kwargs)
            except HubError:
                raise
            except (pa.ArrowInvalid, ValueError, TypeError) as exc:
                raise PermanentError(str(exc), system="reconciliation") from exc
            except OSError as exc:
                raise TransientError(f"{type(exc).__name__}: {exc}", system="files") from exc

    return wrapper


def checked_source(source: str, settings: Settings, *, also: Sequence[str | Path] = ()) -> str:
    """``source`` as the hub reads it: ``billing-system``, or the canonical URI of a location
    (a relative path taken from the working directory) that resolves, symlinks followed, under
    ``HUB_RECONCILIATION_SOURCE_ROOTS`` or one of the folders ``also`` names, and carries no
    credentials (see ``hub.paths``). Raises :class:`~hub.paths.LocationRefused` saying why not.
    """
    if source == BILLING_SYSTEM:
        return source
    location = check_location(
        source,
        [*settings.resolved_source_roots, *(str(folder) for folder in also)],
        what="an allowed source",
        setting="HUB_RECONCILIATION_SOURCE_ROOTS",
        relative_to=os.getcwd(),
    )
    return location.uri


def _tasks(files: list[usage_files.UsageFile], target: int) -> list[list[str]]:
    """Consecutive files in groups of about ``target`` bytes: one split activity each, so a
    day of small per-minute files is not ten thousand activities."""
    tasks: list[list[str]] = []
    size = target
    for item in files:
        if size >= target:
            tasks.append([])
            size = 0
        tasks[-1].append(item.uri)
        size += item.size
    return tasks


def _auto_partitions(total_bytes: int, target: int, limit: int) -> int:
    """The power of two that gives partitions of about ``target`` input bytes."""
    wanted = max(1, -(-total_bytes // max(target, 1)))
    return min(1 << (wanted - 1).bit_length(), limit)


# --- The activities --------------------------------------------------------------------------


class ReconciliationActivities:
    def __init__(
        self, settings: Settings, export: BillingExportClient, store: Store | None = None
    ) -> None:
        self.settings = settings
        self.export = export
        self.store = store or store_of(settings)
        # Partitions run in threads: they share billing's subscriptions, read once per run.
        self._subscriptions_lock = threading.Lock()
        self._subscriptions: tuple[tuple[str, str, tuple[str, ...]] | None, engine.PlanLookup] = (
            None,
            engine.PlanLookup.empty(),
        )

    @defn("reconciliation.defaults", system=HUB)
    async def defaults(self) -> ReconciliationDefaults:
        settings = self.settings
        return ReconciliationDefaults(
            network_source=settings.resolved_network_source,
            billing_source=settings.reconciliation_billing_source,
            leakage_threshold_pct=settings.reconciliation_leakage_threshold_pct,
            parallelism=settings.reconciliation_parallelism,
            heartbeat_timeout=settings.reconciliation_heartbeat_timeout.total_seconds(),
        )

    def _workspace(self, run_id: str) -> Workspace:
        return Workspace.of(self.settings, run_id, self.store)

    @defn("billing.fetch_usage_export")
    async def fetch_usage_export(self, data: FetchExportInput) -> FetchExportResult:
        """Copy billing's usage export into the run's workspace, checking every checksum.

        Files already copied with the right size are kept: a retry resumes the copy. Off the
        local disk (S3), each file is downloaded into a temporary folder, then uploaded.
        """
        workspace = self._workspace(data.run_id)
        store = workspace.store
        # Locally, an empty export is an empty folder: an empty billing side.
        folder = store.local_folder(workspace.export)
        copied = {
            item.name: item.size for item in await asyncio.to_thread(store.list, workspace.export)
        }
        total = 0
        with outside_call(), tempfile.TemporaryDirectory(prefix="hub-export-") as scratch:
            files = await self.export.list_files()
            for number, item in enumerate(files, start=1):
                if copied.get(item.name) != item.size:

                    def beat(done: int, number: int = number) -> None:
                        activity.heartbeat(f"file {number}/{len(files)}: {done} bytes")

                    if folder is not None:
                        await self.export.fetch(item, folder, progress=beat)
                    else:
                        key = check_key(f"{workspace.export}/{item.name}")
                        local = await self.export.fetch(item, Path(scratch), progress=beat)
                        await asyncio.to_thread(store.upload, local, key)
                        local.unlink()
                total += item.size
                activity.heartbeat(f"{number}/{len(files)} files")
        return FetchExportResult(workspace.export_uri, len(files), total)

    @defn("reconciliation.list_sources")
    @_data_errors
    def list_sources(self, data: ListSourcesInput) -> ListSourcesResult:
        """List both sides' files, group them into split tasks, choose the partitions."""
        workspace = self._workspace(data.run_id)
        network_source = self._readable(data.network_source, "network source", workspace)
        billing_source = self._readable(data.billing_source, "billing source", workspace)
        if billing_source == BILLING_SYSTEM:
            billing_source = workspace.export_uri
        network = self._listed(network_source, "network source", workspace)
        if not network:
            raise PermanentError(
                f"no usage files in {redact_uri(data.network_source)}", system="files"
            )
        everything = self._listed(billing_source, "billing source", workspace)
        billing = [item for item in everything if item.name != SUBSCRIPTIONS_FILE]
        subscriptions = [item.uri for item in everything if item.name == SUBSCRIPTIONS_FILE]
        total = sum(item.size for item in network + billing)
        partitions = data.partitions or _auto_partitions(
            total,
            self.settings.reconciliation_partition_bytes,
            self.settings.reconciliation_max_partitions,
        )
        engine.check_partitions(partitions)
        tasks = {
            "network": _tasks(network, self.settings.reconciliation_task_bytes),
            "billing": _tasks(billing, self.settings.reconciliation_task_bytes),
        }
        workspace.store.write_text(
            workspace.sources,
            json.dumps({**tasks, "subscriptions": subscriptions[0] if subscriptions else None}),
        )
        return ListSourcesResult(
            network_files=len(network),
            billing_files=len(billing),
            network_tasks=len(tasks["network"]),
            billing_tasks=len(tasks["billing"]),
            bytes=total,
            partitions=partitions,
        )

    def _readable(self, location: str, what: str, workspace: Workspace) -> str:
        """``location`` as it is opened, if it is inside the source roots (or the run's copy
        of billing's export); else a permanent error naming ``what`` it is."""
        try:
            return checked_source(location, self.settings, also=[workspace.export_uri])
        except LocationRefused as exc:
            raise PermanentError(f"{what} {redact_uri(location)!r}: {exc}", system="files") from exc

    def _listed(
        self, location: str, what: str, workspace: Workspace
    ) -> list[usage_files.UsageFile]:
        """The usage files under ``location``, each checked: a symlink in a source folder
        can lead out of it."""
        return [
            replace(item, uri=self._readable(item.uri, what, workspace))
            for item in usage_files.list_files(location, locate=self.store.locate)
        ]

    @defn("reconciliation.split")
    @_data_errors
    def split(self, data: SplitInput) -> SplitResult:
        """Read one task's files, keep the period's rows, write them hash-partitioned."""
        workspace = self._workspace(data.run_id)
        key = workspace.split(data.side, data.index)
        uris: list[str] = workspace.read_sources()[data.side][data.index]
        period = engine.Period(data.period_start, data.period_end).widened(data.margin_seconds)
        tariffs = engine.TariffTable.of(data.tariffs)
        if data.side == "network":
            schema, work_schema = engine.NETWORK_INPUT, engine.NETWORK_WORK
            dictionaries = engine.NETWORK_DICTIONARIES
        else:
            schema, work_schema = engine.RATED_INPUT, engine.BILLING_WORK
            dictionaries = engine.RATED_DICTIONARIES
        counts = {"read": 0, "kept": 0}

        def groups() -> Any:
            for number, listed in enumerate(uris, start=1):
                # Checked again as it is opened: the file may have become a link since.
                uri = self._readable(listed, f"{data.side} source", workspace)
                tables = usage_files.read_batches(
                    uri, schema, locate=self.store.locate, dictionaries=dictionaries
                )
                for table in tables:
                    counts["read"] += table.num_rows
                    if data.side == "network":
                        work = engine.network_work(table, period)
                    else:
                        work = engine.billing_work(table, period, tariffs)
                    counts["kept"] += work.num_rows
                    activity.heartbeat(f"file {number}/{len(uris)}, {counts['read']} rows")
                    yield engine.split(work, data.partitions)

        with workspace.store.open_output(key) as sink:
            engine.write_split(sink, work_schema, groups())
            size = sink.tell()
        return SplitResult(data.side, data.index, len(uris), counts["read"], counts["kept"], size)

    @defn("reconciliation.reconcile_partition")
    @_data_errors
    def reconcile_partition(self, data: ReconcilePartitionInput) -> ReconcilePartitionResult:
        """Join, classify and price one partition; write its discrepancies."""
        workspace = self._workspace(data.run_id)
        tariffs = engine.TariffTable.of(data.tariffs)
        network = engine.read_partition(
            workspace.open_splits("network", data.network_tasks),
            data.partition,
            data.partitions,
            engine.NETWORK_WORK,
        )
        billing = engine.read_partition(
            workspace.open_splits("billing", data.billing_tasks),
            data.partition,
            data.partitions,
            engine.BILLING_WORK,
        )
        activity.heartbeat("joined")
        subscriptions = workspace.read_sources()["subscriptions"]
        if subscriptions is not None:
            subscriptions = self._readable(subscriptions, "billing source", workspace)
        found, summary = engine.reconcile(
            network,
            billing,
            tariffs,
            self._plans(data.run_id, subscriptions, tariffs),
            data.tolerances,
            engine.Period(data.period_start, data.period_end),
        )
        with workspace.store.open_output(workspace.part(data.partition)) as sink:
            engine.write_parquet(found, sink)
        return ReconcilePartitionResult(data.partition, summary)

    def _plans(
        self, run_id: str, uri: str | None, tariffs: engine.TariffTable
    ) -> engine.PlanLookup:
        if uri is None:
            return engine.PlanLookup.empty()
        # Read once per run and worker, not once per partition; only the latest run is kept.
        wanted = (run_id, uri, tuple(tariffs.plans))
        with self._subscriptions_lock:
            key, plans = self._subscriptions
            if key != wanted:
                table = pa.concat_tables(
                    usage_files.read_batches(
                        uri,
                        pa.schema([("msisdn", pa.string()), ("plan", pa.string())]),
                        locate=self.store.locate,
                    )
                )
                plans = engine.PlanLookup.of(table, tariffs)
                self._subscriptions = (wanted, plans)
        return plans

    @defn("reconciliation.finalize")
    @_data_errors
    def finalize(self, data: FinalizeInput) -> FinalizeResult:
        """Gather the partitions' discrepancies into the run's one Parquet file.

        Idempotent: a retry after the result was published (and the parts removed) answers
        the published result.
        """
        workspace = self._workspace(data.run_id)
        store, result = workspace.store, workspace.result
        parts = [workspace.part(partition) for partition in range(data.partitions)]
        if store.exists(result) and not all(store.exists(part) for part in parts):
            with store.open_input(result) as published:
                rows = pq.ParquetFile(published).metadata.num_rows
        else:
            rows = 0
            schema = engine.DISCREPANCY_SCHEMA
            with (
                store.open_output(result) as sink,
                pq.ParquetWriter(sink, schema, compression="zstd") as writer,
            ):
                for number, part in enumerate(parts, start=1):
                    with store.open_input(part) as source:
                        table = pq.read_table(source, schema=schema)
                    writer.write_table(table)
                    rows += table.num_rows
                    activity.heartbeat(f"partition {number}/{len(parts)}")
        if not data.keep_work:
            workspace.discard()
        return FinalizeResult(store.uri(result), rows, store.size(result) or 0)

    @defn("reconciliation.discard")
    @_data_errors
    def discard(self, data: DiscardInput) -> None:
        """Remove a failed or cancelled run's intermediate files (its result, if any, stays)."""
        self._workspace(data.run_id).discard()


class ReconciliationStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    @defn("hub.record_reconciliation")
    async def record(self, data: RecordReconciliationInput) -> None:
        async with session_scope(self.sessions) as session:
            run = await session.get(ReconciliationRun, data.run_id)
            if run is None:
                run = ReconciliationRun(
                    id=data.run_id,
                    workflow_id=data.workflow_id,
                    period_start=data.period_start,
                    period_end=data.period_end,
                )
            run.status = data.status
            run.currency = data.currency
            if data.parameters:
                run.parameters = data.parameters
            if data.status != ReconciliationStatus.RUNNING:
                run.finished_at = run.finished_at or utcnow()
            run.error_message = data.error_message
            run.discrepancy_uri = data.discrepancy_uri or run.discrepancy_uri
            run.case_id = data.case_id or run.case_id
            if data.summary is not None:
                summary = data.summary
                overbilled = -sum(min(t.revenue_impact, 0.0) for t in summary.categories.values())
                run.network_records = summary.network_records
                run.billing_records = summary.billing_records
                run.matched_records = summary.matched_records
                run.discrepancy_count = summary.discrepancies
                run.billed_revenue = _money(summary.billed_revenue)
                run.leakage_amount = _money(summary.leakage)
                run.overbilled_amount = _money(overbilled)
                run.leakage_pct = leakage_pct(summary)
                await session.exec(
                    delete(ReconciliationCategory).where(
                        ReconciliationCategory.run_id == data.run_id  # type: ignore[arg-type]
                    )
                )
                for name, total in sorted(summary.categories.items()):
                    session.add(
                        ReconciliationCategory(
                            run_id=data.run_id,
                            category=name,
                            count=total.count,
                            revenue_impact=_money(total.revenue_impact),
                        )
                    )
            run.updated_at = utcnow()
            session.add(run)


def leakage_pct(summary: PartitionSummary) -> float:
    """Revenue lost as a percentage of billed revenue (0 when nothing was billed)."""
    if summary.billed_revenue <= 0:
        return 0.0
    return round(summary.leakage / summary.billed_revenue * 100, 4)


def _money(amount: float) -> Decimal:
    """An amount to 4 decimals, half up, from the float's shortest exact text (so 12.34565
    is 12.3457, not the 12.3456 its binary value would round to)."""
    return Decimal(repr(amount)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
