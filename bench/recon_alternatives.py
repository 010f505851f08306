"""What a user would write instead of the hub: the same reconciliation in DuckDB, and in pandas.

Both read the same files as the hub, apply the same rules (:mod:`hub.reconciliation.engine`:
the same categories, tolerances and prices), and write the same discrepancy columns that matter
for the comparison (``record_id``, ``category``, ``revenue_impact``) to Parquet. Each runs in a
process of its own, so its peak memory is its own::

    python -m bench.recon_alternatives duckdb DATA_DIR OUT.parquet
    python -m bench.recon_alternatives pandas DATA_DIR OUT.parquet

``DATA_DIR`` is the generator's layout (``network/``, ``billing/``, see simulators/usage.py).
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hub.reconciliation.engine import NETWORK_INPUT, Tolerances
from hub.usage import BYTES_PER_MB, CHARGE_DECIMALS
from simulators.billing import PLANS

TOLERANCES = Tolerances()


def _tariffs() -> list[tuple[str, float, float]]:
    return [
        (code, float(plan.data_price_per_mb), float(plan.voice_price_per_minute))
        for code, plan in PLANS.items()
    ]


def _rated_files(data: Path) -> list[str]:
    return sorted(
        f for f in glob.glob(str(data / "billing" / "*.parquet")) if "subscriptions" not in f
    )


def duckdb_reconcile(data: Path, out: Path, start: datetime, end: datetime, threads: int) -> None:
    """A full outer join of both sides, grouped per record id first (to see duplicates)."""
    import duckdb

    connection = duckdb.connect()
    connection.execute(f"SET threads={threads}")
    connection.execute("CREATE TEMP TABLE tariffs(plan VARCHAR, data_mb DOUBLE, voice_min DOUBLE)")
    connection.executemany("INSERT INTO tariffs VALUES (?, ?, ?)", _tariffs())
    t = TOLERANCES
    network = str(data / "network" / "*.parquet")
    rated = _rated_files(data)
    subscriptions = str(data / "billing" / "subscriptions.parquet")
    connection.execute(
        f"""
