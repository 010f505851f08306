"""Export runs on the real dev server and a real database, written to a local folder.

Each test runs the ``Export`` workflow as a schedule would, on its own task queue, with the
export activities built around a files adapter the test chooses (the real one, or one that
fails part-way), and reads back what was published.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from lxml import etree
from sqlmodel import col, select
from temporalio.client import Client, WorkflowFailureError

from activities.exports import ExportActivities
from adapters.files import EXPORT_XSD, Destination, ExportWriter, Files
from hub.db import create_engine, migrate, session_factory
from hub.models import ExportRun, ExportWatermark, RegulatoryReport, utcnow
from hub.settings import Settings
from tests.conftest import FAST_RETRY
from tests.export_data import (
    add_dead_letter,
    add_order,
    add_reconciliation,
    add_regulatory_report,
    add_state_changes,
    files_under,
    manifest_at,
    sha256_of,
)
from tests.factories import add_item, item, new_identity
from worker import create_workers
from workflows.exports import ExportInput, ExportResult, ExportWorkflow

DAY1 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, 23, 59, 59, 999999, tzinfo=UTC)
DAY3 = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)


@dataclass
class Exporter:
    """A worker for export runs, and what a test needs around it."""

    settings: Settings
    client: Client
    sessions: Any
    root: Path

    async def run(self, export_id: str, dataset: str, fmt: str = "parquet", **extra: Any) -> Any:
        return await self.client.execute_workflow(
            ExportWorkflow.run,
            ExportInput(
                export_id=export_id,
                dataset=dataset,
                format=fmt,
                destination=f"file://{self.root}",
                **extra,
            ),
            id=f"export-{export_id}-{uuid.uuid4().hex[:6]}",
            task_queue=self.settings.task_queue,
            execution_timeout=timedelta(seconds=60),
        )

    async def runs(self, export_id: str) -> list[ExportRun]:
        async with self.sessions() as session:
            rows = await session.exec(
                select(ExportRun)
                .where(ExportRun.export_id == export_id)
                .order_by(col(ExportRun.started_at))
            )
            return list(rows)

    async def watermark(self, export_id: str) -> datetime | None:
        async with self.sessions() as session:
            mark = await session.get(ExportWatermark, export_id)
            return mark.watermark if mark else None


def export_settings(tmp_path: Path, **overrides: Any) -> Settings:
    overrides.setdefault("database_url", f"sqlite:///{tmp_path / 'hub.db'}")
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path,
        task_queue=f"test-{uuid.uuid4()}",
        retry={"hub": FAST_RETRY},
        # Small batches and files, so a handful of rows exercises batching and roll-over.
        export_batch_size=3,
        export_row_group_rows=4,
        export_settle_lag=timedelta(0),
        export_heartbeat_timeout=timedelta(seconds=10),
        export_write_timeout=timedelta(seconds=30),
        export_write_attempts=2,
        **overrides,
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Every export test on SQLite and on PostgreSQL (read through its ADBC driver)."""
    return export_settings(tmp_path, database_url=database_url)


@pytest.fixture
def files() -> Files:
    return Files()


@pytest.fixture
async def exporter(
    settings: Settings, files: Files, temporal_client: Client
) -> AsyncIterator[Exporter]:
    migrate(settings.resolved_database_url)
    engine = create_engine(settings.resolved_database_url)
    sessions = session_factory(engine)
    activities = ExportActivities(sessions, files, settings)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        queues = {
            "hub": [activities.options, activities.begin, activities.finish, activities.fail],
            "exports": [activities.write],
        }
        for worker in create_workers(
            temporal_client, queues, settings, task_queue=settings.task_queue
        ):
            await stack.enter_async_context(worker)
        yield Exporter(settings, temporal_client, sessions, settings.data_dir / "exports")


def check_manifest_against_files(manifest: dict[str, Any], root: Path) -> None:
    """Every listed file exists with the stated size, rows and SHA-256; totals add up."""
    assert manifest["rows"] == sum(f["rows"] for f in manifest["files"])
    assert manifest["bytes"] == sum(f["bytes"] for f in manifest["files"])
    for entry in manifest["files"]:
        path = root / entry["path"]
        assert path.stat().st_size == entry["bytes"], entry["path"]
        assert sha256_of(path) == entry["sha256"], entry["path"]
        assert f"date={entry['partition']['date']}" in entry["path"]


