"""Files through ``pyarrow.fs``: export destinations, and the Parquet files the hub reads.

Everything is addressed by URI (``file:///srv/exports``, ``s3://warehouse/hub``,
``gs://...``), so a local folder and object storage go through the same code; credentials for
object storage come from the worker's environment, the way pyarrow reads them.

An export run writes its part files under ``_staging/<run id>/`` of the destination, with a
``.tmp`` suffix, closing each with its row count, size and SHA-256 (hashed as it is written, so
object storage is never read back for it). XML parts are validated against
``contracts/export.xsd`` as they close. Only when every part is written does
:meth:`ExportWriter.publish` rename them to their final names and then write the manifest, also
through a temporary name: the manifest is what makes a run visible. A failure before that
publishes nothing; a failure between the renames and the manifest leaves parts named after the
run, which the retry of the same run replaces before it writes the manifest.

A local destination is checked (``hub.paths``) by the activity before it is opened, and again
here right before every folder, file, rename or removal the writer makes: the target's folder
must still resolve inside the destination's root, and a file about to be written must not be a
symlink, so a link swapped into the folder after the check (``things -> /etc``) is refused, not
written through. What remains is the moment between that re-check and pyarrow's own open,
which pyarrow gives no way to close (see ``hub.paths``).

Errors are translated here: ``PermissionError`` and data that a format cannot hold are
permanent, a missing source file is ``NotFoundError``, other I/O errors are transient; a path
that leads out of the destination is permanent.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
import os
import posixpath
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from lxml import etree

from hub.errors import NotFoundError, PermanentError, TransientError
from hub.paths import LocationRefused, require_within
from hub.settings import CONTRACTS_DIR

SYSTEM = "files"
EXPORT_XSD = CONTRACTS_DIR / "export.xsd"
XML_NAMESPACE = "urn:telecom-hub:export:1"
STAGING_DIR = "_staging"
MANIFESTS_DIR = "_manifests"
MANIFEST_VERSION = 1


class InvalidExportFile(PermanentError):
    """A file the hub wrote does not match its contract (an XML part failing the XSD)."""


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Re-raise pyarrow's and the OS's errors in the hub's taxonomy, naming ``what``."""
    try:
        yield
    except (InvalidExportFile, TransientError, PermanentError):
        raise
    except FileNotFoundError as exc:
        raise NotFoundError(f"{what}: {exc}", system=SYSTEM) from exc
    except PermissionError as exc:
        raise PermanentError(f"{what}: permission denied: {exc}", system=SYSTEM) from exc
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise PermanentError(f"{what}: {exc}", system=SYSTEM) from exc
    except OSError as exc:
        raise TransientError(f"{what}: {exc}", system=SYSTEM) from exc


def open_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path within it of a URI or a local path; a relative path is
    taken from the working directory, as the hub's own ``data/`` is."""
    if "://" not in uri:
        uri = os.path.abspath(uri)
    with translated(f"cannot open {uri}"):
        return pafs.FileSystem.from_uri(uri)


def _join(*parts: str) -> str:
    return posixpath.join(*[part for part in parts if part])


def schema_json(schema: pa.Schema) -> list[dict[str, Any]]:
    """A schema as the manifest states it: name, Arrow type, nullable."""
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


# --- Reading --------------------------------------------------------------------------------


def parquet_batches(
    uri: str,
    batch_size: int,
    locate: Callable[[str], tuple[pafs.FileSystem, str] | None] | None = None,
) -> Generator[pa.RecordBatch]:
    """The record batches of a Parquet file, ``batch_size`` rows at a time (flat memory);
    ``locate`` answers for the locations it knows (the reconciliation workspace's files)."""
    located = locate(uri) if locate is not None else None
    filesystem, path = located if located is not None else open_uri(uri)
    with translated(f"cannot read {uri}"), filesystem.open_input_file(path) as source:
        reader = pq.ParquetFile(source)
        yield from reader.iter_batches(batch_size=batch_size)


# --- Writing one part file, per format ------------------------------------------------------


class _HashingSink:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, stream: pa.NativeFile) -> None:
        self._stream = stream
        self._sha256 = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        if self.closed:
            # A part writer dropped on abort may still flush from its finalizer: into nothing.
            return len(data)
        self._sha256.update(data)
        self.size += len(data)
        self._stream.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._stream.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
            self.closed = True

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()


