"""Usage data for billing reconciliation: mediation's CDR files and billing's rated export.

:func:`generate` writes both sides of one period at any size (10M+ records per side in a few
minutes, in constant memory per file), with discrepancies injected at chosen rates, and a
ground-truth file listing exactly what was injected, so a reconciliation can be checked
record by record.

Every attribute of a usage record is a pure function of its sequence number and the seed
(counter-based hashing), so the two sides agree on a record without either being held in
memory: each side is only a shuffled list of sequence numbers, expanded one file at a time.

The layout written under ``out``::

    network/cdr-00001.parquet | .csv | .csv.gz   mediation's CDRs (hub.usage.NETWORK_SCHEMA)
    billing/rated-00001.parquet | .csv           billing's rated usage (hub.usage.RATED_SCHEMA)
    billing/subscriptions.parquet                MSISDN -> plan (hub.usage.SUBSCRIPTION_SCHEMA)
    ground_truth.parquet                         record_id, category: every injected discrepancy
    manifest.json                                the parameters and the counts

SMS (``record_type`` / ``usage_type`` ``sms``: one MSC SMS record each, no volume or duration,
rated at their plan's SMS price, :data:`SMS_PRICE` on every simulated plan) are generated only
when ``sms_share`` is above 0; the default is 0, and with no SMS the files are exactly what
they were before SMS existed. Reconciliation prices an SMS per message from billing's
``GetTariffs``; an SMS has no volume or duration to mismatch, so one whose rate band is the
usage mismatch is left clean instead (every other category is injected on SMS as on the rest).

Tariffs are the billing simulator's (:data:`simulators.billing.PLANS`), so a reconciliation
that asks the simulator for them over SOAP prices exactly as this generator rated.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hub.usage import (
    BYTES_PER_MB,
    CHARGE_DECIMALS,
    NETWORK_SCHEMA,
    RATED_SCHEMA,
    SUBSCRIPTION_SCHEMA,
    UTC_MILLIS,
    Category,
)
from simulators.billing import PLANS
from simulators.billing import SMS_PRICE as SIMULATED_SMS_PRICE

NetworkFormat = Literal["parquet", "csv", "csv.gz"]
BillingFormat = Literal["parquet", "csv"]

#: Injected categories in the order their rate bands are laid out. ``usage_mismatch`` becomes
#: ``volume_mismatch`` for a data record and ``duration_mismatch`` for a voice record; an SMS
#: in its band gets no discrepancy (see the module's docstring).
USAGE_MISMATCH = "usage_mismatch"
INJECTABLE = (
    Category.MISSING_IN_BILLING.value,
    Category.MISSING_IN_NETWORK.value,
    Category.DUPLICATE_IN_NETWORK.value,
    Category.DUPLICATE_IN_BILLING.value,
    USAGE_MISMATCH,
    Category.RATING_MISMATCH.value,
    Category.UNBILLED.value,
)

DEFAULT_RATES: dict[str, float] = {
    Category.MISSING_IN_BILLING.value: 0.002,
    Category.MISSING_IN_NETWORK.value: 0.001,
    Category.DUPLICATE_IN_NETWORK.value: 0.001,
    Category.DUPLICATE_IN_BILLING.value: 0.001,
    USAGE_MISMATCH: 0.002,
    Category.RATING_MISMATCH.value: 0.001,
    Category.UNBILLED.value: 0.001,
}

_PLAN_CODES = list(PLANS)
_DATA_PRICE = np.array([float(PLANS[c].data_price_per_mb) for c in _PLAN_CODES])
_VOICE_PRICE = np.array([float(PLANS[c].voice_price_per_minute) for c in _PLAN_CODES])
#: Billing's SMS price per plan (NaN for a plan without one: none of the simulator's).
_SMS_PRICE = np.array([float(PLANS[c].sms_price_per_message or np.nan) for c in _PLAN_CODES])
_RAT_TYPES = pa.array(["EUTRAN", "NR"])
_APNS = pa.array(["internet", "ims", "internet.5g"])
_RATING_GROUPS = np.array([10, 20, 30], dtype=np.int32)
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
#: What billing charges per SMS, on every plan of the billing simulator.
SMS_PRICE = float(SIMULATED_SMS_PRICE)


@dataclass
class UsageSpec:
    """What to generate. ``records`` is the number of distinct usage events of the period."""

    period_start: datetime
    period_end: datetime
    records: int
    seed: int = 1
    #: Share of voice records; the rest is data.
    voice_share: float = 0.2
    #: Share of SMS records (0: none, as before SMS existed; see the module's docstring).
    sms_share: float = 0.0
    #: Distinct subscribers; default one per 100 records (at least 10).
    subscribers: int | None = None
    #: Nodes recording the CDRs (record ids are ``<node>:<local sequence number>``).
    nodes: int = 8
    rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RATES))
    network_format: NetworkFormat = "parquet"
    billing_format: BillingFormat = "parquet"
    records_per_file: int = 1_000_000

    def __post_init__(self) -> None:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        if self.sms_share < 0 or self.voice_share + self.sms_share > 1:
            raise ValueError("voice_share and sms_share must be non-negative, at most 1 together")
        if self.records < 1:
            raise ValueError("records must be at least 1")
        unknown = set(self.rates) - set(INJECTABLE)
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}; known: {INJECTABLE}")
        if any(rate < 0 for rate in self.rates.values()) or sum(self.rates.values()) > 1:
            raise ValueError("rates must be non-negative and add up to at most 1")

    @property
    def subscriber_count(self) -> int:
        return self.subscribers or max(10, self.records // 100)


@dataclass
class UsageManifest:
    spec: dict[str, object]
    network_rows: int
    billing_rows: int
    injected: dict[str, int]
    network_files: list[str]
    billing_files: list[str]


# --- Counter-based randomness --------------------------------------------------------------


def _mix(values: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of ``values`` + salt: a uniform 64-bit hash per element."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64((salt * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9) & _MASK64
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB) & _MASK64
        return z ^ (z >> np.uint64(31))


def _uniform(values: np.ndarray, salt: int) -> np.ndarray:
    return (_mix(values, salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _below(values: np.ndarray, salt: int, bound: int) -> np.ndarray:
    return (_mix(values, salt) % np.uint64(bound)).astype(np.int64)


def categories(spec: UsageSpec, seq: np.ndarray) -> np.ndarray:
    """The injected category index of each sequence number (-1: none), by rate bands."""
    u = _uniform(seq, spec.seed * 7919 + 1)
    result = np.full(len(seq), -1, dtype=np.int8)
    low = 0.0
    for index, name in enumerate(INJECTABLE):
        high = low + spec.rates.get(name, 0.0)
        result[(u >= low) & (u < high)] = index
        low = high
    if spec.sms_share > 0:
        # An SMS is one message on both sides: no usage to mismatch, so it stays clean.
        result[(result == INJECTABLE.index(USAGE_MISMATCH)) & _kinds(spec, seq)[1]] = -1
    return result


# --- Records from sequence numbers ---------------------------------------------------------


def _digits(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    text = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width, "0")
    return pc.binary_join_element_wise(pa.scalar(prefix), text, "")


def _kinds(spec: UsageSpec, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of the usage events ``seq`` are voice, and which SMS (the rest is data)."""
    kind = _uniform(seq, spec.seed * 1_000_003 + 1)
    voice = kind < spec.voice_share
    return voice, ~voice & (kind < spec.voice_share + spec.sms_share)