# --- Parquet, partitions, manifest, incremental ---------------------------------------------


async def test_parquet_is_partitioned_by_date_with_a_manifest_whose_checksums_match(
    exporter: Exporter,
) -> None:
    times = [DAY1, DAY1 + timedelta(hours=1), DAY2, DAY3, DAY3, DAY3 + timedelta(hours=5)]
    ids = await add_state_changes(exporter.sessions, times)

    result: ExportResult = await exporter.run("changes", "order_state_changes")

    assert result.rows == len(times) and result.after is None
    manifest = manifest_at(result.manifest_uri)
    assert manifest["runId"] == result.run_id and manifest["dataset"] == "order_state_changes"
    assert manifest["format"] == "parquet" and manifest["compression"] == "zstd"
    assert manifest["watermark"]["after"] is None
    assert manifest["watermark"]["column"] == "order_state_change.at"
    assert [c["name"] for c in manifest["schema"]] == [
        "id", "order_id", "item_id", "from_state", "to_state", "reason", "at"
    ]  # fmt: skip
    check_manifest_against_files(manifest, exporter.root)
    # 23:59:59.999999 stays on its day; three rows on day 3 with at most 4 per file, batches of 3.
    by_day: dict[str, int] = {}
    for entry in manifest["files"]:
        by_day[entry["partition"]["date"]] = (
            by_day.get(entry["partition"]["date"], 0) + entry["rows"]
        )
    assert by_day == {"2026-03-01": 2, "2026-03-02": 1, "2026-03-03": 3}
    assert all(f["path"].endswith(".parquet") for f in manifest["files"])
    # Readers see the rows, and the hive partition, and nothing of the staging area.
    table = pads.dataset(
        exporter.root / "order_state_changes", format="parquet", partitioning="hive"
    ).to_table()
    assert sorted(table.column("id").to_pylist()) == sorted(ids)
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    metadata = pq.ParquetFile(exporter.root / manifest["files"][0]["path"]).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    assert not (exporter.root / "_staging").exists() or not any(
        (exporter.root / "_staging").iterdir()
    )
    [run] = await exporter.runs("changes")
    assert run.status == "completed" and run.rows == 6 and run.files == len(manifest["files"])
    assert run.bytes == manifest["bytes"] and run.manifest_uri == result.manifest_uri
    assert await exporter.watermark("changes") == result.until


async def test_a_second_run_exports_only_the_rows_added_since_the_first(
    exporter: Exporter,
) -> None:
    await add_state_changes(exporter.sessions, [DAY1, DAY2])
    first: ExportResult = await exporter.run("incr", "order_state_changes")
    later = utcnow() + timedelta(milliseconds=1)
    new_ids = await add_state_changes(exporter.sessions, [later, later])

    second: ExportResult = await exporter.run("incr", "order_state_changes")

    assert first.rows == 2
    assert second.rows == 2 and second.after == first.until and second.until >= later
    second_manifest = manifest_at(second.manifest_uri)
    paths = [exporter.root / f["path"] for f in second_manifest["files"]]
    exported = pa.concat_tables([pq.read_table(p) for p in paths])
    assert sorted(exported.column("id").to_pylist()) == sorted(new_ids)
    # The two runs' files sit side by side; nothing of the first was rewritten.
    first_manifest = manifest_at(first.manifest_uri)
    check_manifest_against_files(first_manifest, exporter.root)
    check_manifest_against_files(second_manifest, exporter.root)
    assert await exporter.watermark("incr") == second.until


async def test_start_from_skips_older_rows_on_the_first_run(exporter: Exporter) -> None:
    await add_state_changes(exporter.sessions, [DAY1, DAY2, DAY3])
    result: ExportResult = await exporter.run(
        "from", "order_state_changes", start_from=DAY1 + timedelta(hours=1)
    )
    assert result.rows == 2 and result.after == DAY1 + timedelta(hours=1)


# --- Empty range ------------------------------------------------------------------------------


