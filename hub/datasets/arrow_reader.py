"""Reading a query's rows as Arrow record batches straight from the database driver (ADBC).

The export datasets are SQLAlchemy ``select`` statements; through SQLAlchemy each row is a
Python tuple, then a Python object per value, then Arrow again: at a million rows most of an
export's time. The ADBC driver for PostgreSQL (``adbc-driver-postgresql``, the Arrow
project's, on libpq) hands out columnar batches from C: the statement is compiled by SQLAlchemy
for the database (so the query is the one the dataset defines, with its binds processed by the
columns' own types) and executed by the driver, which streams the result (``COPY ... TO STDOUT
(FORMAT binary)``: see :func:`compiled`), so memory stays flat whatever the table size.

SQLite stays on SQLAlchemy and Python's ``sqlite3``: ADBC's SQLite driver links a SQLite of
its own, and two SQLite libraries in one process release each other's POSIX locks on the same
file (https://www.sqlite.org/howtocorrupt.html, section 2.2.1). Seen here: a connection of the
ADBC driver, opened after one of Python's had closed, kept reading the database as it was
before the other library's commits.

:func:`arrow_uri` says whether a database URL is read this way; the caller keeps the
SQLAlchemy path for the others.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Select
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.engine.url import URL


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def arrow_uri(url: str | URL) -> tuple[str, str] | None:
    """``(backend, uri)`` the ADBC driver opens for ``url`` (PostgreSQL: a libpq URI), or None
    where the database is not read through ADBC (SQLite, see above; no driver installed)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql" and _installed("adbc_driver_postgresql"):
        plain = parsed.set(drivername="postgresql")
        return backend, plain.render_as_string(hide_password=False)
    return None


#: Parameter types rendered into the SQL as literals: values SQLAlchemy renders exactly, and
#: that no caller's text can turn into SQL.
LITERAL_TYPES = (datetime, date, int, float, bool, type(None))


def compiled(statement: Select[Any], dialect: Dialect, backend: str) -> tuple[str, list[Any]]:
    """The statement's SQL for the driver and its parameters (each processed by its column's
    type, as SQLAlchemy would).

    For PostgreSQL, parameters that are times, dates, numbers or NULL are rendered into the
    SQL (by the dialect, as literals): ADBC streams a query without parameters through
    ``COPY ... TO STDOUT``, but a query with parameters through one libpq result that holds
    every row (measured: 814 MiB for 2M state changes, against 266 MiB streamed). A query with
    any other parameter (text) is sent with ``$n`` parameters, as it is.
    """
    if backend == "postgresql":
        values = statement.compile(dialect=dialect).construct_params()
        if all(isinstance(value, LITERAL_TYPES) for value in values.values()):
            literal = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
            return str(literal), []
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


def stream(uri: tuple[str, str], sql: str, parameters: list[Any]) -> Iterator[pa.RecordBatch]:
    """The query's rows, a batch at a time (the driver's, about 16 MiB); the connection closes
    when the iterator does. Blocking: run it in a thread (:func:`in_thread`)."""
    import adbc_driver_postgresql.dbapi as driver

    _, location = uri
    with driver.connect(location) as connection, connection.cursor() as cursor:
        cursor.execute(sql, parameters or None)
        reader = cursor.fetch_record_batch()
        yield from reader


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
