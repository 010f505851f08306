"""Export activities: read one dataset of the hub database in batches, write it through the
files adapter, and keep the run record and the export's watermark in the hub database.

A run copies the rows whose change time lies in ``(after, until]``: ``after`` is the export's
watermark (or its ``start_from``, or nothing on a first run), ``until`` the schedule's time for
the run, but never later than now minus ``export_settle_lag``. Rows are read through a
server-side cursor ``export_batch_size`` at a time, converted to Arrow and written off the event
loop, so memory stays flat whatever the table size and heartbeats keep flowing.

Datasets (one row per...; change time; partition date):

=============================  ===========================================  ====================
``orders``                     order item, with its order's columns         ``updated_at``
``order_state_changes``        state change of an order or item             ``at``
``dead_letters``               dead letter, in its latest state             last change
``reconciliation_summaries``   completed reconciliation run and category    ``finished_at`` (*)
``reconciliation_discrepancies`` row of a completed run's discrepancy file  ``finished_at`` (*)
``subscriber_inventory``       subscriber change (completed order item)     ``completion_date``
=============================  ===========================================  ====================

(*) partitioned by the run's period date instead: analysts read reconciliations by period.

A row changed again after it was exported is exported again by a later run (orders move
through states, dead letters are decided): the exports are change feeds, latest version wins.
"""

from __future__ import annotations

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import ColumnElement, DateTime, Select, String, case, func, select, type_coerce
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel import select as sqlmodel_select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.errors import outside_call
from activities.policies import SystemPolicy
from adapters.files import Files, WriterOptions
from hub.db import session_scope
from hub.errors import PermanentError, TransientError
from hub.exports import (
    ExportDataset,
    ExportFormat,
    ExportRunStatus,
    allowed_roots,
    check_destination,
)
from hub.models import (
    DeadLetter,
    ExportRun,
    ExportWatermark,
    OrderState,
    OrderStateChange,
    ReconciliationCategory,
    ReconciliationRun,
    ReconciliationStatus,
    ServiceOrder,
    ServiceOrderItem,
    utcnow,
)
from hub.paths import LocationRefused
from hub.settings import Settings

TIMESTAMP = pa.timestamp("us", tz="UTC")
AMOUNT = pa.decimal128(18, 4)


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


# --- Datasets -------------------------------------------------------------------------------


@dataclass
class Window:
    """Change times ``(after, until]``; no ``after``: from the beginning."""

    after: datetime | None
    until: datetime

    def where(self, column: Any) -> list[ColumnElement[bool]]:
        conditions = [column <= self.until]
        if self.after is not None:
            conditions.append(column > self.after)
        return conditions


#: A batch read from the database, converted (off the event loop) into record batches, each
#: with the date of the partition it belongs to.
Chunk = Callable[[], list[tuple[date, pa.RecordBatch]]]


def split_by_date(batch: pa.RecordBatch, column: str) -> list[tuple[date, pa.RecordBatch]]:
    """Slice a batch ordered by a timestamp column into runs of one (UTC) date each."""
    if batch.num_rows == 0:
        return []
    dates = pc.run_end_encode(pc.cast(batch.column(column), pa.date32()))
    pieces, start = [], 0
    for end, day in zip(dates.run_ends.to_pylist(), dates.values.to_pylist(), strict=True):
        pieces.append((day, batch.slice(start, end - start)))
        start = end
    return pieces


class Dataset(ABC):
    """One dataset of the hub: what it reads, and which change time its watermark follows."""

    name: ExportDataset
    #: The change time the watermark follows, as the manifest names it.
    watermark: str
    #: What the ``date=`` partition is the date of.
    partition: str
    #: The schema of every file; None where it is the source file's (discrepancies).
    schema: pa.Schema | None

    @abstractmethod
    def chunks(
        self, session: AsyncSession, files: Files, window: Window, batch_size: int
    ) -> AsyncIterator[Chunk]:
        """The window's rows, in order of partition date, a batch at a time."""