@dataclass
class PartContext:
    """What a part file may say about itself (the XML header carries it)."""

    dataset: str
    export_id: str
    run_id: str
    partition: date


class PartWriter(ABC):
    """Writes record batches of one schema into one file."""

    extension: str

    @abstractmethod
    def __init__(
        self, sink: _HashingSink, schema: pa.Schema, context: PartContext, row_group_rows: int
    ) -> None: ...

    @abstractmethod
    def write(self, batch: pa.RecordBatch) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Finish the file (the sink is closed by the caller)."""


class ParquetPartWriter(PartWriter):
    """Parquet with zstd; batches are gathered into row groups of ``row_group_rows``."""

    extension = "parquet"

    def __init__(
        self, sink: _HashingSink, schema: pa.Schema, context: PartContext, row_group_rows: int
    ) -> None:
        self._writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
        self._row_group_rows = row_group_rows
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        if self._pending_rows >= self._row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = pa.Table.from_batches(self._pending)
            self._writer.write_table(table, row_group_size=self._row_group_rows)
            self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


class CsvPartWriter(PartWriter):
    """RFC 4180 CSV with a header line, UTF-8; timestamps as ``2026-01-15 10:00:00.000000Z``."""

    extension = "csv"

    def __init__(
        self, sink: _HashingSink, schema: pa.Schema, context: PartContext, row_group_rows: int
    ) -> None:
        self._writer = pa_csv.CSVWriter(pa.PythonFile(sink, mode="w"), schema)

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()


#: Characters XML 1.0 cannot carry at all (controls other than tab, newline, return).
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_column_type(data_type: pa.DataType) -> str:
    """The ``ColumnType`` of ``contracts/export.xsd`` for an Arrow type."""
    checks = (
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_integer, "integer"),
        (pa.types.is_decimal, "decimal"),
        (pa.types.is_floating, "double"),
        (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_date, "date"),
        (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "binary"),
        (pa.types.is_nested, "json"),
    )
    for check, name in checks:
        if check(data_type):
            return name
    return "string"


def xml_value(value: Any) -> str:
    """One value as the XSD's comment describes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "INF" if value > 0 else "-INF"
        return repr(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)
    return _NOT_XML.sub("\ufffd", str(value))


class XmlPartWriter(PartWriter):
    """The generic XML of ``contracts/export.xsd``, written as a stream (flat memory)."""

    extension = "xml"

    def __init__(
        self, sink: _HashingSink, schema: pa.Schema, context: PartContext, row_group_rows: int
    ) -> None:
        self._names = schema.names
        self._row_tag = f"{{{XML_NAMESPACE}}}row"
        self._field_tag = f"{{{XML_NAMESPACE}}}field"
        self._stack = ExitStack()
        self._xml = self._stack.enter_context(etree.xmlfile(sink, encoding="utf-8"))
        self._xml.write_declaration()
        self._stack.enter_context(
            self._xml.element(
                f"{{{XML_NAMESPACE}}}export",
                nsmap={None: XML_NAMESPACE},
                dataset=context.dataset,
                exportId=context.export_id,
                runId=context.run_id,
                partition=context.partition.isoformat(),
            )
        )
        with self._xml.element(f"{{{XML_NAMESPACE}}}columns"):
            for column in schema:
                with self._xml.element(
                    f"{{{XML_NAMESPACE}}}column",
                    name=column.name,
                    type=xml_column_type(column.type),
                    arrowType=str(column.type),
                    nullable="true" if column.nullable else "false",
                ):
                    pass
        self._xml.write("\n")

    def write(self, batch: pa.RecordBatch) -> None:
        # Nested xmlfile contexts, not written elements: they share the root's namespace
        # declaration instead of repeating it on every row.
        xml, row_tag, field_tag = self._xml, self._row_tag, self._field_tag
        for record in batch.to_pylist():
            with xml.element(row_tag):
                for name in self._names:
                    value = record[name]
                    if value is not None:
                        with xml.element(field_tag, name=name):
                            xml.write(xml_value(value))
            xml.write("\n")

    def close(self) -> None:
        self._stack.close()


