"""The reconciliation engine: network usage against billing's rated usage, columnar throughout.

Both sides are keyed by ``record_id``. The work runs in two stages, so that it splits into
independent activities (and more workers make it faster):

1. **split** (one task per input file): read the file, keep the period's rows, reduce them to
   a compact *work* schema (:data:`NETWORK_WORK` / :data:`BILLING_WORK`: the kind of usage as a
   code, the quantity billing charges for, a tariff code instead of a name, two 64-bit hashes
   of the record id), and write them hash-partitioned into one Arrow IPC file with one record
   batch per partition.
2. **reconcile** (one task per partition): the partition's batches of both sides are joined
   on the record id's hash, every key is classified (see :class:`hub.usage.Category`) and
   priced, and the discrepancies are written as one Parquet file.

Usage is data (priced per octet), voice (per second) or SMS (per message: an SMS is a count,
quantity 1 on both sides, so only its charge and its copies can be wrong, never its volume or
duration). A charge whose tariff has no price for its kind of usage is reported as an unknown
tariff, not checked against a guess.

The join is done with vectorised primitives on the 64-bit hashes: numpy sorts them into dense
codes, counts copies per code and picks one row per code per side.
Two records can only be confused if *both* independent 64-bit hashes of their ids collide;
the second hash is checked for every row, and a partition where it disagrees (probability
about 2^-64 per pair) is redone comparing the record ids themselves.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hub.usage import (
    BYTES_PER_MB,
    CHARGE_DECIMALS,
    NETWORK_SCHEMA,
    RATED_SCHEMA,
    UTC_MILLIS,
    Category,
    Tariff,
)

# --- Work schemas --------------------------------------------------------------------------

#: The kinds of usage, in the order of their codes in the work schemas' ``usage`` column.
USAGE_TYPES = ("data", "voice", "sms")
DATA, VOICE, SMS = range(len(USAGE_TYPES))

#: The input columns reconciliation reads; a file's other columns are never decoded.
NETWORK_INPUT = pa.schema(
    [
        NETWORK_SCHEMA.field(name)
        for name in (
            "record_id",
            "record_type",
            "served_msisdn",
            "record_opening_time",
            "duration",
            "uplink_volume",
            "downlink_volume",
        )
    ]
)
RATED_INPUT = RATED_SCHEMA
#: The inputs' low-cardinality text columns, read as the Parquet files keep them: dictionaries.
NETWORK_DICTIONARIES: tuple[str, ...] = ("record_type",)
RATED_DICTIONARIES: tuple[str, ...] = ("usage_type", "tariff")

NETWORK_WORK = pa.schema(
    [
        pa.field("record_id", pa.string()),
        pa.field("h1", pa.uint64()),
        pa.field("h2", pa.uint64()),
        #: Index into :data:`USAGE_TYPES`; a type the engine does not know counts as data.
        pa.field("usage", pa.int8()),
        #: Octets (data), seconds (voice) or 1 (an SMS): what billing charges for.
        pa.field("quantity", pa.int64()),
        pa.field("event_time", UTC_MILLIS),
        pa.field("msisdn", pa.string()),
    ]
)

BILLING_WORK = pa.schema(
    [
        *NETWORK_WORK,
        #: Index into the run's tariff table; -1 when billing named a plan the table lacks.
        pa.field("tariff", pa.int16()),
        pa.field("charge", pa.float64()),
        pa.field("billed", pa.bool_()),
    ]
)

DISCREPANCY_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
        pa.field("usage_type", pa.string()),
        pa.field("msisdn", pa.string()),
        pa.field("event_time", UTC_MILLIS),
        pa.field("network_quantity", pa.int64()),
        pa.field("billed_quantity", pa.int64()),
        pa.field("network_copies", pa.int32()),
        pa.field("billing_copies", pa.int32()),
        pa.field("tariff", pa.string()),
        pa.field("charge", pa.float64()),
        pa.field("expected_charge", pa.float64()),
        #: Signed, in the run's currency: positive is revenue lost, negative over-billed.
        pa.field("revenue_impact", pa.float64()),
    ]
)


@dataclass(frozen=True)
class Tolerances:
    """How far the two sides may differ before it is a discrepancy.

    A data record's volumes match when they differ by at most ``volume_bytes`` or
    ``volume_ratio`` of the network's volume, whichever is larger; a call's durations when
    they differ by at most ``duration_seconds``; a charge matches its tariff within ``charge``.
    An SMS is one message on both sides: only its charge is compared.
    """

    volume_bytes: int = 1024
    volume_ratio: float = 0.001
    duration_seconds: int = 1
    charge: float = 0.01
    #: How far apart the two sides' times of one record may be. Both sides are read this much
    #: beyond the period, and a record belongs to the period by the network's time (billing's
    #: when the network has none), so a record near an edge counts in exactly one period.
    clock_skew_seconds: int = 3600


@dataclass
class TariffTable:
    """The run's tariffs as arrays indexed by tariff code (the order of ``plans``)."""

    plans: list[str]
    #: Price per unit of usage: row :data:`DATA` per octet, :data:`VOICE` per second,
    #: :data:`SMS` per message (NaN where the tariff has no SMS price); a last column of NaN
    #: answers for unknown codes.
    prices: np.ndarray

    @classmethod
    def of(cls, tariffs: Sequence[Tariff]) -> TariffTable:
        prices = np.full((len(USAGE_TYPES), len(tariffs) + 1), np.nan)
        for code, t in enumerate(tariffs):
            prices[DATA, code] = t.data_price_per_mb / BYTES_PER_MB
            prices[VOICE, code] = t.voice_price_per_minute / 60
            if t.sms_price_per_message is not None:
                prices[SMS, code] = t.sms_price_per_message
        return cls(plans=[t.plan for t in tariffs], prices=prices)

    def unit_price(self, codes: np.ndarray, usage: np.ndarray) -> np.ndarray:
        """Price per octet, second or message for each (code, usage code); NaN where the code
        is unknown (-1) or its tariff has no price for the usage."""
        return self.prices[usage, np.where(codes >= 0, codes, len(self.plans))]

    def codes(self, plans: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The code of each plan named, -1 for a plan the table lacks (or none)."""
        return by_value(plans, self._codes, -1, np.int16)

    def _codes(self, plans: pa.Array) -> np.ndarray:
        found = pc.index_in(plans, value_set=pa.array(self.plans, pa.string()))
        return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), np.int16)


# --- Hashing -------------------------------------------------------------------------------

_TAIL_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(8)] + [2**64 - 1], dtype=np.uint64)
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_M4 = np.uint64(0xD6E8FEB86659FD93)
_S1, _S2 = np.uint64(32), np.uint64(29)


def _finish(h: np.ndarray) -> np.ndarray:
    h ^= h >> np.uint64(31)
    h *= _M3
    h ^= h >> np.uint64(29)
    return h


def hash_strings(array: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of each string, eight bytes at a time.

    Reads Arrow's offsets and data buffers directly (no Python object per string).
    """
    if isinstance(array, pa.ChunkedArray):
        parts = [hash_strings(chunk) for chunk in array.chunks]
        if not parts:
            return np.empty(0, np.uint64), np.empty(0, np.uint64)
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
        )
    if array.null_count:
        raise ValueError("record_id must not be empty")
    if pa.types.is_large_string(array.type):
        offset_type: type[np.signedinteger] = np.int64
    elif pa.types.is_string(array.type):
        offset_type = np.int32
    else:
        raise TypeError(f"record ids must be strings, not {array.type}")
    count = len(array)
    if count == 0:
        return np.empty(0, np.uint64), np.empty(0, np.uint64)
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[
        array.offset : array.offset + count + 1
    ].astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer else np.empty(0, np.uint8)
    first, last = int(offsets[0]), int(offsets[-1])
    starts = offsets[:-1] - first
    lengths = offsets[1:] - offsets[:-1]
    longest = int(lengths.max())
    # Room after the data for an 8-byte read at any offset up to the longest string.
    padded = np.zeros(last - first + longest + 8, dtype=np.uint8)
    padded[: last - first] = data[first:last]
    # An unaligned little-endian uint64 view starting at every byte of the data.
    words = np.ndarray(shape=(len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    h1 = lengths.astype(np.uint64)
    h2 = h1 * _M4
    h2 += _M1
    h1 *= _M1
    shortest = int(lengths.min())
    a, b, shifted = np.empty_like(h1), np.empty_like(h2), np.empty_like(h1)
    at = np.empty_like(starts)
    for k in range(0, longest, 8):
        word = words[np.add(starts, k, out=at)]
        if shortest < k + 8:  # some strings end within this word: mask the bytes past them
            remaining = np.clip(lengths - k, 0, 8)
            word &= _TAIL_MASKS[remaining]
        np.bitwise_xor(h1, word, out=a)
        a *= _M2
        a ^= np.right_shift(a, _S1, out=shifted)
        np.add(h2, word, out=b)
        b *= _M3
        b ^= np.right_shift(b, _S2, out=shifted)
        if shortest <= k:
            # Strings already consumed keep their hash: it never depends on the neighbours.
            ended = remaining == 0
            np.copyto(a, h1, where=ended)
            np.copyto(b, h2, where=ended)
        h1, a = a, h1
        h2, b = b, h2
    return _finish(h1), _finish(h2)


# --- Split ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def mask(self, times: pa.Array | pa.ChunkedArray) -> pa.Array:
        start = pa.scalar(self.start, UTC_MILLIS)
        end = pa.scalar(self.end, UTC_MILLIS)
        inside = pc.and_(pc.greater_equal(times, start), pc.less(times, end))
        return pc.fill_null(inside, False)

    def keep(self, table: pa.Table, column: str) -> pa.Table:
        """The rows of ``table`` whose ``column`` is in the period (no copy if all are)."""
        inside = self.mask(table[column])
        if pc.all(inside).as_py() is not False:
            return table
        return table.filter(inside)

    def widened(self, seconds: float) -> Period:
        return Period(
            self.start - timedelta(seconds=seconds), self.end + timedelta(seconds=seconds)
        )

    def millis(self) -> tuple[int, int]:
        return int(self.start.timestamp() * 1000), int(self.end.timestamp() * 1000)


def by_value(
    column: pa.ChunkedArray | pa.Array,
    lookup: Callable[[pa.Array], np.ndarray],
    missing: int,
    dtype: type[np.integer],
) -> np.ndarray:
    """``lookup`` of each row's value, ``missing`` where it is null, computed once per
    distinct value: on the column's dictionary (plain text is dictionary-encoded first)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = [np.empty(0, dtype)]
    for chunk in chunks:
        if not pa.types.is_dictionary(chunk.type):
            chunk = pc.dictionary_encode(chunk)
        values = np.append(np.asarray(lookup(chunk.dictionary), dtype), np.asarray(missing, dtype))
        indices = chunk.indices
        if indices.null_count:
            indices = pc.fill_null(indices, len(chunk.dictionary))
        parts.append(values[indices.to_numpy()])
    return np.concatenate(parts)


def _usage_codes(kinds: pa.Array) -> np.ndarray:
    """Each kind's index in :data:`USAGE_TYPES`; data for a kind the engine does not know."""
    found = pc.index_in(kinds, value_set=pa.array(USAGE_TYPES, pa.string()))
    return np.asarray(pc.fill_null(found, DATA).to_numpy(zero_copy_only=False), np.int8)


def _numbers(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An integer column as int64, 0 where it is empty."""
    return np.asarray(pc.fill_null(column, 0).to_numpy(), np.int64)


def _work(
    table: pa.Table,
    kind: str,
    duration: pa.ChunkedArray,
    volume: pa.ChunkedArray,
    time: str,
    msisdn: str,
) -> list[pa.Array | pa.ChunkedArray]:
    """The columns both work schemas start with; ``kind`` names the usage type column."""
    ids = table["record_id"].combine_chunks() if table.num_rows else pa.array([], pa.string())
    h1, h2 = hash_strings(ids)
    usage = by_value(table[kind], _usage_codes, DATA, np.int8)
    # Octets of data, seconds of a call; an SMS is one message, whatever else it carries.
    quantity = np.where(usage == VOICE, _numbers(duration), _numbers(volume))
    quantity[usage == SMS] = 1
    return [
        ids,
        pa.array(h1),
        pa.array(h2),
        pa.array(usage),
        pa.array(quantity),
        table[time],
        table[msisdn],
    ]


def network_work(table: pa.Table, period: Period) -> pa.Table:
    """Mediation CDRs (``hub.usage.NETWORK_SCHEMA`` columns) to :data:`NETWORK_WORK`."""
    table = period.keep(table, "record_opening_time")
    volume = pc.add(
        pc.fill_null(table["uplink_volume"], 0), pc.fill_null(table["downlink_volume"], 0)
    )
    columns = _work(
        table, "record_type", table["duration"], volume, "record_opening_time", "served_msisdn"
    )
    return pa.Table.from_arrays(columns, schema=NETWORK_WORK)


def billing_work(table: pa.Table, period: Period, tariffs: TariffTable) -> pa.Table:
    """Billing's rated records (``hub.usage.RATED_SCHEMA`` columns) to :data:`BILLING_WORK`."""
    table = period.keep(table, "start_time")
    columns = _work(table, "usage_type", table["duration"], table["volume"], "start_time", "msisdn")
    columns += [
        pa.array(tariffs.codes(table["tariff"]), pa.int16()),
        pc.fill_null(pc.cast(table["charge"], pa.float64()), 0.0),
        pc.fill_null(table["billed"], False),
    ]
    return pa.Table.from_arrays(columns, schema=BILLING_WORK)


def partition_of(h1: np.ndarray, partitions: int) -> np.ndarray:
    """The partition of each hash: its top bits (``partitions`` is a power of two)."""
    if partitions == 1:
        return np.zeros(len(h1), dtype=np.uint16)
    bits = partitions.bit_length() - 1
    return (h1 >> np.uint64(64 - bits)).astype(np.uint16)


def check_partitions(partitions: int) -> None:
    if partitions < 1 or partitions > 4096 or partitions & (partitions - 1):
        raise ValueError(f"partitions must be a power of two from 1 to 4096, not {partitions}")


def split(work: pa.Table, partitions: int) -> list[pa.RecordBatch]:
    """One record batch per partition (possibly empty), in partition order."""
    check_partitions(partitions)
    if partitions == 1:
        return [_one_batch(work)]
    part = partition_of(work["h1"].to_numpy(), partitions)
    order = np.argsort(part, kind="stable")
    ordered = work.take(pa.array(order))
    bounds = np.zeros(partitions + 1, dtype=np.int64)
    np.cumsum(np.bincount(part, minlength=partitions), out=bounds[1:])
    return [
        _one_batch(ordered.slice(int(lo), int(hi - lo))) for lo, hi in itertools.pairwise(bounds)
    ]


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    table = table.combine_chunks()
    return pa.RecordBatch.from_arrays(
        [
            column.chunk(0) if column.num_chunks else pa.array([], column.type)
            for column in table.columns
        ],
        schema=table.schema,
    )


def write_split(
    sink: pa.NativeFile | str | Path, schema: pa.Schema, groups: Iterable[Sequence[pa.RecordBatch]]
) -> None:
    """Write a split as one Arrow IPC file into ``sink`` (publishing it is the workspace's
    job: :meth:`hub.reconciliation.workspace.Store.open_output`).

    Each group holds one batch per partition, in partition order, so batch ``i`` of the file
    belongs to partition ``i % partitions``: a large input streams through in groups.
    """
    with pa.ipc.new_file(_native(sink), schema) as writer:
        for group in groups:
            for batch in group:
                writer.write_batch(batch)


def read_partition(
    sources: Iterable[pa.NativeFile | str | Path],
    partition: int,
    partitions: int,
    schema: pa.Schema,
) -> pa.Table:
    """Partition ``partition`` of every split file: a local path is memory-mapped (no copy);
    an open file (an object in S3) is read batch by batch, only this partition's batches."""
    batches = []
    for source in sources:
        opened = source if isinstance(source, pa.NativeFile) else pa.memory_map(str(source), "r")
        reader = pa.ipc.open_file(opened)
        for index in range(partition, reader.num_record_batches, partitions):
            batches.append(reader.get_batch(index))
    return pa.Table.from_batches(batches, schema=schema)


def _native(sink: pa.NativeFile | str | Path) -> pa.NativeFile | str:
    if isinstance(sink, pa.NativeFile):
        return sink
    Path(sink).parent.mkdir(parents=True, exist_ok=True)
    return str(sink)


# --- Reconcile -----------------------------------------------------------------------------


@dataclass
class CategoryTotal:
    count: int = 0
    revenue_impact: float = 0.0


@dataclass
class PartitionSummary:
    """What one partition (or, summed, a whole run) found."""

    network_records: int = 0
    billing_records: int = 0
    matched_records: int = 0
    billed_revenue: float = 0.0
    categories: dict[str, CategoryTotal] = field(default_factory=dict)

    @property
    def discrepancies(self) -> int:
        return sum(total.count for total in self.categories.values())

    @property
    def leakage(self) -> float:
        """Revenue lost: the sum of the positive impacts (computed per category)."""
        return sum(max(t.revenue_impact, 0.0) for t in self.categories.values())

    def add(self, other: PartitionSummary) -> None:
        self.network_records += other.network_records
        self.billing_records += other.billing_records
        self.matched_records += other.matched_records
        self.billed_revenue += other.billed_revenue
        for name, total in other.categories.items():
            mine = self.categories.setdefault(name, CategoryTotal())
            mine.count += total.count
            mine.revenue_impact += total.revenue_impact


@dataclass
class _Keys:
    """The distinct record ids of a partition and where each side has them."""

    count: int
    network_copies: np.ndarray
    billing_copies: np.ndarray
    #: The row that speaks for each key on each side, -1 where the side lacks the key.
    network_row: np.ndarray
    billing_row: np.ndarray
    #: The sum of the charges of each key's billed copies.
    billed_total: np.ndarray


def _representatives(codes: np.ndarray, count: int, ranks: Sequence[np.ndarray]) -> np.ndarray:
    """Per key, the row that speaks for it. Of several copies, the highest by ``ranks`` (the
    first rank first; ties to the lowest row), so the result never depends on row order."""
    rows = np.full(count, -1, dtype=np.int64)
    rows[codes] = np.arange(len(codes))
    copies = np.bincount(codes, minlength=count)
    duplicated = np.flatnonzero(copies[codes] > 1)
    if len(duplicated):
        # lexsort's last key is its first: by key, then each rank descending, then row.
        order = np.lexsort(
            (duplicated, *(-rank[duplicated] for rank in reversed(ranks)), codes[duplicated])
        )
        ordered = duplicated[order]
        ordered_codes = codes[ordered]
        first = np.ones(len(ordered), dtype=bool)
        first[1:] = ordered_codes[1:] != ordered_codes[:-1]
        rows[ordered_codes[first]] = ordered[first]
    return rows


def _keys(
    codes: np.ndarray,
    count: int,
    network_rows: int,
    quantity: np.ndarray,
    charge: np.ndarray,
    billed: np.ndarray,
) -> _Keys:
    """Copies, the row that speaks for each key, and billed totals; ``quantity`` is the
    network's column, ``charge`` and ``billed`` billing's."""
    n_codes, b_codes = codes[:network_rows], codes[network_rows:]
    return _Keys(
        count=count,
        network_copies=np.bincount(n_codes, minlength=count).astype(np.int32),
        billing_copies=np.bincount(b_codes, minlength=count).astype(np.int32),
        # The network's largest copy; billing's billed copy with the largest charge.
        network_row=_representatives(n_codes, count, [quantity]),
        billing_row=_representatives(b_codes, count, [billed.astype(np.float64), charge]),
        billed_total=np.bincount(b_codes, weights=charge * billed, minlength=count),
    )


def _encode(values: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, int]:
    encoded = pc.dictionary_encode(values)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = (
            encoded.combine_chunks() if encoded.num_chunks else pa.array([]).dictionary_encode()
        )
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), len(encoded.dictionary)


def _dense_codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense codes of 64-bit ``values`` (equal values, equal codes) and how many distinct.

    By sorting: numpy sorts 64-bit integers several times faster than a hash table encodes
    them. The codes follow the values' order, so they do not depend on the rows' order.
    """
    if not len(values):
        return np.empty(0, np.int64), 0
    order = np.argsort(values)
    ordered = values[order]
    starts = np.empty(len(values), dtype=bool)
    starts[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    ordered_codes = np.cumsum(starts) - 1
    codes = np.empty(len(values), dtype=np.int64)
    codes[order] = ordered_codes
    return codes, int(ordered_codes[-1]) + 1


def _match(network: pa.Table, billing: pa.Table) -> tuple[np.ndarray, int]:
    """Dense codes of the record ids, network rows first, and how many distinct ids."""
    h1 = np.concatenate([network["h1"].to_numpy(), billing["h1"].to_numpy()])
    codes, count = _dense_codes(h1)
    h2 = np.concatenate([network["h2"].to_numpy(), billing["h2"].to_numpy()])
    representative = np.empty(count, dtype=np.uint64)
    representative[codes] = h2
    if not np.array_equal(representative[codes], h2):
        # Two different ids share the first hash: compare the ids themselves.
        ids = pa.chunked_array(
            network["record_id"].chunks + billing["record_id"].chunks, pa.string()
        )
        codes, count = _encode(ids)
    return codes, count


def _column(table: pa.Table, name: str, dtype: type | str, missing: object) -> np.ndarray:
    """A column as numpy, with one more element, ``missing``, for keys the side lacks."""
    values: np.ndarray = np.asarray(table[name].to_numpy(), dtype=dtype)
    return np.append(values, np.asarray(missing, dtype=dtype))


def reconcile(
    network: pa.Table,
    billing: pa.Table,
    tariffs: TariffTable,
    plan_of: PlanLookup,
    tolerances: Tolerances,
    period: Period,
) -> tuple[pa.Table, PartitionSummary]:
    """Classify and price every record id of one partition; answer the discrepancies.

    The sides were read ``tolerances.clock_skew_seconds`` beyond ``period``; a record counts
    when its time (the network's, else billing's) falls in the period itself.
    """
    # Each column once, with one more element for keys the side lacks (see _column).
    quantities = _column(network, "quantity", np.int64, 0)
    charges = _column(billing, "charge", np.float64, 0.0)
    billeds = _column(billing, "billed", bool, False)
    codes, count = _match(network, billing)
    keys = _keys(codes, count, network.num_rows, quantities[:-1], charges[:-1], billeds[:-1])
    has_n, has_b = keys.network_row >= 0, keys.billing_row >= 0
    # Row of each key on each side; a side that lacks the key points at the extra element.
    ni = np.where(has_n, keys.network_row, network.num_rows)
    bi = np.where(has_b, keys.billing_row, billing.num_rows)

    n_usage = _column(network, "usage", np.int8, DATA)[ni]
    b_usage = _column(billing, "usage", np.int8, DATA)[bi]
    when = np.where(
        has_n,
        _column(network, "event_time", "datetime64[ms]", 0).view(np.int64)[ni],
        _column(billing, "event_time", "datetime64[ms]", 0).view(np.int64)[bi],
    )
    start, end = period.millis()
    in_period = (when >= start) & (when < end)
    has_n &= in_period
    has_b &= in_period

    # The network says what the usage was; billing only where the network has no record.
    usage = np.where(has_n, n_usage, b_usage)
    voice = usage == VOICE
    net_qty = quantities[ni]
    bill_qty = _column(billing, "quantity", np.int64, 0)[bi]
    tariff = _column(billing, "tariff", np.int64, -1)[bi]
    charge = charges[bi]
    billed = billeds[bi]
    unit = tariffs.unit_price(tariff, usage)
    # Billing's tariff is known and has a price for this kind of usage.
    priced = ~np.isnan(unit)
    expected = np.round(bill_qty * unit, CHARGE_DECIMALS)

    both = has_n & has_b
    same_type = both & (n_usage == b_usage)
    difference = net_qty - bill_qty
    volume_limit = np.maximum(tolerances.volume_bytes, tolerances.volume_ratio * net_qty)
    volume_off = same_type & (usage == DATA) & (np.abs(difference) > volume_limit)
    duration_off = same_type & voice & (np.abs(difference) > tolerances.duration_seconds)
    missing_in_billing = has_n & ~has_b
    # Billing's tariff prices a difference; the subscriber's plan where billing has none.
    needs_plan = (missing_in_billing | ((volume_off | duration_off) & ~priced)).nonzero()[0]
    unit[needs_plan] = _subscriber_unit(network, keys, needs_plan, usage, tariffs, plan_of)

    found: dict[Category, tuple[np.ndarray, np.ndarray]] = {}

    def add(category: Category, mask: np.ndarray, impact: np.ndarray | float) -> None:
        where = np.flatnonzero(mask)
        values = np.broadcast_to(np.asarray(impact, dtype=np.float64), mask.shape)[where]
        found[category] = (where, np.round(np.nan_to_num(values), CHARGE_DECIMALS))

    add(Category.DUPLICATE_IN_NETWORK, has_n & (keys.network_copies > 1), 0.0)
    # Every billed copy beyond the one that speaks for the record is over-billing.
    overbilled = keys.billed_total - np.where(billed, charge, 0.0)
    add(Category.DUPLICATE_IN_BILLING, has_b & (keys.billing_copies > 1), -overbilled)
    add(Category.MISSING_IN_BILLING, missing_in_billing, net_qty * unit)
    add(Category.MISSING_IN_NETWORK, has_b & ~has_n, np.where(billed, -charge, 0.0))
    add(Category.USAGE_TYPE_MISMATCH, both & ~same_type, 0.0)
    add(Category.VOLUME_MISMATCH, volume_off, difference * unit)
    add(Category.DURATION_MISMATCH, duration_off, difference * unit)
    with np.errstate(invalid="ignore"):
        misrated = (
            has_b & priced & ~(both & ~same_type) & (np.abs(charge - expected) > tolerances.charge)
        )
    add(Category.RATING_MISMATCH, misrated, expected - charge)
    add(Category.UNKNOWN_TARIFF, has_b & ~priced, 0.0)
    # Rated, never billed, for usage the network carried (billing-only usage is no loss).
    add(Category.UNBILLED, both & ~billed, charge)

    summary = PartitionSummary(
        network_records=int(keys.network_copies[has_n].sum()),
        billing_records=int(keys.billing_copies[has_b].sum()),
        matched_records=int(both.sum()),
        billed_revenue=float(keys.billed_total[has_b].sum()),
        categories={
            category.value: CategoryTotal(len(where), float(impact.sum()))
            for category, (where, impact) in found.items()
            if len(where)
        },
    )
    per_key = {
        "usage": usage,
        "net_qty": net_qty,
        "bill_qty": bill_qty,
        "tariff": tariff,
        "charge": charge,
        "expected": expected,
    }
    return _discrepancies(network, billing, keys, found, per_key, tariffs), summary


class PlanLookup:
    """Which tariff code an MSISDN is on, from billing's subscriptions.

    Made once per run and worker and shared by its partitions, which each look up a few
    hundred MSISDNs (the records billing lacks): those are answered from a dict built once;
    many more at once by Arrow, whose ``index_in`` builds its hash table on every call.
    """

    #: Up to this many MSISDNs at once are looked up one by one in the dict.
    FEW = 4096

    def __init__(self, msisdns: pa.Array | pa.ChunkedArray, plan_codes: np.ndarray) -> None:
        self.msisdns = msisdns
        self.plan_codes = plan_codes
        # The first subscription of an MSISDN answers for it, as index_in's first match does.
        codes = plan_codes.tolist()
        self._by_msisdn = dict(zip(reversed(msisdns.to_pylist()), reversed(codes), strict=True))

    @classmethod
    def empty(cls) -> PlanLookup:
        return cls(pa.array([], pa.string()), np.empty(0, np.int16))

    @classmethod
    def of(cls, subscriptions: pa.Table, tariffs: TariffTable) -> PlanLookup:
        return cls(subscriptions["msisdn"], tariffs.codes(subscriptions["plan"]))

    def codes(self, msisdns: pa.Array | pa.ChunkedArray) -> np.ndarray:
        if len(self.plan_codes) == 0:
            return np.full(len(msisdns), -1, dtype=np.int64)
        if len(msisdns) <= self.FEW:
            found = self._by_msisdn
            return np.array([found.get(m, -1) for m in msisdns.to_pylist()], dtype=np.int64)
        index = pc.fill_null(pc.index_in(msisdns, value_set=self.msisdns), -1)
        index = np.asarray(index.to_numpy(zero_copy_only=False), np.int64)
        return np.where(index >= 0, self.plan_codes[np.maximum(index, 0)], -1)


def _subscriber_unit(
    network: pa.Table,
    keys: _Keys,
    where: np.ndarray,
    usage: np.ndarray,
    tariffs: TariffTable,
    plan_of: PlanLookup,
) -> np.ndarray:
    """Unit prices at the tariff of each key's subscriber's plan (NaN where unknown)."""
    if not len(where):
        return np.empty(0)
    rows = keys.network_row[where]
    msisdns = network["msisdn"].take(pa.array(rows, mask=rows < 0))
    return tariffs.unit_price(plan_of.codes(msisdns), usage[where])


def _side(table: pa.Table, name: str, rows: np.ndarray) -> pa.ChunkedArray | pa.Array:
    """``table[name]`` at ``rows``; null where a row is -1."""
    return table[name].take(pa.array(rows, mask=rows < 0))


def _discrepancies(
    network: pa.Table,
    billing: pa.Table,
    keys: _Keys,
    found: dict[Category, tuple[np.ndarray, np.ndarray]],
    per_key: dict[str, np.ndarray],
    tariffs: TariffTable,
) -> pa.Table:
    where = np.concatenate([w for w, _ in found.values()])
    if not len(where):
        return DISCREPANCY_SCHEMA.empty_table()
    impact = np.concatenate([i for _, i in found.values()])
    names = np.concatenate(
        [np.full(len(w), category.value, dtype=object) for category, (w, _) in found.items()]
    )
    n_row, b_row = keys.network_row[where], keys.billing_row[where]

    def either(name: str) -> pa.ChunkedArray | pa.Array:
        """The network's value where it has the record, else billing's."""
        return pc.coalesce(_side(network, name, n_row), _side(billing, name, b_row))

    no_network, no_billing = n_row < 0, b_row < 0
    tariff = per_key["tariff"][where]
    expected = per_key["expected"][where]
    plans = pa.array([*tariffs.plans, None], pa.string())
    return pa.Table.from_arrays(
        [
            either("record_id"),
            pa.array(names, pa.string()),
            pc.take(pa.array(USAGE_TYPES), pa.array(per_key["usage"][where])),
            either("msisdn"),
            either("event_time"),
            pa.array(per_key["net_qty"][where], mask=no_network),
            pa.array(per_key["bill_qty"][where], mask=no_billing),
            pa.array(keys.network_copies[where]),
            pa.array(keys.billing_copies[where]),
            pc.take(plans, pa.array(np.where(tariff >= 0, tariff, len(tariffs.plans)))),
            pa.array(per_key["charge"][where], mask=no_billing),
            pa.array(expected, mask=no_billing | np.isnan(expected)),
            pa.array(impact),
        ],
        schema=DISCREPANCY_SCHEMA,
    )


def write_parquet(table: pa.Table, sink: pa.NativeFile | str | Path) -> None:
    pq.write_table(table, _native(sink), compression="zstd")