class QueryDataset(Dataset):
    """The rows of one query, ordered by partition date, with its columns in schema order."""

    def __init__(
        self,
        name: ExportDataset,
        schema: pa.Schema,
        *,
        watermark: str,
        partition: str,
        partition_column: str,
        query: Callable[[Window], Select[Any]],
        convert: Callable[[Sequence[Any]], list[tuple[Any, ...]]] | None = None,
    ) -> None:
        self.name, self.watermark, self.partition = name, watermark, partition
        self.schema = schema
        self._schema: pa.Schema = schema
        self._partition_column = partition_column
        self._query = query
        self._convert = convert

    async def chunks(
        self, session: AsyncSession, files: Files, window: Window, batch_size: int
    ) -> AsyncIterator[Chunk]:
        statement = self._query(window)
        dialect = session.get_bind().dialect.name
        if self._convert is None:
            statement = self._raw_timestamps(statement, dialect)
        text_timestamps = self._convert is None and dialect == "sqlite"
        # Through the Core connection: the ORM session would build each row again.
        connection = await session.connection()
        result = await connection.stream(statement.execution_options(yield_per=batch_size))
        async for rows in result.partitions(batch_size):
            yield partial(self._to_batches, rows, text_timestamps)

    def _raw_timestamps(self, statement: Select[Any], dialect: str) -> Select[Any]:
        """Timestamps as the driver gives them, not through ``UTCDateTime`` row by row, which
        costs more than the rest of a row: SQLite's stored text (Arrow parses it a column at a
        time), PostgreSQL's aware datetimes."""
        raw = String() if dialect == "sqlite" else DateTime(timezone=True)
        columns = [
            type_coerce(column, raw).label(column.name)
            if pa.types.is_timestamp(field.type)
            else column
            for column, field in zip(statement.selected_columns, self._schema, strict=True)
        ]
        return statement.with_only_columns(*columns, maintain_column_froms=True)

    def _to_batches(
        self, rows: Sequence[Any], text_timestamps: bool
    ) -> list[tuple[date, pa.RecordBatch]]:
        records = self._convert(rows) if self._convert else rows
        schema = self._schema
        columns = list(zip(*records, strict=True)) if records else [()] * len(schema)
        arrays = [
            _timestamps_from_text(values, field.type)
            if text_timestamps and pa.types.is_timestamp(field.type)
            else pa.array(values, type=field.type)
            for values, field in zip(columns, schema, strict=True)
        ]
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        return split_by_date(batch, self._partition_column)


def _timestamps_from_text(values: Sequence[str | None], data_type: pa.DataType) -> pa.Array:
    """SQLite's stored text (``2026-03-01 10:00:00.000000``, UTC as ``UTCDateTime`` keeps
    it), parsed by Arrow a column at a time."""
    naive = pa.array(values, type=pa.string()).cast(pa.timestamp(data_type.unit))
    return naive.cast(data_type)


def _columns(*attributes: Any) -> list[Any]:
    """Model attributes as the columns of a Core ``select`` (rows as plain tuples)."""
    return [col(attribute) for attribute in attributes]


def _orders_query(window: Window) -> Select[Any]:
    order, item = ServiceOrder, ServiceOrderItem
    return (
        select(
            *_columns(
                order.id,
                order.external_id,
                order.state,
                order.customer_id,
                order.workflow_id,
                order.order_date,
                order.completion_date,
                order.error_message,
                order.updated_at,
                item.item_id,
                item.action,
                item.state,
            )
        )
        .select_from(order)
        .outerjoin(item, col(item.order_id) == col(order.id))
        .where(*window.where(col(order.updated_at)))
        .order_by(col(order.updated_at), col(order.id), col(item.item_id))
    )


ORDERS = QueryDataset(
    ExportDataset.ORDERS,
    pa.schema(
        [
            pa.field("order_id", pa.string(), nullable=False),
            pa.field("external_id", pa.string()),
            pa.field("state", pa.string(), nullable=False),
            pa.field("customer_id", pa.string()),
            pa.field("workflow_id", pa.string(), nullable=False),
            pa.field("order_date", TIMESTAMP, nullable=False),
            pa.field("completion_date", TIMESTAMP),
            pa.field("error_message", pa.string()),
            pa.field("updated_at", TIMESTAMP, nullable=False),
            pa.field("item_id", pa.string()),
            pa.field("item_action", pa.string()),
            pa.field("item_state", pa.string()),
        ]
    ),
    watermark="service_order.updated_at",
    partition="updated_at",
    partition_column="updated_at",
    query=_orders_query,
)


def _state_changes_query(window: Window) -> Select[Any]:
    change = OrderStateChange
    return (
        select(
            *_columns(
                change.id,
                change.order_id,
                change.item_id,
                change.from_state,
                change.to_state,
                change.reason,
                change.at,
            )
        )
        .where(*window.where(col(change.at)))
        .order_by(col(change.at), col(change.id))
    )


