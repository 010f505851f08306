"""Export benchmark: N order state changes from the hub database to Parquet, end to end,
against what a user would write by hand: the ADBC driver of the same database and pyarrow.

    .venv/bin/python -m bench.export --rows 1000000 [--database-url postgresql://...] [--repeat 3]

Fills ``order_state_change`` of a fresh hub database (SQLite in a temporary folder, or the
PostgreSQL of ``--database-url`` in a schema of its own) with N rows spread over ``--days``
days, then, in a child process, runs the real thing: a Temporal dev server, a worker with the
``Export`` workflow and its activities, and one run of an export of that table to Parquet in a
local folder. The child reports the run's wall time (from starting the workflow to its result),
rows per second, and its peak RSS (the kernel's high-water mark, ``ru_maxrss``) next to the
RSS it had before the run, so what the export adds is visible, and on SQLite the peak RSS of
the reader process its worker starts (``hub/sqlite_arrow.py``). The filling is not measured.
The manifest's row count and every file's SHA-256 are checked afterwards.

The baseline, in a child process of its own on the same table in the same run: the same
query through ``adbc_driver_sqlite`` / ``adbc_driver_postgresql`` (``fetch_record_batch``)
streamed into one ``pyarrow.parquet.ParquetWriter`` (zstd), no Temporal, no manifest, no
partitions. The two alternate ``--repeat`` times; the medians and their ratio are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

logger = logging.getLogger("bench.export")

START = datetime(2026, 1, 1, tzinfo=UTC)
ORDER_ID = "b" * 32
STATES = (("acknowledged", "inProgress"), ("inProgress", "completed"))


# --- Filling the table ------------------------------------------------------------------------


def _rows(count: int, days: int) -> Iterator[tuple[str, str, str, str, str, datetime]]:
    step = timedelta(days=days) / count
    for i in range(count):
        from_state, to_state = STATES[i % 2]
        yield ORDER_ID, str(i % 4 + 1), from_state, to_state, f"step {i % 97}", START + step * i


def _parent_order() -> dict[str, Any]:
    return {
        "id": ORDER_ID,
        "state": "completed",
        "workflow_id": f"service-order-{ORDER_ID}",
        "order_date": START,
        "updated_at": START,
        "document": "{}",
    }


def fill_sqlite(path: Path, count: int, days: int) -> None:
    """Raw sqlite3 in SQLAlchemy's own storage format for timestamps, without a journal."""

    def stamp(moment: datetime) -> str:
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")

    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        order = _parent_order()
        connection.execute(
            "INSERT INTO service_order (id, state, workflow_id, order_date, updated_at, document) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                order["id"],
                order["state"],
                order["workflow_id"],
                stamp(order["order_date"]),
                stamp(order["updated_at"]),
                order["document"],
            ),
        )
        connection.executemany(
            "INSERT INTO order_state_change (order_id, item_id, from_state, to_state, reason, at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            ((o, i, f, t, r, stamp(at)) for o, i, f, t, r, at in _rows(count, days)),
        )
        connection.commit()
    finally:
        connection.close()


