"""Inventory audit benchmark: the engine on a million subscribers per system.

    .venv/bin/python -m bench.inventory --subscribers 1000000

Generates (or reuses, under ``bench/out/inventory-<n>/``) the hub's record, the HSS, billing
and CRM inventories as Parquet, ``--subscribers`` each, with ``--drift`` of them (a fraction)
drifted in each of six ways, on disjoint subscribers: billing terminated (in_hss_not_billed),
gone from the HSS (billed_not_in_hss), gone from the CRM (missing_in_crm), billed on another
plan (plan_or_qos_mismatch), barred in the HSS (status_mismatch), and as many again present in
every system but unknown to the hub (unknown_to_hub). Then times what the audit's compare
activity does: read the four files and the catalogue, :func:`hub.inventory.engine.compare`,
write ``differences.parquet``; ``--repeat`` times, after one warm-up read. Prints each run's
time, the peak RSS of the process, and checks every category's count against the ground truth
(exit 2 if one differs). The page-by-page reads from the systems are not in it: their speed is
the systems' (see README, "Inventory audit").
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hub.inventory import engine
from hub.settings import REPO_ROOT

OUT = REPO_ROOT / "bench" / "out"
PLANS = [
    ("BASIC-4G", 9.9, 9, 20_000_000, 5_000_000),
    ("STANDARD-5G", 24.9, 9, 300_000_000, 50_000_000),
    ("UNLIMITED-5G", 49.9, 8, 1_000_000_000, 100_000_000),
    ("IOT-M2M", 2.5, 9, 1_000_000, 256_000),
]
DRIFTS = (
    "in_hss_not_billed",
    "billed_not_in_hss",
    "missing_in_crm",
    "plan_or_qos_mismatch",
    "status_mismatch",
    "unknown_to_hub",
)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    return pa.array(np.char.add(prefix, np.char.zfill(numbers.astype(str), width)))


def generate(folder: Path, n: int, drift: float, seed: int = 7) -> dict[str, int]:
    """Write the five inputs; answer each category's expected count."""
    rng = np.random.default_rng(seed)
    k = max(1, int(n * drift))
    numbers = np.arange(n, dtype=np.int64)
    extra = np.arange(n, n + k, dtype=np.int64)  # unknown to the hub
    everyone = np.concatenate([numbers, extra])
    plan_of = rng.integers(0, len(PLANS), len(everyone))
    names = np.array([p[0] for p in PLANS], dtype=object)
    fee = np.array([p[1] for p in PLANS])
    qci = np.array([p[2] for p in PLANS], dtype=np.int32)
    down = np.array([p[3] for p in PLANS], dtype=np.int64)
    up = np.array([p[4] for p in PLANS], dtype=np.int64)
    imsi = _ids("00101", everyone, 10)
    msisdn = _ids("4366", everyone, 9)
    chosen = rng.permutation(n)[: 5 * k].reshape(5, k)
    unbilled, not_in_hss, not_in_crm, replanned, barred = chosen

    def keep(without: np.ndarray) -> np.ndarray:
        mask = np.ones(len(everyone), dtype=bool)
        mask[without] = False
        return mask

    hub = pa.table(
        {
            "imsi": imsi[:n],
            "msisdn": pa.array(np.char.add("+", np.asarray(msisdn[:n]).astype(str))),
            "customer_id": _ids("C", numbers, 8),
            "status": pa.array(np.full(n, "active")),
            "plan": pa.array(names[plan_of[:n]], pa.string()),
            "qci": qci[plan_of[:n]],
            "ambr_downlink": down[plan_of[:n]],
            "ambr_uplink": up[plan_of[:n]],
        }
    )
    is_barred = np.zeros(len(everyone), dtype=bool)
    is_barred[barred] = True
    hss = pa.table(
        {
            "imsi": imsi,
            "msisdn": msisdn,
            "barred": is_barred,
            "qci": qci[plan_of],
            "ambr_downlink": down[plan_of],
            "ambr_uplink": up[plan_of],
        }
    ).filter(keep(not_in_hss))
    billed_plan = plan_of.copy()
    billed_plan[replanned] = (billed_plan[replanned] + 1) % len(PLANS)
    status = np.full(len(everyone), "active", dtype=object)
    status[unbilled] = "terminated"
    billing = pa.table(
        {
            "subscription_id": _ids("sub-", everyone, 10),
            "imsi": imsi,
            "msisdn": msisdn,
            "plan": pa.array(names[billed_plan], pa.string()),
            "status": pa.array(status, pa.string()),
            "monthly_fee": fee[billed_plan],
        }
    )
    crm = pa.table(
        {
            "service_id": pa.array(np.char.add("svc-", np.asarray(imsi).astype(str))),
            "customer_id": _ids("C", everyone, 8),
            "imsi": imsi,
            "msisdn": msisdn,
            "plan": pa.array(names[plan_of], pa.string()),
            "status": pa.array(np.full(len(everyone), "active")),
        }
    ).filter(keep(not_in_crm))
    catalogue = pa.Table.from_pylist(
        [
            {"plan": p, "monthly_fee": f, "qci": q, "ambr_downlink": d, "ambr_uplink": u}
            for p, f, q, d, u in PLANS
        ],
        schema=engine.CATALOGUE_SCHEMA,
    )
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in (
        ("hub", hub),
        ("hss", hss),
        ("billing", billing),
        ("crm", crm),
        ("catalogue", catalogue),
    ):
        pq.write_table(table, folder / f"{name}.parquet", compression="zstd")
    return {name: k for name in DRIFTS}


