"""Reading the report's sources columnar: usage files (Parquet, CSV, gzipped CSV) on any
``pyarrow.fs`` filesystem, with the ``hub.usage`` schemas' types, and the shared helpers the
engines reduce them with (dense codes of a dictionary column, one row per record id, exact
totals over many files with copies of a record counted once, files reduced in parallel).

The adapters read the same files for reconciliation (``adapters/usage_files.py``); ``hub`` may
not import them, and a report reads whole files once, so this is the small reader it needs.
Low-cardinality text (IMSI, MSISDN, record and RAT type) is read as dictionaries straight from
Parquet's dictionary pages: the strings are never materialised per row.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hub.reconciliation.engine import hash_strings

T = TypeVar("T")


def _resolve(location: str, filesystem: pafs.FileSystem | None) -> tuple[pafs.FileSystem, str]:
    if filesystem is not None:
        return filesystem, location
    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), str(Path(location).resolve())


def _parsed_type(type_: pa.DataType) -> pa.DataType:
    # CSV timestamps parse to nanoseconds and are cut to the schema's unit afterwards.
    return pa.timestamp("ns", tz=type_.tz) if pa.types.is_timestamp(type_) else type_


def read_table(
    location: str,
    schema: pa.Schema,
    *,
    dictionaries: tuple[str, ...] = (),
    filesystem: pafs.FileSystem | None = None,
) -> pa.Table:
    """The columns of ``schema`` from one usage file, ``dictionaries`` dictionary-encoded.

    A nullable column the file lacks comes back as nulls; a required one is a ``KeyError``.
    """
    fs, path = _resolve(location, filesystem)
    name = Path(path).name
    if name.endswith(".parquet"):
        with fs.open_input_file(path) as source:
            parquet = pq.ParquetFile(source, read_dictionary=list(dictionaries))
            present = [f.name for f in schema if f.name in parquet.schema_arrow.names]
            table = parquet.read(columns=present)
    else:
        compression = "gzip" if name.endswith(".gz") else None
        with fs.open_input_stream(path, compression=compression) as source:
            try:
                table = pacsv.read_csv(
                    source,
                    read_options=pacsv.ReadOptions(block_size=64 << 20),
                    convert_options=pacsv.ConvertOptions(
                        column_types={f.name: _parsed_type(f.type) for f in schema},
                        include_columns=[f.name for f in schema],
                        include_missing_columns=True,
                        strings_can_be_null=True,
                    ),
                )
            except pa.ArrowInvalid as exc:
                if not str(exc).startswith("Empty CSV file"):
                    raise
                table = schema.empty_table()
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table[field.name]
            if field.name in dictionaries:
                if not pa.types.is_dictionary(column.type):
                    column = pc.dictionary_encode(column.cast(field.type))
            elif column.type != field.type:
                column = column.cast(field.type, safe=not pa.types.is_timestamp(field.type))
            columns.append(column)
        elif field.nullable:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            raise KeyError(f"{name}: no column {field.name!r}")
    return pa.Table.from_arrays(columns, names=schema.names)


def numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column as one numpy array (fill its nulls first); a single chunk without a copy."""
    if isinstance(column, pa.Array):
        return column.to_numpy(zero_copy_only=False)
    if column.num_chunks == 1:
        return column.chunk(0).to_numpy(zero_copy_only=False)
    if column.num_chunks == 0:
        return np.empty(0, column.type.to_pandas_dtype())
    return np.concatenate([chunk.to_numpy(zero_copy_only=False) for chunk in column.chunks])


def codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[object]]:
    """Dense int32 codes of a dictionary column whose chunks share one dictionary (see
    ``Table.unify_dictionaries``), -1 for null, and the dictionary's values."""
    if column.num_chunks == 0:
        return np.empty(0, np.int32), []
    dictionary = column.chunk(0).dictionary
    parts = [
        np.asarray(pc.fill_null(chunk.indices, -1).to_numpy(zero_copy_only=False), np.int32)
        for chunk in column.chunks
    ]
    return np.concatenate(parts), dictionary.to_pylist()


