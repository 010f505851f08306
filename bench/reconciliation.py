"""Reconciliation benchmark: the hub against DuckDB and pandas on the same files, in one run.

    .venv/bin/python -m bench.reconciliation --records 10000000

Generates (or reuses, under ``bench/out/``) one day of network CDRs and billing's rated usage,
``--records`` usage events each side with string record ids, both sides shuffled, Parquet, with
the generator's default discrepancy rates. Then, each in processes of its own, on the same
files, after one read of them all to warm the page cache:

- **hub**: a private stack (``bench/stack.py``: Temporal dev server, simulators, ``python
  worker.py``, the API); one ``POST /reconciliations`` per repeat, timed from the request to the
  workflow's result (files to discrepancy file and summary in the hub database). Peak memory is
  the worker process's high-water mark (``VmHWM``), which is where the data work runs;
- **duckdb**: after each hub run (the two alternate), one SQL statement, grouped per record id
  then a full outer join, with the same rules, writing the discrepancies to Parquet
  (``bench/recon_alternatives.py``);
- **pandas**: ``groupby`` per side, ``join(how="outer")``, the same rules in numpy.

Every contender's discrepancies are checked against the generator's ground truth (category
counts); a contender that disagrees makes the run exit 2. Ratios are the contender's time over
the hub's: above 1, the hub was faster.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pyarrow.parquet as pq
from temporalio.client import WorkflowFailureError

from bench.stack import BenchStack
from hub.settings import REPO_ROOT
from simulators.usage import UsageSpec, generate
from workflows.reconciliation import ReconciliationResult

logger = logging.getLogger("bench.reconciliation")

START = datetime(2026, 11, 1, tzinfo=UTC)
END = START + timedelta(days=1)
OUT = REPO_ROOT / "bench" / "out"


@dataclass
class Measurement:
    name: str
    seconds: list[float] = field(default_factory=list)
    peak_rss_bytes: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


# --- data ------------------------------------------------------------------------------------


def dataset(records: int, seed: int, folder: Path | None) -> tuple[Path, dict[str, Any]]:
    """The generated data for ``records`` and ``seed``, generated once and then reused."""
    folder = (folder or OUT / f"recon-{records}-s{seed}").resolve()
    manifest = folder / "manifest.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        if data["spec"]["records"] == records and data["spec"]["seed"] == seed:
            logger.info("reusing %s", folder)
            return folder, data
    logger.info("generating %d records per side into %s", records, folder)
    started = time.monotonic()
    generate(UsageSpec(START, END, records=records, seed=seed), folder)
    logger.info("generated in %.1f s", time.monotonic() - started)
    return folder, json.loads(manifest.read_text())


def warm(folder: Path) -> int:
    """Read every input file once, so no contender pays for a cold page cache."""
    total = 0
    for path in sorted(folder.rglob("*.parquet")):
        with path.open("rb") as source:
            while chunk := source.read(8 << 20):
                total += len(chunk)
    return total


def category_counts(path: Path) -> dict[str, int]:
    table = pq.read_table(path, columns=["category"])
    return {row["values"]: row["counts"] for row in pc.value_counts(table["category"]).to_pylist()}


# --- contenders ------------------------------------------------------------------------------


def peak_rss(pid: int) -> int:
    """The kernel's high-water mark of a live process's resident memory, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


async def run_hub(
    data: Path,
    repeats: int,
    partitions: int,
    threads: int,
    between: Callable[[int], None] | None = None,
) -> Measurement:
    """``repeats`` hub runs on one stack; ``between(repeat)`` after each (another contender's
    run, so the two alternate and share whatever load the machine has)."""
    measurement = Measurement("hub")
    with tempfile.TemporaryDirectory(prefix="bench-recon-") as tmp:
        stack = BenchStack(
            Path(tmp),
            latency_ms=0,
            extra_env={
                "HUB_RECONCILIATION_THREADS": str(threads),
                "HUB_RECONCILIATION_SOURCE_ROOTS": str(data),
            },
        )
        try:
            await stack.start()
            client = await stack.client()
            headers = {"X-API-Key": stack.api_key}
            async with httpx.AsyncClient(base_url=stack.api_url, headers=headers) as api:
                for repeat in range(repeats):
                    body = {
                        "periodStart": START.isoformat(),
                        "periodEnd": END.isoformat(),
                        "networkSource": str(data / "network"),
                        "billingSource": str(data / "billing"),
                        "leakageThresholdPct": 100,
                        "partitions": partitions,
                    }
                    started = time.perf_counter()
                    reply = await api.post("/reconciliations", json=body, timeout=30)
                    reply.raise_for_status()
                    handle = client.get_workflow_handle(
                        reply.json()["workflowId"], result_type=ReconciliationResult
                    )
                    try:
                        result = await handle.result()
                    except WorkflowFailureError as exc:  # ReconciliationFailed: its message
                        raise RuntimeError(f"hub run failed: {exc.cause}") from exc
                    elapsed = time.perf_counter() - started
                    measurement.seconds.append(elapsed)
                    logger.info("hub run %d: %.2f s", repeat + 1, elapsed)
                    run = (await api.get(f"/reconciliations/{result.run_id}")).json()
                    measurement.detail = {
                        "partitions": run["parameters"]["partitions"],
                        "discrepancies": run["discrepancyCount"],
                        "leakagePct": run["leakagePct"],
                        "phases": await phases(handle),
                    }
                    assert result.discrepancy_uri is not None
                    measurement.counts = category_counts(Path(result.discrepancy_uri))
                    if between is not None:
                        await asyncio.to_thread(between, repeat)
            worker = stack.children["worker"].pid
            assert worker is not None
            measurement.peak_rss_bytes = peak_rss(worker)
        finally:
            stack.stop()
    return measurement