def audit(folder: Path) -> tuple[float, float, engine.AuditSummary]:
    """What the compare activity does, timed: read, compare, write. Answers the wall time, the
    CPU time (every thread's: on a busy machine the wall time says more about the others)."""
    cpu = time.process_time()
    started = time.perf_counter()
    tables = {
        name: pq.read_table(folder / f"{name}.parquet")
        for name in ("hub", "hss", "billing", "crm", "catalogue")
    }
    read = time.perf_counter()
    found, summary = engine.compare(
        tables["hub"], tables["hss"], tables["billing"], tables["crm"], tables["catalogue"]
    )
    compared = time.perf_counter()
    pq.write_table(found, folder / "differences.parquet", compression="zstd")
    done = time.perf_counter()
    print(
        f"  read {read - started:.2f}s, compare {compared - read:.2f}s, "
        f"write {done - compared:.2f}s"
    )
    return done - started, time.process_time() - cpu, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--drift", type=float, default=0.001, help="fraction per category")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args(argv)
    folder = OUT / f"inventory-{args.subscribers}-{args.drift}"
    expected_file = folder / "expected.txt"
    if args.regenerate or not expected_file.exists():
        started = time.perf_counter()
        expected = generate(folder, args.subscribers, args.drift)
        expected_file.write_text(" ".join(f"{k}={v}" for k, v in expected.items()))
        print(
            f"generated {args.subscribers:,} subscribers per system in "
            f"{time.perf_counter() - started:.1f}s under {folder}"
        )
    expected = {
        name: int(count)
        for name, count in (pair.split("=") for pair in expected_file.read_text().split())
    }
    for name in ("hub", "hss", "billing", "crm"):  # warm the page cache
        pq.read_table(folder / f"{name}.parquet")
    times, cpus = [], []
    summary = engine.AuditSummary()
    for number in range(1, args.repeat + 1):
        seconds, cpu, summary = audit(folder)
        times.append(seconds)
        cpus.append(cpu)
        print(f"run {number}: {seconds:.2f}s wall, {cpu:.2f}s CPU")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"records: hub {summary.hub_records:,}, hss {summary.hss_records:,}, "
        f"billing {summary.billing_records:,}, crm {summary.crm_records:,}; "
        f"{summary.differences:,} differences, {summary.revenue_at_stake:,.2f} a month at stake"
    )
    print(
        f"best {min(times):.2f}s wall, median {sorted(times)[len(times) // 2]:.2f}s; "
        f"CPU best {min(cpus):.2f}s; peak RSS {peak_mb:,.0f} MB; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    wrong = {
        name: (summary.categories.get(name, engine.CategoryTotal()).count, count)
        for name, count in expected.items()
        if summary.categories.get(name, engine.CategoryTotal()).count != count
    }
    for name, total in summary.categories.items():
        print(f"  {name:22} {total.count:>9,}  {total.revenue_at_stake:>14,.2f}")
    if wrong:
        print(f"categories differ from the ground truth (found, expected): {wrong}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