def first_copies(record_ids: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """A mask keeping one row per record id (the first), or None when every id is unique."""
    encoded = pc.dictionary_encode(record_ids)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks() if encoded.num_chunks else None
    if encoded is None or len(encoded.dictionary) == len(encoded):
        return None
    ids = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)
    copies = np.bincount(ids, minlength=len(encoded.dictionary))
    repeated = np.flatnonzero(copies[ids] > 1)
    # Of each repeated id, the first row: rows come in order, so unique's first index is it.
    _, first = np.unique(ids[repeated], return_index=True)
    keep = copies[ids] == 1
    keep[repeated[first]] = True
    return keep


# --- Totals over many files ----------------------------------------------------------------


@dataclass
class Part:
    """One file's usage: sums per bucket, and per row what de-duplication needs."""

    sums: dict[str, int]
    ids: pa.Array
    hashes: np.ndarray
    names: list[str]
    buckets: np.ndarray  # index into names
    quantity: np.ndarray

    @classmethod
    def of(
        cls,
        record_ids: pa.ChunkedArray,
        buckets: np.ndarray,
        names: list[str],
        quantity: np.ndarray,
    ) -> Part:
        """Rows whose bucket is ``names[buckets[i]]``; one pass per bucket (a handful)."""
        sums = {
            names[int(b)]: int(quantity[buckets == b].sum()) for b in np.unique(buckets)
        }  # only the buckets rows fall into: a dictionary may name values the quarter lacks
        ids = record_ids.combine_chunks() if record_ids.num_chunks != 1 else record_ids.chunk(0)
        return cls(sums, ids, hash_strings(ids)[0], names, buckets, quantity)


class Totals:
    """Quantities summed per bucket (``data:NR``, ``voice``, ``sms``...), exactly, file by
    file, and corrected at the end for records delivered more than once.

    Of each row only what the correction needs is kept: the record id, its 64-bit hash, the
    bucket and the quantity. Duplicates are found by sorting the hashes (no hash table over
    millions of strings); the few rows whose hash repeats are compared by the ids themselves,
    so a hash collision never merges two records. Of copies, the first (in file order) counts.
    """

    def __init__(self) -> None:
        self.sums: dict[str, int] = {}
        self.parts: list[Part] = []

    def add(self, part: Part) -> None:
        for name, value in part.sums.items():
            self.sums[name] = self.sums.get(name, 0) + value
        self.parts.append(part)

    def result(self) -> dict[str, int]:
        totals = dict(self.sums)
        if not self.parts:
            return totals
        hashes = np.concatenate([part.hashes for part in self.parts])
        ordered = np.sort(hashes)
        repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
        if not len(repeated):
            return totals
        # The rows whose hash repeats: a hash lookup in the (few) repeated hashes, which stay
        # in cache (a binary search per row took longer than the sort).
        found = pc.is_in(pa.array(hashes), value_set=pa.array(repeated))
        candidates = np.flatnonzero(np.asarray(numpy(found), bool))
        ids = pa.chunked_array([part.ids for part in self.parts], pa.string())
        keep = first_copies(ids.take(pa.array(candidates)))
        if keep is None:  # only a collision of hashes: every record is one
            return totals
        extra = candidates[~keep]
        offsets = np.cumsum([0] + [len(part.hashes) for part in self.parts])
        for index, part in enumerate(self.parts):
            rows = extra[(extra >= offsets[index]) & (extra < offsets[index + 1])] - offsets[index]
            for b in np.unique(part.buckets[rows]):
                name = part.names[int(b)]
                totals[name] -= int(part.quantity[rows[part.buckets[rows] == b]].sum())
        return totals


#: Files reduced at once: pyarrow and numpy release the GIL, and two files in flight keep
#: memory bounded (the machine the benchmark runs on has two cores).
PARALLEL_FILES = 2


def reduce_files(paths: list[str], reduce: Callable[[str], T]) -> Iterator[T]:
    """``reduce`` of each file, in the files' order, ``PARALLEL_FILES`` at a time."""
    with ThreadPoolExecutor(PARALLEL_FILES) as pool:
        pending: deque[Future[T]] = deque()
        for path in paths:
            pending.append(pool.submit(reduce, path))
            if len(pending) >= PARALLEL_FILES:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
