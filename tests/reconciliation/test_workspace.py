"""The reconciliation workspace on S3 (moto's server on loopback) and on the local disk.

The data activities are run one by one (Temporal's ActivityEnvironment), in turn on two
activity objects whose local folders differ, as two workers on two hosts would: with an S3
workspace they must find each other's splits and parts there, and answer what a local-folder
run answers. The two-process run through Temporal is ``test_recon_s3.py``. Also: what else reads the
workspace (the export of discrepancies, a regulatory report's copy of billing's export).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from temporalio.testing import ActivityEnvironment

from activities.reconciliation import (
    FinalizeInput,
    ListSourcesInput,
    ReconcilePartitionInput,
    ReconciliationActivities,
    SplitInput,
    Workspace,
)
from activities.reporting import ReportingActivities
from adapters.billing_export import BillingExportClient
from adapters.files import Files
from hub.errors import PermanentError
from hub.paths import parse_location
from hub.reconciliation.engine import PartitionSummary
from hub.reconciliation.workspace import LocalStore, S3Store, Store, check_key, store_of
from hub.settings import Settings
from hub.usage import Tariff
from simulators.billing import PLANS
from tests.reconciliation.runs import END, START, make_data
from tests.reconciliation.s3 import ACCESS_KEY, SECRET_KEY, S3Server, s3_server

PARTITIONS = 4
TARIFFS = [
    Tariff(
        code,
        float(plan.data_price_per_mb),
        float(plan.voice_price_per_minute),
        None if plan.sms_price_per_message is None else float(plan.sms_price_per_message),
    )
    for code, plan in PLANS.items()
]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = f"ws-{uuid.uuid4().hex[:12]}"
    s3.bucket(name)
    return name


def settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[call-arg]


def s3_settings(tmp_path: Path, s3: S3Server, bucket: str, **values: Any) -> Settings:
    return settings(
        tmp_path,
        reconciliation_workspace=f"s3://{bucket}/runs",
        reconciliation_s3_endpoint=s3.endpoint,
        reconciliation_s3_access_key_id=ACCESS_KEY,
        reconciliation_s3_secret_access_key=SECRET_KEY,
        **values,
    )


# --- Keys and locations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["", "/run/x", "run/../x", "..", "run//x", "run/./x", "run\\x", "run/%2e%2e", "a\x00b"]
)
def test_a_key_that_could_leave_the_root_is_refused(key: str) -> None:
    with pytest.raises(PermanentError, match="workspace key"):
        check_key(key)


def test_only_uris_under_the_prefix_are_the_stores(s3: S3Server, bucket: str) -> None:
    store = S3Store(parse_location(f"s3://{bucket}/runs"), s3.filesystem())
    assert store.uri("r1/discrepancies.parquet") == f"s3://{bucket}/runs/r1/discrepancies.parquet"
    assert store.locate(f"s3://{bucket}/runs/r1/x.parquet") == (
        store.filesystem,
        f"{bucket}/runs/r1/x.parquet",
    )
    for elsewhere in (
        f"s3://{bucket}/runs-evil/r1/x.parquet",  # a sibling with the prefix as its start
        f"s3://{bucket}/other/x.parquet",
        f"s3://other-{bucket}/runs/x.parquet",
        f"s3://{bucket}/runs/%2e%2e/other/x",  # decoded, '..': refused, not the store's
        f"s3://{bucket}/runs/r1/x?endpoint_override=127.0.0.1:1",  # another endpoint
        f"gs://{bucket}/runs/r1/x",
        f"/{bucket}/runs/r1/x",
    ):
        assert store.locate(elsewhere) is None, elsewhere
    with pytest.raises(PermanentError):
        store.open_input("r1/../../other/x")


def test_the_local_store_refuses_a_run_folder_that_links_out(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "runs")
    (tmp_path / "runs").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "runs" / "r1").symlink_to(tmp_path / "outside")
    with pytest.raises(PermanentError, match="outside"):
        store.write_text("r1/x.json", "{}")
    assert list((tmp_path / "outside").iterdir()) == []


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_file_is_there_whole_or_not_at_all(
    kind: str, tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    store: Store = (
        LocalStore(tmp_path / "runs")
        if kind == "local"
        else S3Store(parse_location(f"s3://{bucket}/runs"), s3.filesystem())
    )
    store.write_text("r1/work/a.json", '{"a": 1}')
    with pytest.raises(RuntimeError), store.open_output("r1/work/b.arrow") as sink:
        sink.write(b"half of it")
        raise RuntimeError("the disk filled up")
    assert store.exists("r1/work/a.json") and not store.exists("r1/work/b.arrow")
    assert [f.key for f in store.list("r1/work")] == ["r1/work/a.json"]
    assert store.read_text("r1/work/a.json") == '{"a": 1}'
    store.remove("r1/work")
    assert store.list("r1/work") == [] and store.list("r1/absent") == []
    with pytest.raises(FileNotFoundError):
        store.open_input("r1/work/a.json")


# --- Settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "workspace",
    [
        "s3://bucket",  # a prefix of its own, not the bucket's root
        "s3://bucket/runs/../other",
        "s3://bucket/runs?endpoint_override=127.0.0.1:9000",
        "s3://key:secret@bucket/runs",
        "/srv/reconciliation",
        "gs://bucket/runs",
    ],
)
def test_a_workspace_that_is_not_an_s3_prefix_is_refused(tmp_path: Path, workspace: str) -> None:
    with pytest.raises(ValidationError, match="HUB_RECONCILIATION_WORKSPACE") as info:
        settings(tmp_path, reconciliation_workspace=workspace)
    assert "secret" not in str(info.value).replace("HUB_RECONCILIATION", "")


def test_the_s3_keys_are_secrets(tmp_path: Path, s3: S3Server, bucket: str) -> None:
    hub = s3_settings(tmp_path, s3, bucket)
    assert SECRET_KEY not in repr(hub) and SECRET_KEY not in str(hub.model_dump())
    with pytest.raises(ValidationError, match="HUB_RECONCILIATION_S3_ENDPOINT"):
        settings(tmp_path, reconciliation_s3_endpoint="http://key:secret@127.0.0.1:9000")
    assert isinstance(store_of(hub), S3Store)
    assert isinstance(store_of(settings(tmp_path)), LocalStore)


# --- A run's activities in turn on two "hosts" -----------------------------------------------


def reconcile(
    workers: list[ReconciliationActivities], run_id: str, data: Path
) -> tuple[pa.Table, PartitionSummary]:
    """The workflow's sequence of data activities, each on the next worker in turn."""
    env = ActivityEnvironment()
    turn = itertools.cycle(workers)
    listed = env.run(
        next(turn).list_sources,
        ListSourcesInput(run_id, str(data / "network"), str(data / "billing"), PARTITIONS),
    )
    tasks = {"network": listed.network_tasks, "billing": listed.billing_tasks}
    for side, count in tasks.items():
        for index in range(count):
            split = SplitInput(run_id, side, index, PARTITIONS, START, END, TARIFFS, 3600)
            env.run(next(turn).split, split)
    total = PartitionSummary()
    for partition in range(PARTITIONS):
        task = ReconcilePartitionInput(
            run_id, partition, PARTITIONS, tasks["network"], tasks["billing"], TARIFFS, START, END
        )
        total.add(env.run(next(turn).reconcile_partition, task).summary)
    final = env.run(next(turn).finalize, FinalizeInput(run_id, PARTITIONS))
    worker = next(turn)
    filesystem, path = worker.store.locate(final.uri) or (None, final.uri)
    table = pq.read_table(path, filesystem=filesystem)
    return table.sort_by([("record_id", "ascending"), ("category", "ascending")]), total