COPY (
WITH n AS (
  SELECT record_id, count(*) AS n_copies, any_value(record_type) AS n_type,
         any_value(served_msisdn) AS n_msisdn,
         any_value(CASE WHEN record_type = 'voice' THEN duration
                   ELSE coalesce(uplink_volume, 0) + coalesce(downlink_volume, 0) END) AS n_qty
  FROM read_parquet('{network}')
  WHERE record_opening_time >= $start AND record_opening_time < $end
  GROUP BY record_id),
b AS (
  SELECT record_id, count(*) AS b_copies, any_value(usage_type) AS b_type,
         any_value(CASE WHEN usage_type = 'voice' THEN duration ELSE volume END) AS b_qty,
         any_value(tariff) AS tariff, max(charge) AS charge, bool_or(billed) AS billed,
         coalesce(sum(charge) FILTER (WHERE billed), 0)
           - coalesce(max(charge) FILTER (WHERE billed), 0) AS overbilled
  FROM read_parquet($rated)
  WHERE start_time >= $start AND start_time < $end
  GROUP BY record_id),
j AS MATERIALIZED (
  SELECT coalesce(n.record_id, b.record_id) AS record_id, n.n_copies, n.n_qty, b.b_copies,
    coalesce(b.b_qty, 0) AS b_qty, b.charge, b.billed, b.overbilled,
    coalesce(n.n_type, b.b_type) AS usage_type,
    CASE WHEN coalesce(n.n_type, b.b_type) = 'voice' THEN t.voice_min / 60.0
         ELSE t.data_mb / {BYTES_PER_MB} END AS rate,
    CASE WHEN coalesce(n.n_type, b.b_type) = 'voice' THEN st.voice_min / 60.0
         ELSE st.data_mb / {BYTES_PER_MB} END AS subscriber_rate
  FROM n FULL OUTER JOIN b ON n.record_id = b.record_id
  LEFT JOIN tariffs t ON t.plan = b.tariff
  LEFT JOIN read_parquet('{subscriptions}') s ON s.msisdn = n.n_msisdn AND b.record_id IS NULL
  LEFT JOIN tariffs st ON st.plan = s.plan
)
SELECT record_id, 'duplicate_in_network' AS category, 0.0 AS revenue_impact
  FROM j WHERE n_copies > 1
UNION ALL SELECT record_id, 'duplicate_in_billing',
    round(-overbilled, {CHARGE_DECIMALS})
  FROM j WHERE b_copies > 1
UNION ALL SELECT record_id, 'missing_in_billing',
    coalesce(round(n_qty * subscriber_rate, {CHARGE_DECIMALS}), 0)
  FROM j WHERE b_copies IS NULL
UNION ALL SELECT record_id, 'missing_in_network', CASE WHEN billed THEN -charge ELSE 0 END
  FROM j WHERE n_copies IS NULL
UNION ALL SELECT record_id, 'volume_mismatch', round((n_qty - b_qty) * rate, {CHARGE_DECIMALS})
  FROM j WHERE n_copies IS NOT NULL AND b_copies IS NOT NULL AND usage_type = 'data'
    AND abs(n_qty - b_qty) > greatest({t.volume_bytes}, {t.volume_ratio} * n_qty)
UNION ALL SELECT record_id, 'duration_mismatch', round((n_qty - b_qty) * rate, {CHARGE_DECIMALS})
  FROM j WHERE n_copies IS NOT NULL AND b_copies IS NOT NULL AND usage_type = 'voice'
    AND abs(n_qty - b_qty) > {t.duration_seconds}
UNION ALL SELECT record_id, 'rating_mismatch',
    round(round(b_qty * rate, {CHARGE_DECIMALS}) - charge, {CHARGE_DECIMALS})
  FROM j WHERE b_copies IS NOT NULL
    AND abs(charge - round(b_qty * rate, {CHARGE_DECIMALS})) > {t.charge}
UNION ALL SELECT record_id, 'unbilled', charge
  FROM j WHERE n_copies IS NOT NULL AND b_copies IS NOT NULL AND NOT billed
) TO '{out}' (FORMAT parquet, COMPRESSION zstd)
""",
        {"start": start, "end": end, "rated": rated},
    )


def pandas_reconcile(data: Path, out: Path, start: datetime, end: datetime) -> None:
    """``merge(how="outer")`` after a ``groupby`` per side, rules in numpy."""
    import pandas as pd

    net = pd.read_parquet(data / "network", columns=NETWORK_INPUT.names)
    net = net[(net.record_opening_time >= start) & (net.record_opening_time < end)]
    voice = (net.record_type == "voice").to_numpy()
    volume = net.uplink_volume.fillna(0).to_numpy() + net.downlink_volume.fillna(0).to_numpy()
    net = net.assign(n_qty=np.where(voice, net.duration.to_numpy(), volume), n_voice=voice)
    n = net.groupby("record_id", sort=False).agg(
        n_copies=("n_qty", "size"),
        n_voice=("n_voice", "first"),
        n_msisdn=("served_msisdn", "first"),
        n_qty=("n_qty", "first"),
    )
    bill = pd.concat(pd.read_parquet(f) for f in _rated_files(data))
    bill = bill[(bill.start_time >= start) & (bill.start_time < end)]
    b_voice = (bill.usage_type == "voice").to_numpy()
    bill = bill.assign(
        b_qty=np.where(b_voice, bill.duration.fillna(0), bill.volume.fillna(0)),
        b_voice=b_voice,
        billed_charge=np.where(bill.billed.fillna(False), bill.charge, 0.0),
    )
    b = bill.groupby("record_id", sort=False).agg(
        b_copies=("b_qty", "size"),
        b_voice=("b_voice", "first"),
        b_qty=("b_qty", "first"),
        tariff=("tariff", "first"),
        charge=("charge", "first"),
        billed=("billed", "first"),
        billed_total=("billed_charge", "sum"),
        billed_max=("billed_charge", "max"),
    )
    j = n.join(b, how="outer")
    tariffs = pd.DataFrame(_tariffs(), columns=["plan", "data_mb", "voice_min"]).set_index("plan")
    subscriptions = pd.read_parquet(data / "billing" / "subscriptions.parquet").set_index("msisdn")

    has_n = j.n_copies.notna().to_numpy()
    has_b = j.b_copies.notna().to_numpy()
    voice = np.where(has_n, j.n_voice.fillna(False), j.b_voice.fillna(False)).astype(bool)
    n_qty = j.n_qty.fillna(0).to_numpy()
    b_qty = j.b_qty.fillna(0).to_numpy()
    charge = j.charge.fillna(0.0).to_numpy()
    billed = j.billed.fillna(False).to_numpy(dtype=bool)
    per_unit = np.where(
        voice,
        tariffs.voice_min.reindex(j.tariff).to_numpy() / 60,
        tariffs.data_mb.reindex(j.tariff).to_numpy() / BYTES_PER_MB,
    )
    plan = subscriptions.plan.reindex(j.n_msisdn).to_numpy()
    subscriber_unit = np.where(
        voice,
        tariffs.voice_min.reindex(plan).to_numpy() / 60,
        tariffs.data_mb.reindex(plan).to_numpy() / BYTES_PER_MB,
    )
    expected = np.round(b_qty * per_unit, CHARGE_DECIMALS)
    diff = n_qty - b_qty
    t = TOLERANCES
    both = has_n & has_b
    n_copies = j.n_copies.fillna(0).to_numpy()
    b_copies = j.b_copies.fillna(0).to_numpy()
    rules = [
        ("duplicate_in_network", n_copies > 1, np.zeros(len(j))),
        (
            "duplicate_in_billing",
            b_copies > 1,
            -(j.billed_total.fillna(0).to_numpy() - j.billed_max.fillna(0).to_numpy()),
        ),
        ("missing_in_billing", has_n & ~has_b, np.nan_to_num(n_qty * subscriber_unit)),
        ("missing_in_network", has_b & ~has_n, np.where(billed, -charge, 0)),
        (
            "volume_mismatch",
            both & ~voice & (np.abs(diff) > np.maximum(t.volume_bytes, t.volume_ratio * n_qty)),
            diff * per_unit,
        ),
        ("duration_mismatch", both & voice & (np.abs(diff) > t.duration_seconds), diff * per_unit),
        (
            "rating_mismatch",
            has_b & (np.abs(charge - expected) > t.charge),
            expected - charge,
        ),
        ("unbilled", both & ~billed, charge),
    ]
    ids = j.index.to_numpy()
    frames = [
        pd.DataFrame(
            {
                "record_id": ids[mask],
                "category": name,
                "revenue_impact": np.round(impact[mask], CHARGE_DECIMALS),
            }
        )
        for name, mask, impact in rules
    ]
    pq.write_table(pa.Table.from_pandas(pd.concat(frames), preserve_index=False), out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.recon_alternatives")
    parser.add_argument("engine", choices=["duckdb", "pandas"])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--start", type=datetime.fromisoformat, required=True)
    parser.add_argument("--end", type=datetime.fromisoformat, required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import duckdb  # noqa: F401  (imported before the clock starts, as the hub's worker is)
    import pandas  # noqa: F401

    started = time.perf_counter()
    if args.engine == "duckdb":
        duckdb_reconcile(args.data, args.out, args.start, args.end, args.threads)
    else:
        pandas_reconcile(args.data, args.out, args.start, args.end)
    print(json.dumps({"engine": args.engine, "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
