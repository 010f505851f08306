"""The frame of a dataset: a window of change times, and the rows in it a batch at a time.

A :class:`Dataset` reads its rows from the hub database (or, for discrepancies, from the files
the database points to) and hands them out one :data:`Chunk` at a time: a batch already read,
turned into Arrow record batches off the event loop, each with the date of the partition it
belongs to. A :class:`QueryDataset` is a dataset that one SQL query describes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import ColumnElement, DateTime, Select, String, type_coerce
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from hub.datasets import arrow_reader
from hub.datasets.arrow_reader import timestamps_from_text
from hub.exports import ExportDataset

TIMESTAMP = pa.timestamp("us", tz="UTC")
AMOUNT = pa.decimal128(18, 4)


class ParquetSource(Protocol):
    """Where a dataset reads the files it copies through: ``adapters.files.Files`` is one."""

    def parquet_batches(self, uri: str, batch_size: int) -> Generator[pa.RecordBatch]: ...


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
        self, session: AsyncSession, files: ParquetSource, window: Window, batch_size: int
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
        #: Read as Arrow by the database's ADBC driver: rows that need no Python conversion,
        #: of types a driver gives exactly (no decimals: ``NUMERIC`` comes as text or float).
        self.arrow_native = convert is None and arrow_reader.readable(schema)

    async def chunks(
        self, session: AsyncSession, files: ParquetSource, window: Window, batch_size: int
    ) -> AsyncIterator[Chunk]:
        statement = self._query(window)
        bind = session.get_bind()
        batches = (
            arrow_reader.reader(bind.engine.url, bind.dialect, statement, self._schema, batch_size)
            if self.arrow_native
            else None
        )
        if batches is None:
            async for chunk in self.row_chunks(session, window, batch_size):
                yield chunk
            return
        async for batch in arrow_reader.in_thread(batches):
            # The driver's batches, in pieces of ``batch_size`` rows as the other path reads
            # them (slices share the batch's memory).
            for offset in range(0, batch.num_rows, batch_size):
                yield partial(self._from_arrow, batch.slice(offset, batch_size))

    async def row_chunks(
        self, session: AsyncSession, window: Window, batch_size: int
    ) -> AsyncIterator[Chunk]:
        """The window's rows through SQLAlchemy, a row at a time: the path of the datasets and
        databases no driver reads (see :meth:`chunks`), and what the drivers' rows
        are tested against."""
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

    def _from_arrow(self, batch: pa.RecordBatch) -> list[tuple[date, pa.RecordBatch]]:
        return split_by_date(arrow_reader.conform(batch, self._schema), self._partition_column)

    def _to_batches(
        self, rows: Sequence[Any], text_timestamps: bool
    ) -> list[tuple[date, pa.RecordBatch]]:
        records = self._convert(rows) if self._convert else rows
        schema = self._schema
        columns = list(zip(*records, strict=True)) if records else [()] * len(schema)
        arrays = [
            timestamps_from_text(values, field.type)
            if text_timestamps and pa.types.is_timestamp(field.type)
            else pa.array(values, type=field.type)
            for values, field in zip(columns, schema, strict=True)
        ]
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        return split_by_date(batch, self._partition_column)


def model_columns(*attributes: Any) -> list[Any]:
    """Model attributes as the columns of a Core ``select`` (rows as plain tuples)."""
    return [col(attribute) for attribute in attributes]