FORMATS: dict[str, type[PartWriter]] = {
    "parquet": ParquetPartWriter,
    "csv": CsvPartWriter,
    "xml": XmlPartWriter,
}


class XmlValidator:
    """Validates export XML against ``contracts/export.xsd`` in flat memory.

    lxml's validating parser keeps memory per element it has seen, so a file of millions of
    rows is read with ``iterparse`` instead and validated in pieces that together are the
    whole document: the root with its columns (rows are optional there), each ``row`` on its
    own (a global element of the XSD), and the root's content order (columns, then rows).
    """

    def __init__(self, xsd: Path = EXPORT_XSD) -> None:
        self.schema = etree.XMLSchema(etree.parse(str(xsd)))
        self._root = f"{{{XML_NAMESPACE}}}export"
        self._columns = f"{{{XML_NAMESPACE}}}columns"
        self._row = f"{{{XML_NAMESPACE}}}row"

    def validate(self, source: Any) -> int:
        """Validate the XML read from ``source`` (a path or a binary file object); answer the
        number of rows, or raise :class:`InvalidExportFile` saying where and why."""
        root: Any = None
        rows = 0
        seen_columns = False
        try:
            for event, element in etree.iterparse(
                source, events=("start", "end"), huge_tree=True, remove_comments=True
            ):
                if event == "start":
                    if root is None:
                        root = element
                        if element.tag != self._root:
                            self._fail(f"the root element is {element.tag}, not {self._root}")
                    continue
                if element is root or element.getparent() is not root:
                    continue
                if (element.tail or "").strip():
                    self._fail("text between the elements of <export>")
                if element.tag == self._columns and not seen_columns and rows == 0:
                    header = etree.Element(root.tag, attrib=dict(root.attrib), nsmap=root.nsmap)
                    header.append(copy.deepcopy(element))
                    self._check(header, "the header (<export> and <columns>)")
                    seen_columns = True
                elif element.tag == self._row and seen_columns:
                    self._check(element, f"row {rows + 1}")
                    rows += 1
                else:
                    self._fail(f"unexpected <{element.tag}> after {rows} rows")
                element.clear()
                while element.getprevious() is not None:
                    del root[0]
        except etree.XMLSyntaxError as exc:
            raise InvalidExportFile(f"not well-formed XML: {exc}", system=SYSTEM) from exc
        if root is None or not seen_columns:
            self._fail("no <columns>")
        if (root.text or "").strip():
            self._fail("text directly inside <export>")
        return rows

    def _check(self, element: Any, what: str) -> None:
        if not self.schema.validate(element):
            error = self.schema.error_log.last_error
            raise InvalidExportFile(f"{what} does not match export.xsd: {error}", system=SYSTEM)

    @staticmethod
    def _fail(message: str) -> None:
        raise InvalidExportFile(f"does not match export.xsd: {message}", system=SYSTEM)


# --- A run's files --------------------------------------------------------------------------


@dataclass
class FileEntry:
    """A published part file, as the manifest lists it; ``path`` is relative to the root."""

    path: str
    partition: str
    rows: int
    bytes: int
    sha256: str
    schema: list[dict[str, Any]]

    def as_json(self, run_schema: list[dict[str, Any]]) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "path": self.path,
            "partition": {"date": self.partition},
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }
        if self.schema != run_schema:
            entry["schema"] = self.schema
        return entry


@dataclass
class PublishedRun:
    manifest_uri: str
    manifest_path: str
    files: list[FileEntry]
    rows: int
    bytes: int


@dataclass
class _OpenPart:
    relative: str
    partition: date
    schema: pa.Schema
    sink: _HashingSink
    writer: PartWriter
    rows: int = 0


@dataclass
class WriterOptions:
    row_group_rows: int = 128 * 1024
    max_rows_per_file: int = 5_000_000