async def test_an_empty_range_publishes_a_manifest_and_no_data_file(exporter: Exporter) -> None:
    result: ExportResult = await exporter.run("empty", "dead_letters", "csv")

    assert result.rows == 0 and result.files == 0 and result.bytes == 0
    manifest = manifest_at(result.manifest_uri)
    assert manifest["files"] == [] and manifest["rows"] == 0
    assert [c["name"] for c in manifest["schema"]][:2] == ["id", "workflow_id"]
    assert files_under(exporter.root) == [f"dead_letters/_manifests/{result.run_id}.json"]
    [run] = await exporter.runs("empty")
    assert run.status == "completed" and run.rows == 0 and run.files == 0
    assert await exporter.watermark("empty") == result.until  # the empty window was checked


# --- CSV and XML ------------------------------------------------------------------------------


async def test_csv_has_a_header_and_every_row(exporter: Exporter) -> None:
    identity = new_identity()
    first = await add_order(
        exporter.sessions,
        at=DAY1,
        items=[add_item(identity), add_item(new_identity(), item_id="2")],
    )
    second = await add_order(exporter.sessions, at=DAY2, state="failed")

    result: ExportResult = await exporter.run("orders-csv", "orders", "csv")

    manifest = manifest_at(result.manifest_uri)
    check_manifest_against_files(manifest, exporter.root)
    assert all(f["path"].endswith(".csv") for f in manifest["files"])
    as_text = pa_csv.ConvertOptions(
        column_types={"item_id": pa.string(), "external_id": pa.string()}
    )
    tables = [
        pa_csv.read_csv(exporter.root / f["path"], convert_options=as_text)
        for f in manifest["files"]
    ]
    table = pa.concat_tables(tables)
    assert table.column_names[:3] == ["order_id", "external_id", "state"]
    columns = [table.column(n).to_pylist() for n in ("order_id", "item_id", "state")]
    rows = sorted(zip(*columns, strict=True))
    assert rows == sorted(
        [(first.id, "1", "completed"), (first.id, "2", "completed"), (second.id, "1", "failed")]
    )
    header = (exporter.root / manifest["files"][0]["path"]).read_text().splitlines()[0]
    assert header.startswith('"order_id","external_id","state"')


async def test_xml_files_validate_against_the_xsd_and_carry_every_value(
    exporter: Exporter,
) -> None:
    await add_dead_letter(exporter.sessions, at=DAY1, last_error="HTTP 503 \x07<busy> & gone")
    decided = await add_dead_letter(
        exporter.sessions,
        at=DAY1 + timedelta(hours=1),
        status="resolved",
        decision="retry",
        decided_by="noc-jane",
        decided_at=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
        closed_at=datetime(2026, 3, 2, 8, 1, tzinfo=UTC),
    )

    result: ExportResult = await exporter.run("letters-xml", "dead_letters", "xml")

    manifest = manifest_at(result.manifest_uri)
    check_manifest_against_files(manifest, exporter.root)
    schema = etree.XMLSchema(etree.parse(str(EXPORT_XSD)))
    ns = {"x": "urn:telecom-hub:export:1"}
    seen: dict[str, dict[str, str]] = {}
    for entry in manifest["files"]:
        document = etree.parse(str(exporter.root / entry["path"]))
        schema.assertValid(document)  # the whole document, the standard way
        root = document.getroot()
        assert root.get("dataset") == "dead_letters" and root.get("runId") == result.run_id
        assert root.get("partition") == entry["partition"]["date"]
        columns = {c.get("name"): c.get("type") for c in root.iterfind("x:columns/x:column", ns)}
        assert columns["compensation"] == "boolean" and columns["attempts"] == "integer"
        assert columns["parked_at"] == "timestamp"
        for row in root.iterfind("x:row", ns):
            fields = {f.get("name"): f.text or "" for f in row.iterfind("x:field", ns)}
            seen[fields["id"]] = fields
    assert len(seen) == 2
    # A decided letter counts from its last change (closed), so it lands on day 2.
    letter = seen[decided.id]
    assert letter["changed_at"] == "2026-03-02T08:01:00Z" and letter["decided_by"] == "noc-jane"
    assert letter["compensation"] == "false" and letter["attempts"] == "5"
    assert "decision_reason" not in letter  # null: no field
    parked = next(v for k, v in seen.items() if k != decided.id)
    assert parked["last_error"] == "HTTP 503 \ufffd<busy> & gone"  # no XML-illegal character
    dates = sorted(f["partition"]["date"] for f in manifest["files"])
    assert dates == ["2026-03-01", "2026-03-02"]


