"""Usage files (CDRs from mediation, rated usage from billing) on any ``pyarrow.fs`` filesystem.

A location is a folder given as a local path or a URI (``file:///srv/drop/cdr``,
``s3://bucket/cdr``): every file under it whose name ends in ``.parquet``, ``.csv`` or
``.csv.gz`` is an input, read with the columns and types of a ``hub.usage`` schema.

Errors are the hub's: a file that cannot be parsed, or lacks a column, is a
:class:`~hub.errors.PermanentError` naming the file (retrying cannot fix it); a filesystem that
does not answer is a :class:`~hub.errors.TransientError`. Nothing above sees a pyarrow error.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hub.errors import NotFoundError, PermanentError, TransientError
from hub.redact import redact_uri

SYSTEM = "files"
SUFFIXES = (".parquet", ".csv", ".csv.gz")
#: Rows per batch when a file is streamed.
BATCH_ROWS = 1_000_000


@dataclass(frozen=True)
class UsageFile:
    """One input file: where it is, and how big (to plan partitions)."""

    uri: str
    size: int
    #: The file's base name (``cdr-00001.parquet``).
    name: str = ""


#: Answers the filesystem and path of a location it knows (the reconciliation workspace's
#: files, with its own S3 client), None for any other: ``Store.locate``.
Locator = Callable[[str], "tuple[pafs.FileSystem, str] | None"]


def resolve(location: str, locate: Locator | None = None) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path of a local path or a ``pyarrow.fs`` URI (``locate`` first)."""
    if locate is not None and (located := locate(location)) is not None:
        return located
    if "://" not in location:
        return pafs.LocalFileSystem(), str(Path(location).resolve())
    try:
        return pafs.FileSystem.from_uri(location)
    except (pa.ArrowInvalid, ValueError) as exc:
        raise PermanentError(
            f"not a usable location {redact_uri(location)!r}: {redact_uri(str(exc))}",
            system=SYSTEM,
        ) from exc


def _uri(location: str, base: str, path: str) -> str:
    """The URI of ``path``, a file found under ``location``: with the location's credentials
    and options (``?region=...``), so whoever reads it later reaches the same storage. The
    file's name is percent-encoded, as pyarrow decodes it: a folder literally named ``%2e%2e``
    must not come back as ``..``."""
    if "://" not in location:
        return path
    parts = urlsplit(location)
    relative = path[len(base) :] if path.startswith(base) else ""
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + quote(relative)))


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError as exc:
        raise NotFoundError(f"{what}: not found", system=SYSTEM) from exc
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, KeyError) as exc:
        raise PermanentError(f"{what}: {_first_line(exc)}", system=SYSTEM) from exc
    except OSError as exc:
        raise TransientError(f"{what}: {_first_line(exc)}", system=SYSTEM) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def list_files(
    location: str, *, exclude: tuple[str, ...] = (), locate: Locator | None = None
) -> list[UsageFile]:
    """Every usage file under ``location`` (recursively), by name; ``exclude``: base names."""
    filesystem, base = resolve(location, locate)
    with _translated(redact_uri(location)):
        info = filesystem.get_file_info(base)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(base)
        if info.type == pafs.FileType.File:
            infos = [info]
        else:
            infos = filesystem.get_file_info(pafs.FileSelector(base, recursive=True))
    return sorted(
        (
            UsageFile(_uri(location, base, item.path), item.size or 0, item.base_name)
            for item in infos
            if item.type == pafs.FileType.File
            and item.base_name.endswith(SUFFIXES)
            and item.base_name not in exclude
            and not item.base_name.startswith((".", "_"))
        ),
        key=lambda item: item.uri,
    )


def read_batches(
    uri: str,
    schema: pa.Schema,
    *,
    batch_rows: int = BATCH_ROWS,
    locate: Locator | None = None,
    dictionaries: Collection[str] = (),
) -> Iterator[pa.Table]:
    """The file's rows as tables of ``schema``'s columns (those present in ``schema``).

    Columns of the file that ``schema`` does not name are not read. A column the schema
    names but the file lacks is an error, except nullable ones, which come back as nulls.
    The string columns named in ``dictionaries`` come from a Parquet file as it stores them,
    dictionary-encoded (low-cardinality text, so no string is made per row); from a CSV file
    they are plain strings.
    """
    filesystem, path = resolve(uri, locate)
    name = Path(path).name
    with _translated(name):
        if name.endswith(".parquet"):
            yield from _parquet(filesystem, path, schema, batch_rows, dictionaries)
        else:
            yield from _csv(filesystem, path, schema, batch_rows, gzip=name.endswith(".gz"))


def _conform(
    table: pa.Table, schema: pa.Schema, name: str, dictionaries: Collection[str] = ()
) -> pa.Table:
    columns, fields = [], []
    for field in schema:
        if field.name in table.column_names:
            column = table[field.name]
            if (
                field.name in dictionaries
                and pa.types.is_dictionary(column.type)
                and column.type.value_type == field.type
            ):
                field = field.with_type(column.type)  # kept encoded, as asked
            elif column.type != field.type:
                # Timestamps finer than the schema's (micro-, nanoseconds) are cut, not refused.
                column = column.cast(field.type, safe=not pa.types.is_timestamp(field.type))
            if not field.nullable and column.null_count:
                raise PermanentError(
                    f"{name}: column {field.name!r} has {column.null_count} empty value(s)",
                    system=SYSTEM,
                )
            columns.append(column)
        elif field.nullable:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            raise PermanentError(f"{name}: no column {field.name!r}", system=SYSTEM)
        fields.append(field)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=schema.metadata))


def _parquet(
    filesystem: pafs.FileSystem,
    path: str,
    schema: pa.Schema,
    batch_rows: int,
    dictionaries: Collection[str] = (),
) -> Iterator[pa.Table]:
    name = Path(path).name
    with filesystem.open_input_file(path) as source:
        parquet = pq.ParquetFile(source, read_dictionary=list(dictionaries))
        present = [field.name for field in schema if field.name in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=present):
            yield _conform(pa.Table.from_batches([batch]), schema, name, dictionaries)


def _parsed_type(type_: pa.DataType) -> pa.DataType:
    """CSV timestamps are parsed to nanoseconds, then cut to the schema's unit."""
    if pa.types.is_timestamp(type_):
        return pa.timestamp("ns", tz=type_.tz)
    return type_


def _csv(
    filesystem: pafs.FileSystem, path: str, schema: pa.Schema, batch_rows: int, *, gzip: bool
) -> Iterator[pa.Table]:
    name = Path(path).name
    with filesystem.open_input_stream(path, compression="gzip" if gzip else None) as source:
        try:
            reader = pacsv.open_csv(
                source,
                read_options=pacsv.ReadOptions(block_size=64 << 20),
                convert_options=pacsv.ConvertOptions(
                    column_types={field.name: _parsed_type(field.type) for field in schema},
                    include_columns=[field.name for field in schema],
                    include_missing_columns=True,
                    strings_can_be_null=True,
                ),
            )
        except pa.ArrowInvalid as exc:
            if str(exc).startswith("Empty CSV file"):
                return  # an empty drop (no header either): no rows
            raise
        pending: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            pending.append(batch)
            rows += batch.num_rows
            if rows >= batch_rows:
                yield _conform(pa.Table.from_batches(pending), schema, name)
                pending, rows = [], 0
        if pending:
            yield _conform(pa.Table.from_batches(pending), schema, name)