ORDER_STATE_CHANGES = QueryDataset(
    ExportDataset.ORDER_STATE_CHANGES,
    pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("order_id", pa.string(), nullable=False),
            pa.field("item_id", pa.string()),
            pa.field("from_state", pa.string()),
            pa.field("to_state", pa.string(), nullable=False),
            pa.field("reason", pa.string()),
            pa.field("at", TIMESTAMP, nullable=False),
        ]
    ),
    watermark="order_state_change.at",
    partition="at",
    partition_column="at",
    query=_state_changes_query,
)


def _latest(*moments: Any) -> Any:
    """The latest of non-null timestamps, in SQL that SQLite and PostgreSQL both run."""
    latest = moments[0]
    for moment in moments[1:]:
        latest = case((latest >= moment, latest), else_=moment)
    return latest


def _dead_letter_changed_at() -> Any:
    # A dead letter changes when parked (again), decided and closed; the table keeps no single
    # "updated" column, so the change time is the latest of the three.
    letter = DeadLetter
    parked = col(letter.parked_at)
    return _latest(
        parked, func.coalesce(letter.decided_at, parked), func.coalesce(letter.closed_at, parked)
    ).label("changed_at")


def _dead_letters_query(window: Window) -> Select[Any]:
    letter = DeadLetter
    changed_at = _dead_letter_changed_at()
    return (
        select(
            *_columns(
                letter.id,
                letter.workflow_id,
                letter.run_id,
                letter.process,
                letter.order_id,
                letter.step,
                letter.system,
                letter.activity,
                letter.compensation,
                letter.skippable,
                letter.error_type,
                letter.last_error,
                letter.attempts,
                letter.first_failure_at,
                letter.last_failure_at,
                letter.parked_at,
                letter.deadline,
                letter.status,
                letter.decision,
                letter.decided_by,
                letter.decided_at,
                letter.decision_reason,
                letter.closed_at,
            ),
            changed_at,
        )
        .where(*window.where(changed_at))
        .order_by(changed_at, col(letter.id))
    )


DEAD_LETTERS = QueryDataset(
    ExportDataset.DEAD_LETTERS,
    # The step's input stays out: its shape differs per step, and the hub keeps it where an
    # operator repairs the step; analysts get the step, system, error and timings.
    pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("workflow_id", pa.string(), nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("process", pa.string(), nullable=False),
            pa.field("order_id", pa.string()),
            pa.field("step", pa.string(), nullable=False),
            pa.field("system", pa.string(), nullable=False),
            pa.field("activity", pa.string(), nullable=False),
            pa.field("compensation", pa.bool_(), nullable=False),
            pa.field("skippable", pa.bool_(), nullable=False),
            pa.field("error_type", pa.string(), nullable=False),
            pa.field("last_error", pa.string(), nullable=False),
            pa.field("attempts", pa.int64(), nullable=False),
            pa.field("first_failure_at", TIMESTAMP, nullable=False),
            pa.field("last_failure_at", TIMESTAMP, nullable=False),
            pa.field("parked_at", TIMESTAMP, nullable=False),
            pa.field("deadline", TIMESTAMP, nullable=False),
            pa.field("status", pa.string(), nullable=False),
            pa.field("decision", pa.string()),
            pa.field("decided_by", pa.string()),
            pa.field("decided_at", TIMESTAMP),
            pa.field("decision_reason", pa.string()),
            pa.field("closed_at", TIMESTAMP),
            pa.field("changed_at", TIMESTAMP, nullable=False),
        ]
    ),
    watermark="dead_letter: latest of parked_at, decided_at, closed_at",
    partition="changed_at",
    partition_column="changed_at",
    query=_dead_letters_query,
)


def _completed_runs(window: Window) -> list[ColumnElement[bool]]:
    run = ReconciliationRun
    return [
        col(run.status) == ReconciliationStatus.COMPLETED.value,
        *window.where(col(run.finished_at)),
    ]


def _summaries_query(window: Window) -> Select[Any]:
    run, category = ReconciliationRun, ReconciliationCategory
    return (
        select(
            *_columns(
                run.id,
                run.workflow_id,
                run.period_start,
                run.period_end,
                run.status,
                run.started_at,
                run.finished_at,
                run.currency,
                run.network_records,
                run.billing_records,
                run.matched_records,
                run.discrepancy_count,
                run.billed_revenue,
                run.leakage_amount,
                run.overbilled_amount,
                run.leakage_pct,
                run.case_id,
                category.category,
                category.count,
                category.revenue_impact,
            )
        )
        .select_from(run)
        .outerjoin(category, col(category.run_id) == col(run.id))
        .where(*_completed_runs(window))
        .order_by(col(run.period_start), col(run.id), col(category.category))
    )