def test_two_hosts_share_a_run_through_s3_as_one_host_does_through_its_folder(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    data = tmp_path / "data"
    make_data(data, records=2_000, records_per_file=500)
    roots = {"reconciliation_source_roots": [str(data)], "reconciliation_task_bytes": 1}
    export = BillingExportClient("http://127.0.0.1:9")
    hosts = [
        ReconciliationActivities(s3_settings(tmp_path / host, s3, bucket, **roots), export)
        for host in ("host-a", "host-b")
    ]
    local = ReconciliationActivities(settings(tmp_path / "local", **roots), export)

    shared, shared_total = reconcile(hosts, "run-s3", data)
    alone, alone_total = reconcile([local], "run-local", data)

    assert shared.num_rows > 0 and shared.equals(alone)
    assert shared_total == alone_total
    # Only the result stays, on S3; neither host wrote a workspace on its own disk.
    assert s3.keys(f"{bucket}/runs") == [f"{bucket}/runs/run-s3/discrepancies.parquet"]
    assert not (tmp_path / "host-a" / "reconciliation").exists()
    assert not (tmp_path / "host-b" / "reconciliation").exists()
    assert [p.name for p in (tmp_path / "local" / "reconciliation" / "run-local").iterdir()] == [
        "discrepancies.parquet"
    ]


# --- What else reads the workspace: the exports, the regulatory report ------------------------


def test_the_export_reads_a_result_on_s3_through_the_workspace(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    store = store_of(s3_settings(tmp_path, s3, bucket))
    with store.open_output("r1/discrepancies.parquet") as sink:
        pq.write_table(pa.table({"record_id": ["a", "b", "c"]}), sink)
    uri = store.uri("r1/discrepancies.parquet")
    batches = list(Files(locate=store.locate).parquet_batches(uri, 2))
    assert [b.num_rows for b in batches] == [2, 1]


def test_a_report_reads_billings_export_from_s3_on_its_own_disk(
    tmp_path: Path, s3: S3Server, bucket: str
) -> None:
    hub = s3_settings(tmp_path, s3, bucket)
    reporting = ReportingActivities(hub)
    workspace = Workspace.of(hub, "report-1", reporting.store)
    reporting.store.write_text(f"{workspace.export}/usage/rated-1.csv", "record_id\nr1\n")
    with reporting._export_on_disk(workspace, needed=True) as folder:
        assert (folder / "usage" / "rated-1.csv").read_text() == "record_id\nr1\n"
    assert not folder.exists()