async def phases(handle: Any) -> dict[str, float]:
    """Wall time of each kind of data activity, first scheduled to last completed."""
    spans: dict[str, list[float]] = {}
    scheduled: dict[int, tuple[str, float]] = {}
    async for event in handle.fetch_history_events():
        at = event.event_time.ToDatetime().timestamp()
        if event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = (name, at)
        elif event.HasField("activity_task_completed_event_attributes"):
            name, began = scheduled[
                event.activity_task_completed_event_attributes.scheduled_event_id
            ]
            span = spans.setdefault(name, [began, at])
            span[0], span[1] = min(span[0], began), max(span[1], at)
    return {
        name.removeprefix("reconciliation."): round(end - begin, 2)
        for name, (begin, end) in spans.items()
        if name.startswith("reconciliation.")
    }


def run_alternative_once(measurement: Measurement, data: Path, out: Path, threads: int) -> None:
    """One run of the contender ``measurement.name`` in a process of its own, into ``out``."""
    engine = measurement.name
    argv = [
        sys.executable, "-m", "bench.recon_alternatives", engine, str(data), str(out),
        "--start", START.isoformat(), "--end", END.isoformat(),
        "--threads", str(threads),
    ]  # fmt: skip
    process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"{engine} exited with status {status}")
    # Its own clock, from reading the files to the written result: the interpreter's
    # start and imports are not the engine's cost (nor are the hub worker's).
    elapsed = float(json.loads(output.strip().splitlines()[-1])["seconds"])
    measurement.seconds.append(elapsed)
    # ru_maxrss is in KiB on Linux.
    measurement.peak_rss_bytes = max(measurement.peak_rss_bytes, usage.ru_maxrss * 1024)
    logger.info("%s run %d: %.2f s", engine, len(measurement.seconds), elapsed)
    measurement.counts = category_counts(out)


def run_alternative(engine: str, data: Path, repeats: int, threads: int) -> Measurement:
    measurement = Measurement(engine)
    with tempfile.TemporaryDirectory(prefix=f"bench-{engine}-") as tmp:
        for _ in range(repeats):
            run_alternative_once(measurement, data, Path(tmp) / "discrepancies.parquet", threads)
    return measurement


# --- report ----------------------------------------------------------------------------------


def report(results: list[Measurement], expected: dict[str, int], records: int) -> bool:
    hub = results[0]
    print(f"\nreconciliation of {records:,} network vs {records:,} billed records (Parquet)\n")
    print(f"{'':8} {'median s':>9} {'runs':>18} {'peak RSS':>10} {'vs hub':>7}  agrees")
    agree_all = True
    for result in results:
        agrees = result.counts == expected
        agree_all &= agrees
        runs = " ".join(f"{s:.1f}" for s in result.seconds)
        ratio = result.median / hub.median
        print(
            f"{result.name:8} {result.median:9.2f} {runs:>18} "
            f"{result.peak_rss_bytes / 2**30:8.2f} GiB {ratio:6.2f}x  {'yes' if agrees else 'NO'}"
        )
    print(f"\nhub: {hub.detail}")
    print(f"throughput: {2 * records / hub.median / 1e6:.2f} M records/s (both sides) on the hub")
    if not agree_all:
        for result in results:
            diff = Counter(result.counts)
            diff.subtract(expected)
            print(f"{result.name} minus ground truth: {dict(+diff)} / {dict(-diff)}")
    return agree_all


async def main_async(args: argparse.Namespace) -> int:
    data, manifest = dataset(args.records, args.seed, args.data)
    logger.info("page cache: %.0f MB read", warm(data) / 1e6)
    # The hub and DuckDB alternate, run by run: both see the same machine.
    duckdb = Measurement("duckdb")
    with tempfile.TemporaryDirectory(prefix="bench-duckdb-") as tmp:
        out = Path(tmp) / "discrepancies.parquet"
        hub = await run_hub(
            data,
            args.repeat,
            args.partitions,
            args.threads,
            between=lambda _: run_alternative_once(duckdb, data, out, args.threads),
        )
    results = [hub, duckdb]
    if not args.skip_pandas:
        results.append(run_alternative("pandas", data, 1, args.threads))
    return 0 if report(results, manifest["injected"], args.records) else 2


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reconciliation", description=__doc__)
    parser.add_argument("--records", type=int, default=10_000_000, help="usage events per side")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=None, help="where the data is (generated)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the hub and of DuckDB")
    parser.add_argument("--partitions", type=int, default=0, help="0: the hub chooses")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--skip-pandas", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