# --- Atomicity --------------------------------------------------------------------------------


class _FailingWriter(ExportWriter):
    fail_after_batches = 2

    def write(self, partition: date, batch: pa.RecordBatch) -> None:
        if self.fail_after_batches <= 0:
            raise OSError(28, "No space left on device")
        self.fail_after_batches -= 1
        super().write(partition, batch)


class _FailingDestination(Destination):
    def writer(self, **kwargs: Any) -> ExportWriter:
        return _FailingWriter(self, **kwargs)


class FilesThatFailMidWrite(Files):
    """A disk that fills up after two batches of every attempt."""

    def __init__(self) -> None:
        self.enabled = False

    def destination(self, uri: str) -> Destination:
        return _FailingDestination(uri) if self.enabled else Destination(uri)


@pytest.mark.parametrize("files", [FilesThatFailMidWrite()])
async def test_a_failure_mid_write_publishes_nothing_and_keeps_the_watermark(
    exporter: Exporter, files: FilesThatFailMidWrite
) -> None:
    await add_state_changes(exporter.sessions, [DAY1, DAY2])
    first: ExportResult = await exporter.run("atomic", "order_state_changes")
    published_before = files_under(exporter.root)
    later = utcnow() + timedelta(milliseconds=1)
    await add_state_changes(
        exporter.sessions, [later + timedelta(microseconds=i) for i in range(12)]
    )

    files.enabled = True
    with pytest.raises(WorkflowFailureError):
        await exporter.run("atomic", "order_state_changes")

    # Both attempts wrote two batches into staging and failed: nothing reached the
    # destination, staging is clean, the watermark is where the first run left it.
    assert files_under(exporter.root) == published_before
    assert await exporter.watermark("atomic") == first.until
    runs = await exporter.runs("atomic")
    assert [r.status for r in runs] == ["completed", "failed"]
    assert "No space left on device" in (runs[1].error_message or "")
    assert runs[1].manifest_uri is None and runs[1].rows == 0

    files.enabled = False
    third: ExportResult = await exporter.run("atomic", "order_state_changes")
    assert third.rows == 12 and third.after == first.until  # nothing was lost


# --- Destinations the worker refuses -------------------------------------------------------


