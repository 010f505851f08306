"""``inventory_differences``: the rows of each completed inventory audit's differences file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from functools import partial

import pyarrow as pa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from hub.datasets.base import Chunk, Dataset, ParquetSource, Window
from hub.exports import ExportDataset
from hub.inventory.engine import DIFFERENCE_SCHEMA
from hub.models import InventoryAudit, InventoryAuditStatus

AUDIT_ID_COLUMN = "inventory_audit_id"
SCHEMA = pa.schema([pa.field(AUDIT_ID_COLUMN, pa.string(), nullable=False), *DIFFERENCE_SCHEMA])


class InventoryDifferences(Dataset):
    """Every difference a completed audit found, with the audit's id first, partitioned by the
    date the audit finished (its day's picture of the inventories)."""

    name = ExportDataset.INVENTORY_DIFFERENCES
    watermark = "inventory_audit.finished_at (completed audits)"
    partition = "inventory_audit.finished_at"
    schema = SCHEMA

    async def chunks(
        self, session: AsyncSession, files: ParquetSource, window: Window, batch_size: int
    ) -> AsyncIterator[Chunk]:
        audit = InventoryAudit
        audits = (
            await session.exec(
                select(col(audit.id), col(audit.finished_at), col(audit.differences_uri))
                .where(
                    col(audit.status) == InventoryAuditStatus.COMPLETED.value,
                    col(audit.differences_uri).is_not(None),
                    *window.where(col(audit.finished_at)),
                )
                .order_by(col(audit.finished_at), col(audit.id))
            )
        ).all()
        for audit_id, finished_at, uri in audits:
            assert uri is not None and finished_at is not None  # completed, with a file
            batches = files.parquet_batches(uri, batch_size)
            try:
                while (batch := await asyncio.to_thread(next, batches, None)) is not None:
                    yield partial(self._tag, batch, audit_id, finished_at.date())
            finally:
                await asyncio.to_thread(batches.close)

    @staticmethod
    def _tag(batch: pa.RecordBatch, audit_id: str, day: date) -> list[tuple[date, pa.RecordBatch]]:
        if batch.num_rows == 0:
            return []
        ids = pa.array([audit_id] * batch.num_rows, type=pa.string())
        columns = [batch.column(name) for name in DIFFERENCE_SCHEMA.names]
        return [(day, pa.RecordBatch.from_arrays([ids, *columns], schema=SCHEMA))]
