"""Completed reconciliation runs: ``reconciliation_summaries`` (one row per run and
category) and ``reconciliation_discrepancies`` (the rows of each run's discrepancy file)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from functools import partial
from typing import Any

import pyarrow as pa
from sqlalchemy import ColumnElement, Select, select
from sqlmodel import col
from sqlmodel import select as sqlmodel_select
from sqlmodel.ext.asyncio.session import AsyncSession

from hub.datasets.base import (
    AMOUNT,
    TIMESTAMP,
    Chunk,
    Dataset,
    ParquetSource,
    QueryDataset,
    Window,
    model_columns,
)
from hub.exports import ExportDataset
from hub.models import ReconciliationCategory, ReconciliationRun, ReconciliationStatus


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
            *model_columns(
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
        self, session: AsyncSession, files: ParquetSource, window: Window, batch_size: int
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