@pytest.mark.parametrize(
    "destination",
    [
        "file://{root}/%2e%2e/elsewhere",
        "file://{root}/%2E%2E/elsewhere",
        "file://{root}/..%2felsewhere",
        "file://{root}/%252e%252e/elsewhere",
        "file://{root}/link",
        "file://{root}/link/deeper",
    ],
)
async def test_an_old_schedule_pointing_outside_the_roots_fails_once_and_writes_nothing(
    exporter: Exporter, tmp_path: Path, destination: str
) -> None:
    # As a schedule created before the check (or a symlink created after it) would run:
    # the workflow's input goes straight to the worker, no API in between.
    await add_state_changes(exporter.sessions, [DAY1])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    exporter.root.mkdir(parents=True)
    (exporter.root / "link").symlink_to(elsewhere)
    workflow_id = f"export-outside-{uuid.uuid4().hex[:6]}"
    handle = await exporter.client.start_workflow(
        ExportWorkflow.run,
        ExportInput(
            export_id="outside",
            dataset="order_state_changes",
            format="parquet",
            destination=destination.format(root=exporter.root),
        ),
        id=workflow_id,
        task_queue=exporter.settings.task_queue,
        execution_timeout=timedelta(seconds=60),
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()

    assert files_under(elsewhere) == []
    assert not [p for p in files_under(tmp_path) if "order_state_changes" in p]
    [run] = await exporter.runs("outside")
    assert run.status == "failed" and "destination: " in (run.error_message or "")
    assert await exporter.watermark("outside") is None
    # Refused for good: one attempt of the write, a non-retryable failure, no retry loop.
    attempts = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_started_event_attributes"):
            attempts.append(event.activity_task_started_event_attributes.attempt)
        if event.HasField("activity_task_failed_event_attributes"):
            failure = event.activity_task_failed_event_attributes.failure
            assert failure.application_failure_info.non_retryable, failure
    assert attempts and max(attempts) == 1


# --- Reconciliation and inventory datasets ----------------------------------------------------


async def test_discrepancies_are_copied_through_by_period_with_the_run_id(
    exporter: Exporter, tmp_path: Path
) -> None:
    # Whatever the reconciliation writes is copied through: here a small file of our own.
    source = tmp_path / "recon" / "discrepancies.parquet"
    source.parent.mkdir()
    written = pa.table(
        {
            "record_id": ["pgw1-17", "pgw1-18", "pgw2-3", "pgw2-4", "pgw2-5"],
            "category": ["missing_in_billing", "duplicate", "rating_mismatch", "x", "y"],
            "revenue_impact": pa.array(
                [Decimal("1.2500"), Decimal("0"), Decimal("-0.5000"), None, Decimal("3")],
                type=pa.decimal128(18, 4),
            ),
            "volume": pa.array([10, 20, None, 40, 50], type=pa.int64()),
        }
    )
    pq.write_table(written, source, row_group_size=2)
    period = datetime(2026, 2, 14, tzinfo=UTC)
    run = await add_reconciliation(
        exporter.sessions,
        period_start=period,
        period_end=period + timedelta(days=1),
        finished_at=datetime(2026, 2, 15, 3, 0, tzinfo=UTC),
        discrepancy_uri=str(source),
        categories={"missing_in_billing": (1, Decimal("1.25"))},
    )
    # Not copied: a run still going, and one that failed.
    for status in ("running", "failed"):
        await add_reconciliation(
            exporter.sessions,
            period_start=period,
            period_end=period + timedelta(days=1),
            finished_at=datetime(2026, 2, 15, 4, 0, tzinfo=UTC),
            discrepancy_uri=str(source),
            categories={},
            status=status,
        )

    result: ExportResult = await exporter.run("disc", "reconciliation_discrepancies")

    manifest = manifest_at(result.manifest_uri)
    check_manifest_against_files(manifest, exporter.root)
    assert {f["partition"]["date"] for f in manifest["files"]} == {"2026-02-14"}
    assert [c["name"] for c in manifest["schema"]] == [
        "reconciliation_run_id", "record_id", "category", "revenue_impact", "volume"
    ]  # fmt: skip
    copied = pa.concat_tables(pq.read_table(exporter.root / f["path"]) for f in manifest["files"])
    assert copied.column("reconciliation_run_id").to_pylist() == [run.id] * 5
    assert copied.drop(["reconciliation_run_id"]).equals(written)


async def test_summaries_have_a_row_per_run_and_category(exporter: Exporter) -> None:
    period = datetime(2026, 2, 14, tzinfo=UTC)
    run = await add_reconciliation(
        exporter.sessions,
        period_start=period,
        period_end=period + timedelta(days=1),
        finished_at=datetime(2026, 2, 15, 3, 0, tzinfo=UTC),
        discrepancy_uri=None,
        categories={
            "missing_in_billing": (3, Decimal("12.3400")),
            "duplicate": (1, Decimal("-2.0000")),
        },
    )

    result: ExportResult = await exporter.run("sums", "reconciliation_summaries", "csv")

    manifest = manifest_at(result.manifest_uri)
    [entry] = manifest["files"]
    assert entry["partition"] == {"date": "2026-02-14"}
    amounts = ("category_revenue_impact", "leakage_amount")
    as_text = pa_csv.ConvertOptions(column_types=dict.fromkeys(amounts, pa.string()))
    table = pa_csv.read_csv(exporter.root / entry["path"], convert_options=as_text)
    rows = sorted(
        zip(
            table.column("run_id").to_pylist(),
            table.column("category").to_pylist(),
            table.column("category_count").to_pylist(),
            table.column("category_revenue_impact").to_pylist(),
            strict=True,
        )
    )
    assert rows == [
        (run.id, "duplicate", 1, "-2.0000"),
        (run.id, "missing_in_billing", 3, "12.3400"),
    ]
    assert set(table.column("leakage_amount").to_pylist()) == {"12.3400"}


async def test_the_inventory_follows_completed_orders_and_carries_no_key(
    exporter: Exporter,
) -> None:
    kept, dropped, failed = new_identity(), new_identity(), new_identity()
    await add_order(exporter.sessions, at=DAY1, identity=kept, items=[add_item(kept)])
    await add_order(exporter.sessions, at=DAY1, identity=dropped, items=[add_item(dropped)])
    await add_order(
        exporter.sessions,
        at=DAY2,
        identity=dropped,
        items=[item(dropped, "delete")],
    )
    await add_order(exporter.sessions, at=DAY2, identity=failed, state="failed")
    await add_order(
        exporter.sessions,
        at=DAY3,
        identity=kept,
        items=[item(kept, "modify", plan="UNLIMITED-5G", qci=8)],
    )

    result: ExportResult = await exporter.run("inventory", "subscriber_inventory")

    manifest = manifest_at(result.manifest_uri)
    table = pa.concat_tables(pq.read_table(exporter.root / f["path"]) for f in manifest["files"])
    assert not {"ki", "op", "opc"} & set(table.column_names)
    rows = table.to_pylist()
    assert all("***" not in str(value) for row in rows for value in row.values())
    history = {
        imsi: [
            (r["status"], r["plan"], r["qci"], r["action"])
            for r in sorted(rows, key=lambda r: r["changed_at"])
            if r["imsi"] == imsi
        ]
        for imsi in (kept["imsi"], dropped["imsi"], failed["imsi"])
    }
    assert history[kept["imsi"]] == [
        ("active", "STANDARD-5G", 9, "add"),
        ("active", "UNLIMITED-5G", 8, "modify"),
    ]
    assert history[dropped["imsi"]] == [
        ("active", "STANDARD-5G", 9, "add"),
        ("terminated", None, None, "delete"),
    ]
    assert history[failed["imsi"]] == []  # nothing was provisioned
    first = next(r for r in rows if r["imsi"] == kept["imsi"])
    assert first["msisdn"] == kept["msisdn"] and first["customer_id"] == kept["customer"]
    assert first["ambr_downlink"] == 300_000_000 and first["service_specification"] == "mobile-4g5g"
    assert {f["partition"]["date"] for f in manifest["files"]} == {
        "2026-03-01",
        "2026-03-02",
        "2026-03-03",
    }


async def test_submitted_report_versions_are_exported_with_their_links(
    exporter: Exporter,
) -> None:
    first = await add_regulatory_report(exporter.sessions, at=DAY1, status="superseded")
    second = await add_regulatory_report(
        exporter.sessions, at=DAY2, version=2, supersedes=first.receipt_id
    )
    # Rejected by the approver: never reached the regulator, so no submission to export.
    await add_regulatory_report(
        exporter.sessions, at=DAY2, version=3, status="rejected", receipt_id=None
    )

    result: ExportResult = await exporter.run("submissions", "regulatory_submissions")

    manifest = manifest_at(result.manifest_uri)
    assert {f["partition"]["date"] for f in manifest["files"]} == {
        DAY1.date().isoformat(),
        DAY2.date().isoformat(),
    }
    table = pa.concat_tables(pq.read_table(exporter.root / f["path"]) for f in manifest["files"])
    rows = {row["version"]: row for row in table.to_pylist()}
    assert set(rows) == {1, 2}
    assert rows[1]["superseded_by"] == second.receipt_id and rows[1]["supersedes"] is None
    assert rows[2]["supersedes"] == first.receipt_id and rows[2]["superseded_by"] is None
    assert rows[2]["document_sha256"] == second.document_sha256
    assert rows[2]["document_uri"] == second.document_uri
    assert (rows[2]["status"], rows[2]["verdict"]) == ("accepted", "accepted")

    # Superseding changes version 2 again: the next run exports it once more, in its new state.
    async with exporter.sessions() as session:
        stored = await session.get(RegulatoryReport, second.id)
        assert stored is not None
        # After the first run's watermark, as the activity's utcnow() would be.
        stored.status, stored.updated_at = "superseded", utcnow()
        await session.commit()
    again: ExportResult = await exporter.run("submissions", "regulatory_submissions")
    table = pa.concat_tables(
        pq.read_table(exporter.root / f["path"]) for f in manifest_at(again.manifest_uri)["files"]
    )
    assert table.select(["version", "status"]).to_pylist() == [
        {"version": 2, "status": "superseded"}
    ]
