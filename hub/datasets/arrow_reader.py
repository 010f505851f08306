"""Reading a query's rows as Arrow record batches straight from the database driver (ADBC).

The export datasets are SQLAlchemy ``select`` statements; through SQLAlchemy each row is a
Python tuple, then a Python object per value, then Arrow again: at a million rows most of an
export's time. ADBC drivers (the Arrow project's) hand out columnar batches from C: the
statement is compiled by SQLAlchemy for the database (so the query is the one the dataset
defines, with its binds processed by the columns' own types) and executed by the driver.

- PostgreSQL (``adbc-driver-postgresql``, on libpq), in a thread of the worker: the driver
  streams the result (``COPY ... TO STDOUT (FORMAT binary)``: see :func:`compiled`), so memory
  stays flat whatever the table size.
- SQLite (``adbc-driver-sqlite``), in a child process: the driver links a SQLite of its own,
  which must not open the worker's database file in the worker's process (see
  :mod:`hub.sqlite_arrow`). A database in memory has no file to open: it stays on SQLAlchemy.

:func:`reader` says whether a query is read this way; the caller keeps the SQLAlchemy path
where it answers None.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Float, Integer, Label, Select, Text, cast, func, literal_column
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.types import TypeEngine

from hub import sqlite_arrow
from hub.errors import TransientError


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def arrow_uri(url: str | URL) -> tuple[str, str] | None:
    """``(backend, uri)`` the ADBC driver opens for ``url`` (PostgreSQL: a libpq URI; SQLite:
    the database file's absolute path), or None where the database is not read through ADBC
    (SQLite in memory or by URI filename; no driver installed)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql" and _installed("adbc_driver_postgresql"):
        plain = parsed.set(drivername="postgresql")
        return backend, plain.render_as_string(hide_password=False)
    if backend == "sqlite" and _installed("adbc_driver_sqlite"):
        database = parsed.database or ""
        if database in ("", ":memory:") or parsed.query.get("uri") or database.startswith("file:"):
            return None
        return backend, os.path.abspath(database)
    return None


def storage_kind(data_type: pa.DataType) -> str | None:
    """What SQLite holds a value of an export column's type as (:data:`STORAGE_TYPES`), or
    None for a type no driver is read for here (decimals: ``NUMERIC`` comes as text or float
    from the drivers, where SQLAlchemy gives exact ``Decimal`` values)."""
    if pa.types.is_integer(data_type) or pa.types.is_boolean(data_type):
        return "integer"
    if pa.types.is_floating(data_type):
        return "real"
    if pa.types.is_string(data_type) or pa.types.is_timestamp(data_type):
        # SQLAlchemy keeps times in SQLite as text (see timestamps_from_text).
        return "text"
    return None


def readable(schema: pa.Schema) -> bool:
    """Whether rows of this schema can be read through a driver (:func:`reader`)."""
    return all(storage_kind(field.type) is not None for field in schema)


#: Parameter types rendered into the SQL as literals: values SQLAlchemy renders exactly, and
#: that no caller's text can turn into SQL.
LITERAL_TYPES = (datetime, date, int, float, bool, type(None))


def compiled(statement: Select[Any], dialect: Dialect, backend: str) -> tuple[str, list[Any]]:
    """The statement's SQL for the driver and its parameters (each processed by its column's
    type, as SQLAlchemy would).

    Parameters that are times, dates, numbers or NULL are rendered into the SQL (by the
    dialect, as literals; times as the columns' types store them). For PostgreSQL: ADBC
    streams a query without parameters through ``COPY ... TO STDOUT``, but a query with
    parameters through one libpq result that holds every row (measured: 814 MiB for 2M state
    changes, against 266 MiB streamed). For SQLite: the child that reads it (see
    :mod:`hub.sqlite_arrow`) need not turn Python values into Arrow ones to bind them, which
    imports pandas (half a second). A query with any other parameter (text) is sent with
    parameters (``$n`` for libpq, ``?`` for SQLite), as it is.
    """
    values = statement.compile(dialect=dialect).construct_params()
    if all(isinstance(value, LITERAL_TYPES) for value in values.values()):
        literal = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        return str(literal), []
    if backend == "postgresql":
        # The same dialect, numbering its parameters as libpq does.
        dialect = type(dialect)(paramstyle="numeric_dollar")  # type: ignore[call-arg]
    query = statement.compile(dialect=dialect)
    names = query.positiontup or []
    values = query.construct_params()
    parameters = []
    for name in names:
        value = values[name]
        processor = query.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        parameters.append(processor(value) if processor is not None else value)
    return str(query), parameters


def reader(
    url: str | URL, dialect: Dialect, statement: Select[Any], schema: pa.Schema, batch_size: int
) -> Iterator[pa.RecordBatch] | None:
    """The statement's rows as the driver's record batches (to pass through :func:`conform`),
    or None where this database or schema is not read through a driver. Blocking: iterate it
    in a thread (:func:`in_thread`); it holds a connection (or a child process) until closed."""
    uri = arrow_uri(url) if readable(schema) else None
    if uri is None:
        return None
    backend, location = uri
    if backend == "sqlite":
        request = _sqlite_request(location, dialect, statement, schema, batch_size)
        return _sqlite(request) if request is not None else None
    sql, parameters = compiled(statement, dialect, backend)
    return _postgresql(location, sql, parameters)


def _postgresql(location: str, sql: str, parameters: list[Any]) -> Iterator[pa.RecordBatch]:
    """The query's rows, a batch at a time (the driver's, about 16 MiB); the connection closes
    when the iterator does."""
    import adbc_driver_postgresql.dbapi as driver

    with driver.connect(location) as connection, connection.cursor() as cursor:
        cursor.execute(sql, parameters or None)
        yield from cursor.fetch_record_batch()


#: The value a NULL stands in for in the flagged query, by storage kind.
_NULL_DEFAULTS = {"integer": "0", "real": "0.0", "text": "''"}
_SQL_TYPES: dict[str, TypeEngine[Any]] = {"integer": Integer(), "real": Float(), "text": Text()}


def with_null_flags(statement: Select[Any], kinds: list[str]) -> Select[Any]:
    """The statement with each column ``c`` replaced by two: ``CAST(coalesce(c, default) AS
    <kind>)`` and ``c IS NULL``; no value is NULL, so a driver that guesses a column's type
    from its first values guesses right. Same rows, same order: the ORDER BY keeps the
    original expressions (a label no longer selected is rendered as what it stands for)."""
    columns: list[Any] = []
    for index, (column, kind) in enumerate(zip(statement.selected_columns, kinds, strict=True)):
        expression = column.element if isinstance(column, Label) else column
        value = func.coalesce(expression, literal_column(_NULL_DEFAULTS[kind]))
        columns.append(cast(value, _SQL_TYPES[kind]).label(f"v{index}"))
        columns.append(expression.is_(None).label(f"n{index}"))
    return statement.with_only_columns(*columns, maintain_column_froms=True)


#: Parameters the SQLite reader's request carries exactly (as JSON).
_JSON_SCALARS = (str, int, float, type(None))


def _sqlite_request(
    path: str, dialect: Dialect, statement: Select[Any], schema: pa.Schema, batch_size: int
) -> sqlite_arrow.ReadRequest | None:
    kinds = [storage_kind(field.type) or "" for field in schema]
    query = sqlite_arrow.Query(*compiled(statement, dialect, "sqlite"))
    flagged = sqlite_arrow.Query(*compiled(with_null_flags(statement, kinds), dialect, "sqlite"))
    if not all(isinstance(value, _JSON_SCALARS) for value in query.parameters):
        return None
    return sqlite_arrow.ReadRequest(
        database=path,
        names=schema.names,
        kinds=kinds,
        query=query,
        flagged=flagged,
        batch_rows=batch_size,
    )


def _sqlite(request: sqlite_arrow.ReadRequest) -> Iterator[pa.RecordBatch]:
    try:
        yield from sqlite_arrow.read(request)
    except sqlite_arrow.SqliteReadFailed as exc:
        raise TransientError(f"reading SQLite: {exc}", system="hub") from exc


def timestamps_from_text(values: Any, data_type: pa.DataType) -> pa.Array:
    """SQLite's stored text (``2026-03-01 10:00:00.000000``, UTC as ``UTCDateTime`` keeps it),
    parsed by Arrow a column at a time."""
    naive = pc.cast(pa.array(values, type=pa.string()), pa.timestamp(data_type.unit))
    return naive.cast(data_type)


async def in_thread(batches: Iterator[pa.RecordBatch]) -> AsyncIterator[pa.RecordBatch]:
    """The batches of a blocking iterator, each read in one thread of its own (the driver's
    connection stays in it), so the event loop and the heartbeats keep going meanwhile."""
    loop = asyncio.get_running_loop()
    done = object()
    with ThreadPoolExecutor(1, thread_name_prefix="adbc") as thread:
        try:
            while (batch := await loop.run_in_executor(thread, next, batches, done)) is not done:
                yield batch  # type: ignore[misc]
        finally:
            # Closes the cursor and the connection, in their thread.
            await loop.run_in_executor(thread, getattr(batches, "close", lambda: None))


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A driver's batch in the dataset's schema: columns named and typed as it says, by
    position (a column of nothing but NULLs comes typed ``null``)."""
    arrays = []
    for array, field in zip(batch.columns, schema, strict=True):
        if pa.types.is_timestamp(field.type) and (
            pa.types.is_string(array.type) or pa.types.is_null(array.type)
        ):
            arrays.append(timestamps_from_text(array, field.type))
        elif array.type != field.type:
            arrays.append(pc.cast(array, field.type))
        else:
            arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