def fill_postgresql(url: str, count: int, days: int) -> None:
    import psycopg

    from hub.db import sync_url

    dsn = sync_url(url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        order = _parent_order()
        cursor.execute(
            "INSERT INTO service_order (id, state, workflow_id, order_date, updated_at, document) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            tuple(order.values()),
        )
        with cursor.copy(
            "COPY order_state_change (order_id, item_id, from_state, to_state, reason, at) "
            "FROM STDIN"
        ) as copy:
            for row in _rows(count, days):
                copy.write_row(row)
        cursor.execute("ANALYZE order_state_change")


# --- The measured run (child process) -------------------------------------------------------


def _rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(who).ru_maxrss / 1024


async def run_export(database_url: str, data_dir: Path, batch_size: int) -> dict[str, Any]:
    from temporalio.testing import WorkflowEnvironment

    from activities.exports import ExportActivities
    from adapters.files import Files
    from hub import search_attributes
    from hub.db import create_engine, session_factory
    from hub.settings import Settings
    from worker import Activities, create_workers
    from workflows.exports import ExportInput, ExportResult, ExportWorkflow

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=data_dir,
        database_url=database_url,
        task_queue=f"bench-{uuid.uuid4().hex[:8]}",
        export_settle_lag=timedelta(0),
        export_batch_size=batch_size,
    )
    temporal = shutil.which("temporal") or str(Path(sys.executable).with_name("temporal"))
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal,
        dev_server_log_level="error",
        search_attributes=search_attributes.ALL,
    )
    engine = create_engine(settings.resolved_database_url)
    try:
        activities = ExportActivities(session_factory(engine), Files(), settings)
        queues: Activities = {
            "hub": [activities.options, activities.begin, activities.finish, activities.fail],
            "exports": [activities.write],
        }
        async with AsyncExitStack() as stack:
            for worker in create_workers(
                env.client, queues, settings, task_queue=settings.task_queue
            ):
                await stack.enter_async_context(worker)
            rss_before = _rss_mib()
            started = time.perf_counter()
            result: ExportResult = await env.client.execute_workflow(
                ExportWorkflow.run,
                ExportInput(
                    # One per run: each run exports the whole table (no watermark yet).
                    export_id=f"bench-{data_dir.name}",
                    dataset="order_state_changes",
                    format="parquet",
                    destination=f"file://{data_dir / 'exports'}",
                ),
                id=f"bench-export-{uuid.uuid4().hex[:8]}",
                task_queue=settings.task_queue,
            )
            seconds = time.perf_counter() - started
            # The largest child ended so far: the SQLite reader's (hub/sqlite_arrow.py; the
            # dev server, also a child, is still running). Zero on PostgreSQL.
            reader_peak = _rss_mib(resource.RUSAGE_CHILDREN)
        return {
            "rows": result.rows,
            "files": result.files,
            "bytes": result.bytes,
            "seconds": seconds,
            "rows_per_second": result.rows / seconds if seconds else 0.0,
            "rss_before_mib": rss_before,
            "peak_rss_mib": _rss_mib(),
            "reader_peak_rss_mib": reader_peak,
            "manifest_uri": result.manifest_uri,
        }
    finally:
        await engine.dispose()
        await env.shutdown()


BASELINE_QUERY = (
    "SELECT id, order_id, item_id, from_state, to_state, reason, at "
    "FROM order_state_change ORDER BY at, id"
)


def run_baseline(database_url: str, data_dir: Path) -> dict[str, Any]:
    """ADBC + pyarrow, as a user would write it: the query's batches into one Parquet file."""
    import pyarrow.parquet as pq
    from sqlalchemy.engine import make_url

    parsed = make_url(database_url)
    if parsed.get_backend_name() == "sqlite":
        import adbc_driver_sqlite.dbapi as driver

        location = str(parsed.database)
    else:
        import adbc_driver_postgresql.dbapi as driver  # type: ignore[no-redef]

        location = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    rss_before = _rss_mib()
    started = time.perf_counter()
    rows = 0
    out = data_dir / "baseline.parquet"
    with driver.connect(location) as connection, connection.cursor() as cursor:
        cursor.execute(BASELINE_QUERY)
        reader = cursor.fetch_record_batch()
        with pq.ParquetWriter(out, reader.schema, compression="zstd") as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    seconds = time.perf_counter() - started
    size = out.stat().st_size
    out.unlink()
    return {
        "rows": rows,
        "bytes": size,
        "seconds": seconds,
        "rows_per_second": rows / seconds if seconds else 0.0,
        "rss_before_mib": rss_before,
        "peak_rss_mib": _rss_mib(),
    }


# --- Driver -----------------------------------------------------------------------------------


def verify(manifest_uri: str, rows: int) -> None:
    """The manifest counts every row, and each file's bytes hash to what it says."""
    manifest_path = Path(manifest_uri.removeprefix("file://"))
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    root = manifest_path.parents[2]
    if manifest["rows"] != rows:
        raise SystemExit(f"manifest counts {manifest['rows']} rows, expected {rows}")
    for entry in manifest["files"]:
        digest = hashlib.sha256()
        with (root / entry["path"]).open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != entry["sha256"]:
            raise SystemExit(f"{entry['path']}: SHA-256 differs from the manifest")


def _postgres_schema_url(base: str) -> tuple[str, str]:
    schema = f"bench_export_{uuid.uuid4().hex[:8]}"
    separator = "&" if "?" in base else "?"
    return schema, f"{base}{separator}options=-csearch_path%3D{schema}"