RECONCILIATION_SUMMARIES = QueryDataset(
    ExportDataset.RECONCILIATION_SUMMARIES,
    pa.schema(
        [
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("workflow_id", pa.string(), nullable=False),
            pa.field("period_start", TIMESTAMP, nullable=False),
            pa.field("period_end", TIMESTAMP, nullable=False),
            pa.field("status", pa.string(), nullable=False),
            pa.field("started_at", TIMESTAMP, nullable=False),
            pa.field("finished_at", TIMESTAMP),
            pa.field("currency", pa.string(), nullable=False),
            pa.field("network_records", pa.int64(), nullable=False),
            pa.field("billing_records", pa.int64(), nullable=False),
            pa.field("matched_records", pa.int64(), nullable=False),
            pa.field("discrepancy_count", pa.int64(), nullable=False),
            pa.field("billed_revenue", AMOUNT, nullable=False),
            pa.field("leakage_amount", AMOUNT, nullable=False),
            pa.field("overbilled_amount", AMOUNT, nullable=False),
            pa.field("leakage_pct", pa.float64(), nullable=False),
            pa.field("case_id", pa.string()),
            # One row per category; a run without categories has one row with nulls here.
            pa.field("category", pa.string()),
            pa.field("category_count", pa.int64()),
            pa.field("category_revenue_impact", AMOUNT),
        ]
    ),
    watermark="reconciliation_run.finished_at (completed runs)",
    partition="period_start",
    partition_column="period_start",
    query=_summaries_query,
)


class DiscrepancyDataset(Dataset):
    """The rows of each completed reconciliation run's discrepancy file, copied through.

    The file's schema belongs to the reconciliation, so any Parquet file at the run's
    ``discrepancy_uri`` is read as it is, with the column ``reconciliation_run_id`` put first
    (unless the file has it already), and partitioned by the run's period date.
    """

    name = ExportDataset.RECONCILIATION_DISCREPANCIES
    watermark = "reconciliation_run.finished_at (completed runs with a discrepancy file)"
    partition = "reconciliation_run.period_start"
    schema = None
    run_id_column = "reconciliation_run_id"

    async def chunks(
        self, session: AsyncSession, files: Files, window: Window, batch_size: int
    ) -> AsyncIterator[Chunk]:
        run = ReconciliationRun
        # One row per run (a day's reconciliation): a short list, read before the files.
        runs = (
            await session.exec(
                sqlmodel_select(col(run.id), col(run.period_start), col(run.discrepancy_uri))
                .where(*_completed_runs(window), col(run.discrepancy_uri).is_not(None))
                .order_by(col(run.period_start), col(run.id))
            )
        ).all()
        for run_id, period_start, uri in runs:
            assert uri is not None  # the query asked for runs with a file
            batches = files.parquet_batches(uri, batch_size)
            try:
                while (batch := await asyncio.to_thread(next, batches, None)) is not None:
                    yield partial(self._tag, batch, run_id, period_start.date())
            finally:
                await asyncio.to_thread(batches.close)

    def _tag(
        self, batch: pa.RecordBatch, run_id: str, period: date
    ) -> list[tuple[date, pa.RecordBatch]]:
        if batch.num_rows == 0:
            return []
        if self.run_id_column not in batch.schema.names:
            ids = pa.array([run_id] * batch.num_rows, type=pa.string())
            batch = pa.RecordBatch.from_arrays(
                [ids, *batch.columns],
                schema=pa.schema(
                    [pa.field(self.run_id_column, pa.string(), nullable=False), *batch.schema]
                ),
            )
        return [(period, batch)]


#: The characteristics of a ``mobile-4g5g`` service that the inventory carries: named one by
#: one, so no key (Ki, OP, OPc), redacted or not, can ever reach an export.
_INVENTORY_CHARACTERISTICS = {
    "imsi": str,
    "msisdn": str,
    "plan": str,
    "qci": int,
    "ambrDownlink": int,
    "ambrUplink": int,
    "dataQuota": int,
    "arpPriority": int,
}


