"""The export activities against SQLite and the machine's real PostgreSQL (the ``sessions``
fixture of tests/db): each dataset's query (a server-side cursor on PostgreSQL), the run
record, and the watermark's compare-and-set."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.exports import (
    BeginExportInput,
    ExportActivities,
    FinishExportInput,
    WriteExportInput,
)
from adapters.files import Files
from hub.datasets import DATASETS
from hub.models import ExportRun, ExportWatermark
from hub.settings import Settings
from tests.export_data import (
    add_dead_letter,
    add_order,
    add_reconciliation,
    add_regulatory_report,
    add_state_changes,
    manifest_at,
)

AT = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def activities_for(sessions: Any, tmp_path: Path) -> ExportActivities:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path,
        export_settle_lag=timedelta(0),
    )
    return ExportActivities(sessions, Files(), settings)


async def export_once(acts: ExportActivities, dataset: str, export_id: str) -> dict[str, Any]:
    """begin, write and finish, as the workflow runs them; answers the manifest."""
    env = ActivityEnvironment()
    heartbeats: list[Any] = []
    env.on_heartbeat = lambda *details: heartbeats.append(details)
    run_id = uuid.uuid4().hex[:12]
    destination = f"file://{acts.settings.data_dir / 'exports'}"
    begun = await env.run(
        acts.begin,
        BeginExportInput(
            run_id=run_id,
            export_id=export_id,
            workflow_id="wf",
            dataset=dataset,
            format="parquet",
            destination=destination,
        ),
    )
    written = await env.run(
        acts.write,
        WriteExportInput(
            run_id=run_id,
            export_id=export_id,
            dataset=dataset,
            format="parquet",
            destination=destination,
            after=begun.after,
            until=begun.until,
            batch_size=2,
            row_group_rows=100,
            max_rows_per_file=1000,
        ),
    )
    await env.run(
        acts.finish,
        FinishExportInput(
            run_id=run_id,
            export_id=export_id,
            dataset=dataset,
            after=begun.after,
            until=begun.until,
            rows=written.rows,
            files=written.files,
            bytes=written.bytes,
            manifest_uri=written.manifest_uri,
        ),
    )
    manifest = manifest_at(written.manifest_uri)
    # One heartbeat per batch of two rows read, with the rows so far.
    assert len(heartbeats) == math.ceil(written.rows / 2)
    if heartbeats:
        assert heartbeats[-1][0]["rows"] == written.rows
    return manifest


def read_rows(root: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    if not manifest["files"]:
        return []
    return pa.concat_tables(
        pq.read_table(root / entry["path"]) for entry in manifest["files"]
    ).to_pylist()


async def test_every_dataset_exports_from_this_database(sessions, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    acts = activities_for(sessions, tmp_path)
    root = tmp_path / "exports"
    await add_state_changes(sessions, [AT, AT + timedelta(days=1), AT + timedelta(days=1)])
    await add_order(sessions, at=AT)
    await add_dead_letter(sessions, at=AT, closed_at=AT + timedelta(hours=2), status="resolved")
    await add_reconciliation(
        sessions,
        period_start=AT,
        period_end=AT + timedelta(days=1),
        finished_at=AT + timedelta(days=1),
        discrepancy_uri=None,
        categories={"duplicate": (2, Decimal("-1.5000"))},
    )
    first = await add_regulatory_report(sessions, at=AT, status="superseded")
    second = await add_regulatory_report(sessions, at=AT, version=2, supersedes=first.receipt_id)

    expected = {
        "order_state_changes": 3,
        "orders": 2,  # the state changes' order and the completed one, one item each
        "dead_letters": 1,
        "reconciliation_summaries": 1,
        "reconciliation_discrepancies": 0,
        "subscriber_inventory": 1,
        "inventory_differences": 0,
        "regulatory_submissions": 2,
    }
    assert set(expected) == set(DATASETS)
    for dataset, count in expected.items():
        manifest = await export_once(acts, dataset, f"db-{dataset}")
        rows = read_rows(root, manifest)
        assert manifest["rows"] == len(rows) == count, dataset
    letters = read_rows(root, await export_once(acts, "dead_letters", "db-letters-2"))
    assert letters[0]["changed_at"] == AT + timedelta(hours=2)
    summary = read_rows(root, await export_once(acts, "reconciliation_summaries", "db-sum-2"))
    assert summary[0]["category_revenue_impact"] == Decimal("-1.5000")
    inventory = read_rows(root, await export_once(acts, "subscriber_inventory", "db-inv-2"))
    assert inventory[0]["status"] == "active" and inventory[0]["qci"] == 9
    submissions = read_rows(root, await export_once(acts, "regulatory_submissions", "db-reg-2"))
    links = {row["version"]: (row["supersedes"], row["superseded_by"]) for row in submissions}
    assert links == {1: (None, second.receipt_id), 2: (first.receipt_id, None)}


async def test_the_watermark_moves_once_per_window(sessions, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    acts = activities_for(sessions, tmp_path)
    await add_state_changes(sessions, [AT])
    first = await export_once(acts, "order_state_changes", "db-mark")
    assert first["rows"] == 1
    second = await export_once(acts, "order_state_changes", "db-mark")
    assert second["rows"] == 0 and second["watermark"]["after"] == first["watermark"]["until"]

    async with sessions() as session:
        mark = await session.get(ExportWatermark, "db-mark")
        assert mark is not None
        run = ExportRun(
            id="stale",
            export_id="db-mark",
            workflow_id="wf",
            dataset="order_state_changes",
            format="parquet",
            destination="file:///x",
        )
        session.add(run)
        await session.commit()
    # A run that began before the watermark moved may not move it again.
    with pytest.raises(ApplicationError, match="watermark moved") as refused:
        await ActivityEnvironment().run(
            acts.finish,
            FinishExportInput(
                run_id="stale",
                export_id="db-mark",
                dataset="order_state_changes",
                after=AT - timedelta(days=1),
                until=AT,
                rows=0,
                files=0,
                bytes=0,
                manifest_uri="file:///x",
            ),
        )
    assert refused.value.non_retryable
    async with sessions() as session:
        again = await session.get(ExportWatermark, "db-mark")
        assert again is not None and again.watermark == mark.watermark

    # And an export id keeps its dataset.
    with pytest.raises(ApplicationError, match="watermark for dataset"):
        await export_once(acts, "orders", "db-mark")