def _postgres_admin(base: str, statement: str) -> None:
    import psycopg

    from hub.db import sync_url

    dsn = sync_url(base).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(statement)


def _child(arguments: list[str], batch_size: int) -> dict[str, Any]:
    child = subprocess.run(
        [sys.executable, "-m", "bench.export", "--batch-size", str(batch_size), *arguments],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(child.stdout.strip().splitlines()[-1]))


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median throughput."""
    ordered = sorted(runs, key=lambda run: run["rows_per_second"])
    return ordered[len(ordered) // 2]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows to export")
    parser.add_argument("--days", type=int, default=10, help="days (partitions) they span")
    parser.add_argument("--batch-size", type=int, default=10_000, help="rows per read batch")
    parser.add_argument(
        "--database-url",
        default="",
        help="a PostgreSQL URL to fill a schema of its own in; default: SQLite in a temp folder",
    )
    parser.add_argument("--repeat", type=int, default=1, help="alternating runs of each")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--child", nargs=2, metavar=("URL", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--baseline", nargs=2, metavar=("URL", "DIR"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    args = parse_args(argv)
    if args.child:
        figures = asyncio.run(run_export(args.child[0], Path(args.child[1]), args.batch_size))
        print(json.dumps(figures))
        return 0
    if args.baseline:
        print(json.dumps(run_baseline(args.baseline[0], Path(args.baseline[1]))))
        return 0

    from hub.db import migrate

    workdir = Path(tempfile.mkdtemp(prefix="bench-export-"))
    schema = ""
    try:
        if args.database_url:
            schema, url = _postgres_schema_url(args.database_url)
            _postgres_admin(args.database_url, f'CREATE SCHEMA "{schema}"')
            kind = "PostgreSQL"
        else:
            url, kind = f"sqlite:///{workdir / 'hub.db'}", "SQLite"
        migrate(url)
        print(f"filling order_state_change with {args.rows:,} rows ({kind}) ...", flush=True)
        filling = time.perf_counter()
        if args.database_url:
            fill_postgresql(url, args.rows, args.days)
        else:
            fill_sqlite(workdir / "hub.db", args.rows, args.days)
        print(f"  filled in {time.perf_counter() - filling:.0f} s; exporting ...", flush=True)
        hub_runs, baseline_runs = [], []
        for attempt in range(args.repeat):
            (workdir / f"run-{attempt}").mkdir()
            figures = _child(["--child", url, str(workdir / f"run-{attempt}")], args.batch_size)
            verify(figures["manifest_uri"], args.rows)
            hub_runs.append(figures)
            baseline = _child(["--baseline", url, str(workdir)], args.batch_size)
            if baseline["rows"] != args.rows:
                raise SystemExit(f"the baseline read {baseline['rows']} rows of {args.rows}")
            baseline_runs.append(baseline)
        hub, base = _median(hub_runs), _median(baseline_runs)
        ratio = hub["rows_per_second"] / base["rows_per_second"]
        if args.json:
            print(json.dumps({"database": kind, "hub": hub_runs, "baseline": baseline_runs,
                              "ratio": ratio}, indent=2))  # fmt: skip
        else:
            print(
                f"exported {hub['rows']:,} rows from {kind} to Parquet (zstd), median of "
                f"{args.repeat}:\n"
                f"  hub:              {hub['seconds']:6.1f} s  {hub['rows_per_second']:>10,.0f} "
                f"rows/s  peak RSS {hub['peak_rss_mib']:,.0f} MiB "
                f"(before the run {hub['rss_before_mib']:,.0f}"
                + (
                    f"; its SQLite reader's {hub['reader_peak_rss_mib']:,.0f}"
                    if hub["reader_peak_rss_mib"]
                    else ""
                )
                + f")  {hub['files']} files, manifest and checksums verified\n"
                f"  ADBC + pyarrow:   {base['seconds']:6.1f} s  {base['rows_per_second']:>10,.0f} "
                f"rows/s  peak RSS {base['peak_rss_mib']:,.0f} MiB "
                f"(before {base['rss_before_mib']:,.0f})\n"
                f"  hub / baseline:   {ratio:.2f}x rows/s"
            )
        return 0
    except subprocess.CalledProcessError as exc:
        print(exc.stderr[-4000:], file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if schema:
            with suppress(Exception):
                _postgres_admin(args.database_url, f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    sys.exit(main())
