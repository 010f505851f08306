"""Two worker processes on two "hosts" share one reconciliation through an S3 workspace.

Separate processes, as in production (``bench/stack.py``): the Temporal dev server, the
simulators, the API and two ``python worker.py``, against a real S3 server on loopback (moto's
server mode). Each worker has a folder of its own, its working directory, ``HUB_DATA_DIR`` and
``TMPDIR``, which the other never sees: what they share is the hub database (a file here,
PostgreSQL in production), Temporal and the S3 workspace. The CDRs are on S3 too (a source
root), billing's rated usage is billing's usage export, copied into the workspace by whichever
worker fetches it. One slot per worker and several in flight: both workers run splits, so
every partition reads splits the other worker wrote.

The run must find what a local-folder run of the same data finds (the suite's in-process
``hub``), row for row, and leave only its result, on S3.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from temporalio.api.enums.v1 import EventType

from bench.stack import BenchStack
from tests.conftest import Hub, eventually
from tests.reconciliation.runs import END, RUNS, START, finished, make_data, start, truth
from tests.reconciliation.s3 import ACCESS_KEY, SECRET_KEY, S3Server, s3_server

WORKSPACE_BUCKET = "hub-workspace"
DROP_BUCKET = "mediation-drop"
FILES = 6
PARTITIONS = 4


@pytest.fixture
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        server.bucket(WORKSPACE_BUCKET)
        server.bucket(DROP_BUCKET)
        yield server


@pytest.fixture
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    make_data(folder, records=FILES * 400, records_per_file=400)
    return folder


def host(tmp_path: Path, name: str) -> Path:
    """A worker's own folder: its working directory, data and temporary files."""
    folder = tmp_path / name
    (folder / "tmp").mkdir(parents=True)
    return folder


@pytest.fixture
async def stack(tmp_path: Path, s3: S3Server, data: Path) -> AsyncIterator[BenchStack]:
    endpoint = f"{s3.host}:{s3.port}"
    s3.upload(data / "network", f"{DROP_BUCKET}/cdr/network")
    host_a = host(tmp_path, "host-a")
    stack = BenchStack(
        host_a,  # the first worker's (and the API's) folder
        latency_ms=0,
        simulator_args=["--billing-export-dir", str(data / "billing")],
        extra_env={
            "HUB_RECONCILIATION_WORKSPACE": f"s3://{WORKSPACE_BUCKET}/runs",
            "HUB_RECONCILIATION_S3_ENDPOINT": s3.endpoint,
            "HUB_RECONCILIATION_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "HUB_RECONCILIATION_S3_SECRET_ACCESS_KEY": SECRET_KEY,
            # The CDRs' bucket is read as any source: keys from the AWS environment.
            "HUB_RECONCILIATION_SOURCE_ROOTS": (
                f"s3://{DROP_BUCKET}/cdr?endpoint_override={endpoint}&scheme=http&region=us-east-1"
            ),
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_EC2_METADATA_DISABLED": "true",
            "TMPDIR": str(host_a / "tmp"),
            "HUB_RECONCILIATION_THREADS": "1",  # one data activity at a time per worker
            "HUB_RECONCILIATION_PARALLELISM": "4",
            "HUB_RECONCILIATION_TASK_BYTES": "1",  # a split activity per file
        },
    )
    try:
        await stack.start()
        host_b = host(tmp_path, "host-b")
        await stack.add_worker(
            "worker-b",
            cwd=host_b,
            env={"HUB_DATA_DIR": str(host_b), "TMPDIR": str(host_b / "tmp")},
        )
        yield stack
    finally:
        stack.stop()


def rows(parquet: bytes) -> pa.Table:
    table = pq.read_table(io.BytesIO(parquet))
    return table.sort_by([("record_id", "ascending"), ("category", "ascending")])


async def identities(stack: BenchStack, workflow_id: str) -> dict[str, set[str]]:
    """Per activity type, the identities of the workers that started it (from the history)."""
    client = await stack.client()
    scheduled: dict[int, str] = {}
    found: dict[str, set[str]] = {}
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            found.setdefault(scheduled[started.scheduled_event_id], set()).add(started.identity)
    return found


SUMMARY = ("networkRecords", "billingRecords", "matchedRecords", "discrepancyCount")
MONEY = ("billedRevenue", "leakageAmount", "overbilledAmount", "leakagePct")


async def test_two_workers_without_a_shared_folder_share_a_run_through_s3(
    stack: BenchStack,
    s3: S3Server,
    data: Path,
    tmp_path: Path,
    hub: Hub,
    billing_export_dir: Path,
) -> None:
    async with httpx.AsyncClient(
        base_url=stack.api_url, headers={"X-API-Key": stack.api_key}, timeout=30
    ) as api:
        reply = await api.post(
            RUNS,
            json={
                "periodStart": START.isoformat(),
                "periodEnd": END.isoformat(),
                "networkSource": f"s3://{DROP_BUCKET}/cdr/network",
                "billingSource": "billing-system",
                "partitions": PARTITIONS,
                "leakageThresholdPct": 100,
            },
        )
        assert reply.status_code == 201, reply.text
        run_id = reply.json()["id"]

        async def done() -> dict[str, Any] | None:
            body = (await api.get(f"{RUNS}/{run_id}")).json()
            return body if body["status"] != "running" else None

        run = await eventually(done, timeout=90)
        assert run["status"] == "completed", run["errorMessage"]
        # The API reads the result from S3 too.
        download = await api.get(f"{RUNS}/{run_id}/discrepancies/download")
        assert download.status_code == 200, download.text
        on_s3 = rows(download.content)
        page = await api.get(f"{RUNS}/{run_id}/discrepancies", params={"limit": 10_000})
        assert int(page.headers["X-Total-Count"]) == on_s3.num_rows

    pairs = set(zip(on_s3["record_id"].to_pylist(), on_s3["category"].to_pylist(), strict=True))
    assert pairs == truth(data)

    # Both workers ran the run's data activities; each split one at least, so every partition
    # read splits written on the other host.
    pids = {str(stack.children[name].pid) for name in ("worker", "worker-b")}
    ran = await identities(stack, run["workflowId"])
    split_by = {identity.split("@")[0] for identity in ran["reconciliation.split"]}
    assert split_by == pids, ran
    data_work = set().union(
        *(ids for name, ids in ran.items() if name.startswith("reconciliation."))
    )
    assert {identity.split("@")[0] for identity in data_work} == pids

    # Only the result stays, on S3; neither host has a workspace on its own disk.
    assert s3.keys(f"{WORKSPACE_BUCKET}/runs") == [
        f"{WORKSPACE_BUCKET}/runs/{run_id}/discrepancies.parquet"
    ]
    for name in ("host-a", "host-b"):
        assert not (tmp_path / name / "reconciliation").exists()

    # The same data through a local folder (the suite's in-process hub) finds the same.
    shutil.rmtree(billing_export_dir)
    shutil.copytree(data / "billing", billing_export_dir)
    local = await start(
        hub,
        networkSource=str(data / "network"),
        partitions=PARTITIONS,
        leakageThresholdPct=100,
    )
    alone = await finished(hub, local["id"])
    assert alone["status"] == "completed", alone["errorMessage"]
    local_download = await hub.api.get(f"{RUNS}/{local['id']}/discrepancies/download")
    assert rows(local_download.content).equals(on_s3)
    for field in (*SUMMARY, *MONEY, "categories"):
        assert run[field] == alone[field], field