class ExportWriter:
    """Writes one export run's part files into staging; :meth:`publish` makes them visible.

    Parts are ``<dataset>/date=YYYY-MM-DD/part-<run id>-<nnnnn>.<format>``; a new part starts
    when the date, or the schema, changes, or when one reaches ``max_rows_per_file``.
    """

    def __init__(
        self,
        destination: Destination,
        *,
        dataset: str,
        export_id: str,
        run_id: str,
        format: str,
        options: WriterOptions | None = None,
        validator: XmlValidator | None = None,
    ) -> None:
        if format not in FORMATS:
            raise PermanentError(f"unknown export format {format!r}", system=SYSTEM)
        self.destination = destination
        self.dataset = dataset
        self.export_id = export_id
        self.run_id = run_id
        self.options = options or WriterOptions()
        self._part_type = FORMATS[format]
        self.validator = validator or (XmlValidator() if format == "xml" else None)
        self.staging = _join(destination.root, STAGING_DIR, run_id)
        self._current: _OpenPart | None = None
        self._done: list[FileEntry] = []
        self._sequence = 0

    @property
    def files_written(self) -> int:
        return len(self._done) + (1 if self._current else 0)

    def start(self) -> None:
        """Clear what an earlier attempt of this run may have left in staging."""
        self.destination.remove_dir(self.staging)

    def write(self, partition: date, batch: pa.RecordBatch) -> None:
        offset = 0
        while offset < batch.num_rows:
            part = self._part_for(partition, batch.schema)
            room = self.options.max_rows_per_file - part.rows
            piece = batch.slice(offset, room)
            with translated(f"cannot write {part.relative}"):
                part.writer.write(piece)
            part.rows += piece.num_rows
            offset += piece.num_rows

    def _part_for(self, partition: date, schema: pa.Schema) -> _OpenPart:
        current = self._current
        if (
            current is not None
            and current.partition == partition
            and current.schema.equals(schema)
            and current.rows < self.options.max_rows_per_file
        ):
            return current
        self._close_current()
        relative = _join(
            self.dataset,
            f"date={partition.isoformat()}",
            f"part-{self.run_id}-{self._sequence:05d}.{self._part_type.extension}",
        )
        self._sequence += 1
        staged = _join(self.staging, relative) + ".tmp"
        with translated(f"cannot create {relative}"):
            self.destination.create_dir(posixpath.dirname(staged))
            sink = _HashingSink(self.destination.open_output_stream(staged))
            context = PartContext(self.dataset, self.export_id, self.run_id, partition)
            writer = self._part_type(sink, schema, context, self.options.row_group_rows)
        self._current = _OpenPart(relative, partition, schema, sink, writer)
        return self._current

    def _close_current(self) -> None:
        part, self._current = self._current, None
        if part is None:
            return
        with translated(f"cannot finish {part.relative}"):
            part.writer.close()
            part.sink.close()
        if self.validator is not None:
            staged = _join(self.staging, part.relative) + ".tmp"
            filesystem = self.destination.filesystem
            with (
                translated(f"cannot read back {part.relative}"),
                filesystem.open_input_stream(staged) as stream,
            ):
                rows = self.validator.validate(stream)
            if rows != part.rows:
                raise InvalidExportFile(
                    f"{part.relative}: {rows} rows read back, {part.rows} written", system=SYSTEM
                )
        self._done.append(
            FileEntry(
                path=part.relative,
                partition=part.partition.isoformat(),
                rows=part.rows,
                bytes=part.sink.size,
                sha256=part.sink.sha256,
                schema=schema_json(part.schema),
            )
        )

    def publish(self, manifest: dict[str, Any], schema: pa.Schema | None) -> PublishedRun:
        """Rename every part into place, then write the manifest (``manifest`` plus the files,
        totals and schema); answer where it is. Call once, after the last :meth:`write`."""
        self._close_current()
        run_schema = schema_json(schema) if schema is not None else []
        if not run_schema and self._done:
            run_schema = self._done[0].schema
        for entry in self._done:
            final = _join(self.destination.root, entry.path)
            with translated(f"cannot publish {entry.path}"):
                self.destination.create_dir(posixpath.dirname(final))
                self.destination.move(_join(self.staging, entry.path) + ".tmp", final)
        rows = sum(entry.rows for entry in self._done)
        size = sum(entry.bytes for entry in self._done)
        document = {
            "manifestVersion": MANIFEST_VERSION,
            **manifest,
            "rows": rows,
            "bytes": size,
            "schema": run_schema,
            "files": [entry.as_json(run_schema) for entry in self._done],
        }
        manifest_path = _join(self.dataset, MANIFESTS_DIR, f"{self.run_id}.json")
        staged = _join(self.staging, manifest_path) + ".tmp"
        final = _join(self.destination.root, manifest_path)
        body = json.dumps(document, indent=2, sort_keys=False).encode("utf-8") + b"\n"
        with translated(f"cannot publish {manifest_path}"):
            self.destination.create_dir(posixpath.dirname(staged))
            with self.destination.open_output_stream(staged) as out:
                out.write(body)
            self.destination.create_dir(posixpath.dirname(final))
            self.destination.move(staged, final)
        self.destination.remove_dir(self.staging)
        return PublishedRun(
            manifest_uri=self.destination.uri_of(manifest_path),
            manifest_path=manifest_path,
            files=list(self._done),
            rows=rows,
            bytes=size,
        )

    def abort(self) -> None:
        """Drop everything staged (best effort: a later attempt clears it anyway)."""
        part, self._current = self._current, None
        if part is not None:
            with suppress(OSError):
                part.sink.close()
            with suppress(Exception):
                part.writer.close()
        with suppress(TransientError, PermanentError):
            self.destination.remove_dir(self.staging)