def _records(spec: UsageSpec, seq: np.ndarray) -> dict[str, object]:
    """Every attribute of the usage events ``seq``, consistent on both sides."""
    seed = spec.seed * 1_000_003
    voice, sms = _kinds(spec, seq)
    # SMS are recorded by the MSCs, like calls.
    msc = voice | sms
    node = seq % spec.nodes
    local = seq // spec.nodes + 1
    node_names = pa.array(
        [f"pgw-vie-{n:02d}" for n in range(spec.nodes)]
        + [f"msc-vie-{n:02d}" for n in range(spec.nodes)]
    )
    node_id = pc.take(node_names, pa.array(node + np.where(msc, spec.nodes, 0)))
    record_id = pc.binary_join_element_wise(
        node_id, pc.cast(pa.array(local), pa.string()), pa.scalar(":")
    )
    subscriber = _below(seq, seed + 2, spec.subscriber_count)
    plan = _plan_of(spec, subscriber)
    period_ms = int((spec.period_end - spec.period_start).total_seconds() * 1000)
    start_ms = int(spec.period_start.timestamp() * 1000)
    opening = start_ms + _below(seq, seed + 3, period_ms)
    duration = np.where(voice, 40 + _below(seq, seed + 4, 3560), 1 + _below(seq, seed + 4, 3600))
    downlink = 100_000 + _below(seq, seed + 5, 200_000_000)
    uplink = 10_000 + _below(seq, seed + 6, 20_000_000)
    volume = downlink + uplink
    charge = np.where(
        voice,
        duration / 60 * _VOICE_PRICE[plan],
        volume / BYTES_PER_MB * _DATA_PRICE[plan],
    )
    charge = np.where(sms, _SMS_PRICE[plan], charge)
    return {
        "seq": seq,
        "voice": voice,
        "sms": sms,
        "kind": np.where(voice, "voice", np.where(sms, "sms", "data")),
        "record_id": record_id,
        "node_id": node_id,
        "local": local,
        "subscriber": subscriber,
        "msisdn": _digits("4366", subscriber, 8),
        "imsi": _digits("23205", subscriber, 10),
        "plan": plan,
        "opening": opening,
        "duration": duration,
        "downlink": downlink,
        "uplink": uplink,
        "volume": volume,
        "charge": np.round(charge, CHARGE_DECIMALS),
        "b_number": _digits("4369", _below(seq, seed + 7, 10**8), 8),
        "charging_id": _below(seq, seed + 8, 2**31),
        "rating_group": _RATING_GROUPS[_below(seq, seed + 9, 3)],
        "rat_type": pc.take(_RAT_TYPES, pa.array(_below(seq, seed + 10, 2))),
        "apn": pc.take(_APNS, pa.array(_below(seq, seed + 11, 3))),
    }


