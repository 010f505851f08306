"""Reconciliation's data activities on their own (Temporal's ActivityEnvironment)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
from temporalio.testing import ActivityEnvironment

from activities.reconciliation import FinalizeInput, ReconciliationActivities, Workspace
from adapters.billing_export import BillingExportClient
from hub.reconciliation import engine
from hub.settings import Settings


def activities(tmp_path: Path) -> tuple[ReconciliationActivities, Workspace]:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    acts = ReconciliationActivities(settings, BillingExportClient("http://127.0.0.1:9"))
    return acts, Workspace.of(settings, "run-1")


def test_finalize_twice_answers_the_published_result(tmp_path: Path) -> None:
    acts, workspace = activities(tmp_path)
    row = {
        "record_id": "r1",
        "category": "unbilled",
        "event_time": datetime(2026, 11, 1, tzinfo=UTC),
        "revenue_impact": 0.5,
    }
    for partition in range(2):
        table = engine.DISCREPANCY_SCHEMA.empty_table().from_pylist(
            [row] * (partition + 1), schema=engine.DISCREPANCY_SCHEMA
        )
        engine.write_parquet(table, workspace.part(partition))
    env = ActivityEnvironment()
    first = env.run(acts.finalize, FinalizeInput("run-1", 2))
    # A retry, as after a crash between the rename and the report: the parts are gone.
    again = env.run(acts.finalize, FinalizeInput("run-1", 2))
    assert first == again and first.rows == 3
    assert pq.read_table(first.uri).num_rows == 3
    assert not workspace.work.exists()
    assert sorted(p.name for p in workspace.root.iterdir()) == ["discrepancies.parquet"]