class Destination:
    """One export destination: a folder or a bucket prefix, by URI.

    Writes go through its methods, which re-check a local path just before they touch it.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.filesystem, self.root = open_uri(uri)
        self.root = self.root.rstrip("/") or "/"
        # The root as it resolves now, right after the activity checked it: every write must
        # stay below it. Object storage has no links to follow.
        local = isinstance(self.filesystem, pafs.LocalFileSystem)
        self._real_root = os.path.realpath(self.root) if local else None

    def uri_of(self, relative: str) -> str:
        parts = urlsplit(self.uri)
        base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        return f"{base}/{quote(relative)}"

    def guard(self, path: str, *, follow_last: bool = False) -> None:
        """Refuse, as a permanent error, to touch ``path`` unless it (its folder, unless
        ``follow_last``, and then it must not be a symlink) resolves inside the root now."""
        if self._real_root is None:
            return
        try:
            require_within(path, self._real_root, follow_last=follow_last)
        except LocationRefused as exc:
            raise PermanentError(
                f"destination changed since it was checked: {exc}", system=SYSTEM
            ) from exc

    def create_dir(self, path: str) -> None:
        self.guard(path, follow_last=True)
        self.filesystem.create_dir(path, recursive=True)

    def open_output_stream(self, path: str) -> pa.NativeFile:
        self.guard(path)
        return self.filesystem.open_output_stream(path)

    def move(self, source: str, target: str) -> None:
        self.guard(source)
        self.guard(target)
        self.filesystem.move(source, target)

    def remove_dir(self, path: str) -> None:
        with translated(f"cannot clear {path}"):
            self.guard(path)
            info = self.filesystem.get_file_info(path)
            if info.type == pafs.FileType.Directory:
                self.filesystem.delete_dir(path)

    def writer(
        self,
        *,
        dataset: str,
        export_id: str,
        run_id: str,
        format: str,
        options: WriterOptions | None = None,
    ) -> ExportWriter:
        return ExportWriter(
            self,
            dataset=dataset,
            export_id=export_id,
            run_id=run_id,
            format=format,
            options=options or WriterOptions(),
        )


class Files:
    """The files adapter the export activities receive: destinations and sources by URI.

    Tests pass a subclass that fails on purpose (a full disk, a lost connection) part-way.
    ``locate`` opens the files it knows with their own filesystem: the reconciliation
    workspace's (``hub.reconciliation.workspace.Store.locate``), whose S3 client has its own
    endpoint and keys.
    """

    locate: Callable[[str], tuple[pafs.FileSystem, str] | None] | None = None

    def __init__(
        self, locate: Callable[[str], tuple[pafs.FileSystem, str] | None] | None = None
    ) -> None:
        self.locate = locate

    def destination(self, uri: str) -> Destination:
        return Destination(uri)

    def parquet_batches(self, uri: str, batch_size: int) -> Generator[pa.RecordBatch]:
        return parquet_batches(uri, batch_size, self.locate)
