"""Reading a SQLite query as Arrow record batches, by ADBC's SQLite driver in a process of its own.

Through Python's ``sqlite3`` every value of every row becomes a Python object before Arrow
copies it again: at a million rows, most of an export's time (measured: ADBC's driver reads
the same rows three times faster). But ADBC's SQLite driver links a SQLite of its own, and two
SQLite libraries in one process must not open the same file: POSIX locks belong to the
process, so neither library sees the other's locks, and closing a file in one releases the
other's (https://www.sqlite.org/howtocorrupt.html, section 2.2.1; seen here as an ADBC
connection reading the database as it was before the other library's commits). The hub's
worker writes its database through ``sqlite3`` (aiosqlite), so the driver runs in a child
process (:data:`CHILD`, :func:`main`): to SQLite an ordinary second process, whose locks and
the worker's exclude each other as they do between any two programs on the file. It streams
its batches to the parent as an Arrow IPC stream on its standard output.

ADBC's driver infers each column's type from the values of its first batch; a column that is
NULL all through it is taken for ``int64``, and a text value later on fails the read (``Type
mismatch in column 1: expected INT64``). So the child checks the inferred types against the
ones the caller expects before it sends anything, and where they differ reads with the second
query it was given instead: each column twice, its value with NULL replaced by a typed default
and whether it was NULL, from which it rebuilds the column (see
:func:`hub.datasets.arrow_reader.with_null_flags`). The first query is the dataset's own; the
second costs a quarter more and is only needed when a first batch holds such a column.

The child imports only this module, pyarrow and the driver (not the hub's models, nor
SQLAlchemy, nor NumPy), so it starts in about a tenth of a second of CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass
from typing import IO, Any

import pyarrow as pa

#: What the child sends each column as, by the kind of value SQLite holds.
STORAGE_TYPES = {"integer": pa.int64(), "real": pa.float64(), "text": pa.string()}

#: How long a read waits for a lock (a writer's checkpoint, a recovery), as the hub's engine.
BUSY_TIMEOUT_MS = 30_000


#: The child's program. NumPy (and pandas) stay out of it: pyarrow needs neither (an optional
#: dependency since pyarrow 16), and importing them is most of a start (0.26 s of CPU against
#: 0.11 s), paid by every export.
CHILD = (
    "import sys; sys.modules['numpy'] = sys.modules['pandas'] = None; "
    f"from {__name__} import main; sys.exit(main())"
)


class SqliteReadFailed(Exception):
    """The child could not read the query; its message ends with the child's error."""


@dataclass
class Query:
    """SQL for SQLite with ``?`` parameters: strings, numbers or NULL."""

    sql: str
    parameters: list[Any]


@dataclass
class ReadRequest:
    """What the child is asked to read, sent as one JSON line on its standard input."""

    #: The database file.
    database: str
    #: Column names and the kind (``STORAGE_TYPES``) of each, in the order the queries select.
    names: list[str]
    kinds: list[str]
    #: The dataset's query, one column per name.
    query: Query
    #: The same rows, two columns per name: the value with NULL replaced by a default of its
    #: kind, and 1 where the value was NULL.
    flagged: Query
    batch_rows: int


def storage_schema(names: Sequence[str], kinds: Sequence[str]) -> pa.Schema:
    return pa.schema([(name, STORAGE_TYPES[kind]) for name, kind in zip(names, kinds, strict=True)])


def read(request: ReadRequest) -> Iterator[pa.RecordBatch]:
    """The query's rows, ``batch_rows`` at a time, typed as :func:`storage_schema` says.

    Blocking: run it in a thread. The child ends with the iterator (killed if the iterator is
    closed early); a child that fails raises :class:`SqliteReadFailed` with its error.
    """
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        stdin, stdout = child.stdin, child.stdout
        assert stdin is not None and stdout is not None
        try:
            try:
                with stdin:
                    stdin.write(json.dumps(asdict(request)).encode("utf-8") + b"\n")
                with pa.ipc.open_stream(stdout) as reader:
                    yield from reader
            except (OSError, pa.ArrowException) as exc:
                # A child that failed leaves a short stream or a closed pipe: say why it did
                # (it is exiting; one that is not is killed below).
                with suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=10)
                said = _failure(child.returncode, errors) if child.returncode is not None else ""
                raise SqliteReadFailed(
                    said or f"reading the SQLite reader's stream: {exc}"
                ) from exc
            if child.wait() != 0:
                raise SqliteReadFailed(_failure(child.returncode, errors))
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            stdout.close()


