"""Reconciliation's data activities on their own (Temporal's ActivityEnvironment)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.reconciliation import (
    FinalizeInput,
    ListSourcesInput,
    ReconciliationActivities,
    SplitInput,
    Workspace,
)
from adapters.billing_export import BillingExportClient
from hub.errors import PermanentError
from hub.reconciliation import engine
from hub.settings import Settings
from tests.reconciliation.runs import END, START, make_data


def activities(tmp_path: Path, **settings: Any) -> tuple[ReconciliationActivities, Workspace]:
    hub = Settings(_env_file=None, data_dir=tmp_path, **settings)  # type: ignore[call-arg]
    acts = ReconciliationActivities(hub, BillingExportClient("http://127.0.0.1:9"))
    return acts, Workspace.of(hub, "run-1")


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
        with workspace.store.open_output(workspace.part(partition)) as sink:
            engine.write_parquet(table, sink)
    env = ActivityEnvironment()
    first = env.run(acts.finalize, FinalizeInput("run-1", 2))
    # A retry, as after a crash between the rename and the report: the parts are gone.
    again = env.run(acts.finalize, FinalizeInput("run-1", 2))
    assert first == again and first.rows == 3
    assert pq.read_table(first.uri).num_rows == 3
    root = tmp_path / "reconciliation" / "run-1"
    assert first.uri == str(root / "discrepancies.parquet")
    assert sorted(p.name for p in root.iterdir()) == ["discrepancies.parquet"]


# --- Locations the worker refuses, whatever the API let through --------------------------------


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """``sources/`` (the allowed root) and ``secret/`` beside it, both with usage files."""
    make_data(tmp_path / "sources", records=200)
    make_data(tmp_path / "secret", records=200)
    return tmp_path / "sources"


def refused(run: Any, *args: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as info:
        ActivityEnvironment().run(run, *args)
    assert info.value.non_retryable, info.value
    return info.value


def test_list_sources_refuses_sources_outside_the_roots(sources: Path, tmp_path: Path) -> None:
    acts, _ = activities(tmp_path, reconciliation_source_roots=[str(sources)])
    (sources / "link").symlink_to(tmp_path / "secret" / "network")
    billing = str(sources / "billing")
    for network in (
        f"file://{sources}/%2e%2e/secret/network",
        f"file://{sources}/%2E%2E/secret/network",
        f"file://{sources}/..%2fsecret%2fnetwork",
        f"file://{sources}/network%2f..%2f..%2fsecret%2fnetwork",
        f"file://{sources}/link",
        str(sources / "link"),
    ):
        error = refused(acts.list_sources, ListSourcesInput("run-1", network, billing))
        assert f"network source {network!r}: " in str(error), error
        error = refused(acts.list_sources, ListSourcesInput("run-1", billing, network))
        assert f"billing source {network!r}: " in str(error), error
    assert not (tmp_path / "reconciliation" / "run-1" / "work" / "sources.json").exists()


def test_a_file_that_links_out_of_the_root_is_refused_when_listed_and_when_read(
    sources: Path, tmp_path: Path
) -> None:
    acts, _ = activities(tmp_path, reconciliation_source_roots=[str(sources)])
    network, billing = str(sources / "network"), str(sources / "billing")
    secret = sorted((tmp_path / "secret" / "network").iterdir())[0]
    planted = sources / "network" / f"x-{secret.name}"
    planted.symlink_to(secret)
    error = refused(acts.list_sources, ListSourcesInput("run-1", network, billing))
    assert "symbolic link" in str(error), error

    # Listed while it was a file; a link by the time the split reads it.
    planted.unlink()
    shutil.copy(secret, planted)
    listed = ActivityEnvironment().run(
        acts.list_sources, ListSourcesInput("run-1", network, billing, partitions=1)
    )
    planted.unlink()
    planted.symlink_to(secret)
    split = SplitInput("run-1", "network", 0, listed.partitions, START, END, [])
    assert listed.network_tasks == 1
    error = refused(acts.split, split)
    assert "symbolic link" in str(error), error


def test_a_folder_named_like_an_encoded_dot_segment_is_not_read_as_one(tmp_path: Path) -> None:
    # Inside the allowed root, a folder literally named ``%2e%2e``: its files' URIs must not
    # be decoded into ``..`` and read from beside the root.
    make_data(tmp_path / "secret", records=200)
    root = tmp_path / "sources" / "network"
    literal = root / "%2e%2e" / "%2e%2e"
    literal.mkdir(parents=True)
    for source in (tmp_path / "secret" / "network").iterdir():
        shutil.copy(source, literal / source.name)  # the decoy, inside
        shutil.copy(source, tmp_path / source.name)  # and what ``../..`` would reach
    acts, _ = activities(tmp_path, reconciliation_source_roots=[str(root)])
    error = refused(acts.list_sources, ListSourcesInput("run-1", str(root), str(root)))
    assert "%" in str(error), error


def test_a_workspace_that_links_out_of_the_reconciliation_folder_is_refused(
    sources: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    runs = settings.resolved_reconciliation_dir
    runs.mkdir(parents=True)
    (runs / "run-2").symlink_to(outside)
    with pytest.raises(PermanentError, match="outside"):
        Workspace.of(settings, "run-2")
    (runs / "run-3" / "work").parent.mkdir()
    (runs / "run-3" / "work").symlink_to(outside)
    acts, _ = activities(tmp_path)
    network, billing = str(sources / "network"), str(sources / "billing")
    for run_id in ("run-2", "run-3"):
        error = refused(acts.list_sources, ListSourcesInput(run_id, network, billing))
        assert "outside" in str(error), error
        refused(acts.finalize, FinalizeInput(run_id, 1))
    assert list(outside.iterdir()) == []