def _characteristics(document: dict[str, Any], item_id: str) -> tuple[dict[str, Any], str | None]:
    for item in document.get("serviceOrderItem") or []:
        if str(item.get("id")) == item_id:
            service = item.get("service") or {}
            values: dict[str, Any] = {}
            for characteristic in service.get("serviceCharacteristic") or []:
                name = characteristic.get("name")
                kind = _INVENTORY_CHARACTERISTICS.get(name)
                if kind is None:
                    continue
                try:
                    values[name] = kind(characteristic.get("value"))
                except (TypeError, ValueError):
                    values[name] = None
            specification = (service.get("serviceSpecification") or {}).get("name")
            return values, specification
    return {}, None


def _inventory_rows(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    records = []
    for order_id, customer_id, completed_at, document, item_id, action in rows:
        if isinstance(document, str):  # a driver that hands JSON back as text
            document = json.loads(document)
        values, specification = _characteristics(document or {}, item_id)
        records.append(
            (
                values.get("imsi"),
                values.get("msisdn"),
                customer_id,
                "terminated" if action == "delete" else "active",
                values.get("plan"),
                values.get("qci"),
                values.get("ambrDownlink"),
                values.get("ambrUplink"),
                values.get("dataQuota"),
                values.get("arpPriority"),
                specification,
                completed_at,
                order_id,
                item_id,
                action,
            )
        )
    return records


def _inventory_query(window: Window) -> Select[Any]:
    order, item = ServiceOrder, ServiceOrderItem
    return (
        select(
            *_columns(
                order.id,
                order.customer_id,
                order.completion_date,
                order.document,
                item.item_id,
                item.action,
            )
        )
        .join(item, col(item.order_id) == col(order.id))
        .where(
            col(order.state) == OrderState.COMPLETED.value,
            col(item.state) == OrderState.COMPLETED.value,
            *window.where(col(order.completion_date)),
        )
        .order_by(col(order.completion_date), col(order.id), col(item.item_id))
    )


class SubscriberInventory(QueryDataset):
    """The subscriber inventory: one row per subscriber change.

    Its source is the hub's own record of completed orders, not the HSS, billing or the CRM. A
    subscriber is in the inventory once an order that added, modified or deleted it completed,
    which means every system (HSS, billing, CRM) carried it out: the inventory a user of the
    hub expects, consistent across the systems rather than one system's view of it. It also
    holds no keys (the hub never stores Ki, OP or OPc, and only the characteristics named in
    ``_INVENTORY_CHARACTERISTICS`` are read), costs the HSS and the fragile billing system no
    bulk scan, and has the change time an incremental export needs, which none of them offers.
    A subscriber appears again whenever a later order changes it (``status`` ``terminated``
    after a delete): the latest ``changed_at`` per ``imsi`` is its current state. Subscribers
    provisioned outside the hub are not in it.
    """

    def __init__(self) -> None:
        super().__init__(
            ExportDataset.SUBSCRIBER_INVENTORY,
            pa.schema(
                [
                    pa.field("imsi", pa.string()),
                    pa.field("msisdn", pa.string()),
                    pa.field("customer_id", pa.string()),
                    pa.field("status", pa.string(), nullable=False),
                    pa.field("plan", pa.string()),
                    pa.field("qci", pa.int32()),
                    pa.field("ambr_downlink", pa.int64()),
                    pa.field("ambr_uplink", pa.int64()),
                    pa.field("data_quota", pa.int64()),
                    pa.field("arp_priority", pa.int32()),
                    pa.field("service_specification", pa.string()),
                    pa.field("changed_at", TIMESTAMP, nullable=False),
                    pa.field("order_id", pa.string(), nullable=False),
                    pa.field("item_id", pa.string(), nullable=False),
                    pa.field("action", pa.string(), nullable=False),
                ]
            ),
            watermark="service_order.completion_date (completed orders)",
            partition="changed_at",
            partition_column="changed_at",
            query=_inventory_query,
            convert=_inventory_rows,
        )


DATASETS: dict[str, Dataset] = {
    dataset.name.value: dataset
    for dataset in (
        ORDERS,
        ORDER_STATE_CHANGES,
        DEAD_LETTERS,
        RECONCILIATION_SUMMARIES,
        DiscrepancyDataset(),
        SubscriberInventory(),
    )
}


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

    @activity.defn(name="exports.options")
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

    @activity.defn(name="exports.begin")
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

    @activity.defn(name="exports.write")
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

    @activity.defn(name="exports.finish")
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

    @activity.defn(name="exports.fail")
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