def _failure(returncode: int, errors: IO[bytes]) -> str:
    if returncode == 0:
        return ""
    errors.seek(0)
    said = errors.read()[-2000:].decode("utf-8", "replace").strip()
    return f"the SQLite reader exited with {returncode}: {said or 'no output'}"


# --- The child ------------------------------------------------------------------------------


def _execute(
    connection: Any, query: Query, batch_rows: int, stack: ExitStack
) -> pa.RecordBatchReader:
    """The query's result; its statement closes with ``stack``."""
    import adbc_driver_manager as manager
    import adbc_driver_sqlite as driver

    statement = manager.AdbcStatement(connection)
    stack.callback(statement.close)
    statement.set_options(**{driver.StatementOptions.BATCH_ROWS.value: str(batch_rows)})
    statement.set_sql_query(query.sql)
    if query.parameters:
        values = [pa.array([value]) for value in query.parameters]
        statement.bind(pa.record_batch(values, names=[str(i) for i in range(len(values))]))
    stream, _ = statement.execute_query()
    reader = pa.RecordBatchReader.from_stream(stream)
    stack.callback(reader.close)
    return reader


def _unflag(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Columns of a batch of the flagged query, NULL where their flag says."""
    import pyarrow.compute as pc  # here: a tenth of a second of the child's start otherwise

    arrays = []
    for index, field in enumerate(schema):
        values, is_null = batch.column(2 * index), batch.column(2 * index + 1)
        nulls = pc.cast(is_null, pa.bool_())
        arrays.append(pc.if_else(nulls, pa.scalar(None, field.type), values.cast(field.type)))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def serve(request: ReadRequest, out: IO[bytes]) -> None:
    """Read the request's rows and write them to ``out`` as one Arrow IPC stream."""
    import adbc_driver_manager as manager
    import adbc_driver_sqlite as driver

    schema = storage_schema(request.names, request.kinds)
    # Closed in reverse: results and statements before their connection, it before the
    # database (the driver refuses otherwise, and its complaint would hide the first error).
    with ExitStack() as stack:
        database = driver.connect(request.database)
        stack.callback(database.close)
        connection = manager.AdbcConnection(database)
        stack.callback(connection.close)
        with ExitStack() as pragma:
            _execute(connection, Query(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}", []), 1, pragma)
        with ExitStack() as first:
            reader = _execute(connection, request.query, request.batch_rows, first)
            flagged = reader.schema.types != schema.types
            if not flagged:
                _write(reader, schema, out, flagged=False)
        if flagged:
            # The first batch made the driver guess a column's type wrong (a NULL-only column
            # looks like int64): the flagged query has no NULLs to guess from.
            reader = _execute(connection, request.flagged, request.batch_rows, stack)
            _write(reader, schema, out, flagged=True)


def _write(
    reader: pa.RecordBatchReader, schema: pa.Schema, out: IO[bytes], *, flagged: bool
) -> None:
    with pa.ipc.new_stream(out, schema) as writer:
        for batch in reader:
            if flagged:
                writer.write_batch(_unflag(batch, schema))
            else:
                writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))


def main() -> int:
    document = json.loads(sys.stdin.buffer.readline())
    request = ReadRequest(
        **{**document, "query": Query(**document["query"]), "flagged": Query(**document["flagged"])}
    )
    try:
        serve(request, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    except Exception as exc:
        # The driver's error for the parent's message (with the query it names), not a
        # traceback of this module.
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return 1
    return 0
