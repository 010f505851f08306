"""Regulatory reporting benchmark: the KEV report engine against DuckDB, same files, one run.

    .venv/bin/python -m bench.reporting --records 10000000

Generates (or reuses, under ``bench/out/reporting-<records>-<seed>/``) one quarter (2026-Q1,
Europe/Vienna, reaching an hour past both edges so the time zone matters) of mediation CDRs
and billing's rated usage with ``simulators/usage.py``: ``--records`` usage events, 20% voice,
10% SMS, the rest data, string record ids, shuffled, Parquet, with the generator's default
discrepancies (so some records are delivered twice). Then, each in a process of its own, on the
same files, after one read of them all to warm the page cache:

- **hub**: ``hub.reporting.kev.compute`` on the file lists, timed inside the process; peak
  memory is the process's high-water mark (``ru_maxrss``), imports and interpreter included;
- **duckdb**: a few SQL statements computing the same indicators with the same rules (quarter in the
  time zone, one row per record id, M2M by the subscriptions' plan, charges summed exactly in
  10^-4 units), on all the machine's cores.

Both results are compared figure by figure; a disagreement makes the run exit 2. The ratio is
DuckDB's time over the hub's: above 1, the hub was faster. CPU seconds (user + system, all
threads) are printed too: on a crowded machine they say more than the wall clock.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from hub.reporting import kev
from hub.reporting.periods import Quarter

QUARTER = Quarter(2026, 1)
TZ = "Europe/Vienna"
M2M_PLANS = ["IOT-M2M"]
OUT = Path(__file__).resolve().parent / "out"


def dataset(records: int, seed: int, folder: Path | None = None) -> Path:
    """The generated data for ``records`` and ``seed``, generated once and then reused."""
    from simulators.usage import UsageSpec, generate

    folder = folder or OUT / f"reporting-{records}-{seed}"
    if (folder / "manifest.json").exists():
        return folder
    start, end = QUARTER.bounds(TZ)
    spec = UsageSpec(
        start - timedelta(hours=1),
        end + timedelta(hours=1),
        records=records,
        seed=seed,
        sms_share=0.1,
    )
    started = time.monotonic()
    generate(spec, folder)
    print(f"generated {records:,} records in {time.monotonic() - started:.1f} s", flush=True)
    return folder


def files(folder: Path) -> tuple[list[str], list[str], str]:
    network = sorted(str(p) for p in (folder / "network").glob("cdr-*.parquet"))
    billing = sorted(str(p) for p in (folder / "billing").glob("rated-*.parquet"))
    return network, billing, str(folder / "billing" / "subscriptions.parquet")


def run_hub(folder: Path) -> dict[str, Any]:
    import pyarrow as pa

    # pyarrow imports pandas at its first conversion to numpy (a second or two, once per
    # process; a worker has long paid it): outside the timing, like DuckDB's import.
    pa.array([0]).to_numpy()
    network, billing, subscriptions = files(folder)
    cpu, started = _cpu(), time.perf_counter()
    indicators, findings = kev.compute(
        network, billing, subscriptions, QUARTER, tz=TZ, m2m_plans=M2M_PLANS, currency="EUR"
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu() - cpu,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "indicators": asdict(indicators),
        "days_without_cdrs": len(findings),
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cents(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def run_duckdb(folder: Path) -> dict[str, Any]:
    import duckdb

    start, end = QUARTER.bounds(TZ)
    network, billing, subscriptions = files(folder)
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count() or 1}")
    con.execute(f"SET TimeZone = '{TZ}'")
    params = {"start": start, "end": end, "network": network}
    cpu, started = _cpu(), time.perf_counter()
    con.execute(
        """
        CREATE TEMP TABLE cdr AS
        SELECT record_id, record_type, served_imsi, served_msisdn, rat_type, duration,
               coalesce(uplink_volume, 0) + coalesce(downlink_volume, 0) AS volume,
               record_opening_time AS t
        FROM read_parquet($network)
        WHERE record_opening_time >= $start AND record_opening_time < $end
        """,
        params,
    )
    sims, m2m = con.execute(
        """
        SELECT count(DISTINCT served_imsi),
               count(DISTINCT served_imsi) FILTER (WHERE s.plan IN ('IOT-M2M'))
        FROM cdr LEFT JOIN read_parquet(?) s ON s.msisdn = cdr.served_msisdn
        """,
        [subscriptions],
    ).fetchone()  # type: ignore[misc]
    days = con.execute("SELECT count(DISTINCT (t AT TIME ZONE 'Europe/Vienna')::DATE) FROM cdr")
    days_present = days.fetchone()[0]  # type: ignore[index]
    rows = con.execute(
        """
        WITH once AS (
            SELECT any_value(record_type) AS record_type, any_value(rat_type) AS rat_type,
                   any_value(duration) AS duration, any_value(volume) AS volume
            FROM cdr GROUP BY record_id
        )
        SELECT record_type, coalesce(rat_type, 'UNKNOWN'), count(*), sum(duration), sum(volume)
        FROM once GROUP BY ALL
        """
    ).fetchall()
    revenue = con.execute(
        """
        WITH once AS (
            SELECT any_value(usage_type) AS usage_type,
                   any_value(CAST(round(charge * 10000) AS BIGINT)) AS units
            FROM read_parquet($billing)
            WHERE billed AND start_time >= $start AND start_time < $end
            GROUP BY record_id
        )
        SELECT usage_type, sum(units) FROM once GROUP BY ALL
        """,
        {"start": start, "end": end, "billing": billing},
    ).fetchall()
    seconds = time.perf_counter() - started
    by_rat: dict[str, int] = {}
    voice_seconds = sms = 0
    for record_type, rat, count, duration, volume in rows:
        if record_type == "data":
            by_rat[rat] = by_rat.get(rat, 0) + int(volume)
        elif record_type == "voice":
            voice_seconds += int(duration)
        elif record_type == "sms":
            sms += int(count)
    units = dict.fromkeys(kev.USAGE_TYPES, 0) | {t: int(u) for t, u in revenue}
    scale = Decimal(10000)
    indicators = kev.KevIndicators(
        sim_cards_in_use=int(sims),
        m2m_sim_cards_in_use=int(m2m),
        mobile_data_volume_bytes=sum(by_rat.values()),
        data_volume_by_rat=dict(sorted(by_rat.items())),
        voice_minutes=_cents(Decimal(voice_seconds) / 60),
        sms_count=sms,
        retail_usage_revenue={t: _cents(Decimal(units[t]) / scale) for t in kev.USAGE_TYPES},
        retail_usage_revenue_total=_cents(Decimal(sum(units[t] for t in kev.USAGE_TYPES)) / scale),
        currency="EUR",
    )
    quarter_days = (QUARTER.bounds(TZ)[1] - QUARTER.bounds(TZ)[0] + timedelta(hours=2)).days
    return {
        "seconds": seconds,
        "cpu_seconds": _cpu() - cpu,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "indicators": asdict(indicators),
        "days_without_cdrs": quarter_days - int(days_present),
    }


def _child(contender: str, folder: Path) -> dict[str, Any]:
    """Run one contender in a fresh process: its memory is its own."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.reporting", "--run", contender, "--data", str(folder)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def _warm(folder: Path) -> int:
    size = 0
    for path in folder.rglob("*.parquet"):
        size += len(path.read_bytes())
    return size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=None, help="where the data is (generated)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender (best kept)")
    parser.add_argument("--run", choices=["hub", "duckdb"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        run = run_hub if args.run == "hub" else run_duckdb
        print(json.dumps(run(args.data)))
        return 0
    folder = dataset(args.records, args.seed, args.data)
    manifest = json.loads((folder / "manifest.json").read_text())
    size = _warm(folder)
    print(
        f"data: {manifest['network_rows']:,} CDRs, {manifest['billing_rows']:,} rated records, "
        f"{size / 2**20:,.0f} MiB Parquet, {folder}; {os.cpu_count()} cores; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    for contender in ("hub", "duckdb"):
        runs = [_child(contender, folder) for _ in range(args.repeat)]
        results[contender] = min(runs, key=lambda r: r["seconds"])
        best = results[contender]
        print(
            f"{contender:>7}: {best['seconds']:7.2f} s  CPU {best['cpu_seconds']:6.2f} s  peak RSS "
            f"{best['peak_rss_bytes'] / 2**30:.2f} GiB  (runs: "
            + ", ".join(f"{r['seconds']:.2f}" for r in runs)
            + ")",
            flush=True,
        )
    hub, duck = results["hub"], results["duckdb"]
    print(f"  ratio: duckdb / hub = {duck['seconds'] / hub['seconds']:.2f} (above 1: hub faster)")
    print(f"  CPU ratio: duckdb / hub = {duck['cpu_seconds'] / hub['cpu_seconds']:.2f}")
    print(f"indicators: {json.dumps(hub['indicators'])}")
    same = hub["indicators"] == duck["indicators"]
    same = same and hub["days_without_cdrs"] == duck["days_without_cdrs"]
    print("agree: " + ("yes" if same else f"NO; duckdb: {json.dumps(duck)}"))
    goal = hub["seconds"] <= duck["seconds"] and hub["peak_rss_bytes"] < 1.5 * 2**30
    print(
        f"goal (hub at least as fast as duckdb, peak under 1.5 GiB): {'met' if goal else 'MISSED'}"
    )
    return 0 if same else 2


if __name__ == "__main__":
    sys.exit(main())