def _plan_of(spec: UsageSpec, subscriber: np.ndarray) -> np.ndarray:
    return _below(subscriber, spec.seed * 31 + 5, len(_PLAN_CODES))


def _masked(values: np.ndarray, mask: np.ndarray, type_: pa.DataType) -> pa.Array:
    return pa.array(values, type=type_, mask=mask)


def network_batch(spec: UsageSpec, seq: np.ndarray) -> pa.RecordBatch:
    r = _records(spec, seq)
    voice, sms = r["voice"], r["sms"]
    assert isinstance(voice, np.ndarray) and isinstance(sms, np.ndarray)
    msc = voice | sms  # no bearer: no charging id, volumes, RAT or APN
    data = ~msc
    return pa.RecordBatch.from_arrays(
        [
            r["record_id"],
            pa.array(r["kind"]),
            r["node_id"],
            pa.array(r["local"], pa.int64()),
            r["imsi"],
            r["msisdn"],
            _masked(r["charging_id"], msc, pa.int64()),  # type: ignore[arg-type]
            pa.array(r["opening"], UTC_MILLIS),
            _masked(r["duration"], sms, pa.int64()),  # type: ignore[arg-type]
            _masked(r["rating_group"], msc, pa.int32()),  # type: ignore[arg-type]
            _masked(r["uplink"], msc, pa.int64()),  # type: ignore[arg-type]
            _masked(r["downlink"], msc, pa.int64()),  # type: ignore[arg-type]
            pc.if_else(pa.array(msc), pa.scalar(None, pa.string()), r["rat_type"]),
            pc.if_else(pa.array(msc), pa.scalar(None, pa.string()), r["apn"]),
            pc.if_else(pa.array(data), pa.scalar(None, pa.string()), r["msisdn"]),
            pc.if_else(pa.array(data), pa.scalar(None, pa.string()), r["b_number"]),
        ],
        schema=NETWORK_SCHEMA,
    )


def billing_batch(spec: UsageSpec, seq: np.ndarray) -> pa.RecordBatch:
    """Billing's rated records for ``seq``, with the injected billing-side discrepancies."""
    r = _records(spec, seq)
    voice, sms = r["voice"], r["sms"]
    assert isinstance(voice, np.ndarray) and isinstance(sms, np.ndarray)
    cats = categories(spec, seq)
    volume = np.array(r["volume"], copy=True)
    duration = np.array(r["duration"], copy=True)
    charge = np.array(r["charge"], copy=True)
    plan = r["plan"]
    assert isinstance(plan, np.ndarray)
    seed = spec.seed * 1_000_003

    # Usage mismatch: billing rated less than the network carried (2%..50% of the volume,
    # 2..30 seconds of a call) and charged it correctly, so only the quantity is wrong.
    mismatch = cats == INJECTABLE.index(USAGE_MISMATCH)
    cut = 0.02 + 0.48 * _uniform(seq, seed + 20)
    volume = np.where(mismatch & ~voice, (volume * (1 - cut)).astype(np.int64), volume)
    duration = np.where(mismatch & voice, duration - 2 - _below(seq, seed + 21, 29), duration)
    repriced = np.where(
        voice, duration / 60 * _VOICE_PRICE[plan], volume / BYTES_PER_MB * _DATA_PRICE[plan]
    )
    charge = np.where(mismatch & ~sms, np.round(repriced, CHARGE_DECIMALS), charge)

    # Rating mismatch: the quantity is right, the charge is off by 0.05..1.05 either way.
    misrated = cats == INJECTABLE.index(Category.RATING_MISMATCH.value)
    delta = (0.05 + _uniform(seq, seed + 22)) * np.where(_below(seq, seed + 23, 2) == 0, -1, 1)
    # Never below zero: then the charge goes up by as much instead.
    wrong = np.where(charge + delta < 0, charge - delta, charge + delta)
    charge = np.where(misrated, np.round(wrong, CHARGE_DECIMALS), charge)

    billed = cats != INJECTABLE.index(Category.UNBILLED.value)
    plan_codes = pc.take(pa.array(_PLAN_CODES), pa.array(plan))
    return pa.RecordBatch.from_arrays(
        [
            r["record_id"],
            r["msisdn"],
            pa.array(r["kind"]),
            pa.array(r["opening"], UTC_MILLIS),
            _masked(volume, voice | sms, pa.int64()),
            _masked(duration, ~voice, pa.int64()),
            plan_codes,
            pa.array(charge, pa.float64()),
            pa.array(billed),
        ],
        schema=RATED_SCHEMA,
    )


# --- Sides and files -----------------------------------------------------------------------


def side_sequences(spec: UsageSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shuffled sequence numbers of each side's rows, and every record's category."""
    seq = np.arange(spec.records, dtype=np.int64)
    cats = categories(spec, seq)
    index = INJECTABLE.index
    network = np.concatenate(
        [
            seq[cats != index(Category.MISSING_IN_NETWORK.value)],
            seq[cats == index(Category.DUPLICATE_IN_NETWORK.value)],
        ]
    )
    billing = np.concatenate(
        [
            seq[cats != index(Category.MISSING_IN_BILLING.value)],
            seq[cats == index(Category.DUPLICATE_IN_BILLING.value)],
        ]
    )
    rng = np.random.default_rng(spec.seed)
    return rng.permutation(network), rng.permutation(billing), cats


def _chunks(values: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _write(batch: pa.RecordBatch, path: Path, fmt: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "parquet":
        pq.write_table(pa.Table.from_batches([batch]), tmp, compression="zstd")
    elif fmt == "csv":
        pacsv.write_csv(batch, tmp)
    else:  # csv.gz
        with gzip.open(tmp, "wb", compresslevel=1) as out:
            pacsv.write_csv(batch, out)
    tmp.replace(path)


def ground_truth(spec: UsageSpec, seq: np.ndarray, cats: np.ndarray) -> pa.Table:
    """``record_id, category`` of every injected discrepancy."""
    injected = cats >= 0
    records = _records(spec, seq[injected])
    names = np.array(INJECTABLE, dtype=object)[cats[injected]]
    voice = records["voice"]
    assert isinstance(voice, np.ndarray)
    names = np.where(
        names == USAGE_MISMATCH,
        np.where(voice, Category.DURATION_MISMATCH.value, Category.VOLUME_MISMATCH.value),
        names,
    )
    return pa.table({"record_id": records["record_id"], "category": pa.array(names, pa.string())})


def subscriptions(spec: UsageSpec) -> pa.Table:
    subscriber = np.arange(spec.subscriber_count, dtype=np.int64)
    plans = pc.take(pa.array(_PLAN_CODES), pa.array(_plan_of(spec, subscriber)))
    return pa.Table.from_arrays([_digits("4366", subscriber, 8), plans], schema=SUBSCRIPTION_SCHEMA)


def generate(
    spec: UsageSpec, out: Path, progress: Callable[[int, int], None] | None = None
) -> UsageManifest:
    """Write both sides, the subscriptions, the ground truth and a manifest under ``out``.

    ``progress(rows written, rows in all)`` is called after each file.
    """
    for folder in ("network", "billing"):
        shutil.rmtree(out / folder, ignore_errors=True)
        (out / folder).mkdir(parents=True)
    network, billing, cats = side_sequences(spec)
    total, done = len(network) + len(billing), 0
    network_files, billing_files = [], []
    for number, chunk in enumerate(_chunks(network, spec.records_per_file), start=1):
        path = out / "network" / f"cdr-{number:05d}.{spec.network_format}"
        _write(network_batch(spec, chunk), path, spec.network_format)
        network_files.append(str(path.relative_to(out)))
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    for number, chunk in enumerate(_chunks(billing, spec.records_per_file), start=1):
        path = out / "billing" / f"rated-{number:05d}.{spec.billing_format}"
        _write(billing_batch(spec, chunk), path, spec.billing_format)
        billing_files.append(str(path.relative_to(out)))
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    pq.write_table(subscriptions(spec), out / "billing" / "subscriptions.parquet")
    seq = np.arange(spec.records, dtype=np.int64)
    truth = ground_truth(spec, seq, cats)
    pq.write_table(truth, out / "ground_truth.parquet")
    counts = pc.value_counts(truth["category"]).to_pylist()
    manifest = UsageManifest(
        spec={
            **asdict(spec),
            "period_start": spec.period_start.isoformat(),
            "period_end": spec.period_end.isoformat(),
        },
        network_rows=len(network),
        billing_rows=len(billing),
        injected={item["values"]: item["counts"] for item in counts},
        network_files=network_files,
        billing_files=billing_files,
    )
    (out / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    return manifest


def parse_rates(text: str | Mapping[str, float]) -> dict[str, float]:
    """``"missing_in_billing=0.01,unbilled=0.002"`` (unnamed categories: 0)."""
    if isinstance(text, Mapping):
        return dict(text)
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        rates[name.strip()] = float(value)
    return rates
