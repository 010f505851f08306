"""Billing reconciliation end to end: API, workflow on the real dev server, worker, simulators.

The generator writes both sides with known discrepancies; the run must find exactly those.
"""

from __future__ import annotations

import io
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Replayer

from hub import search_attributes
from hub.models import ReconciliationRun
from hub.settings import Settings
from tests.conftest import Hub, Simulators, eventually, process_failure
from tests.reconciliation.runs import END, RUNS, START, finished, make_data, start, truth
from workflows.reconciliation import BillingReconciliation


async def test_a_period_from_billings_export_is_reconciled_exactly(
    hub: Hub, sims: Simulators, tmp_path: Path, billing_export_dir: Path
) -> None:
    # With SMS: priced per message at the SMS price billing's GetTariffs answers.
    manifest = make_data(tmp_path / "data", network_format="csv.gz", sms_share=0.1)
    shutil.rmtree(billing_export_dir)
    shutil.copytree(tmp_path / "data" / "billing", billing_export_dir)

    started = await start(hub, networkSource=str(tmp_path / "data" / "network"))
    assert started["status"] == "running" and started["discrepancies"] is None
    run = await finished(hub, started["id"])

    assert run["status"] == "completed", run["errorMessage"]
    assert run["networkRecords"] == manifest.network_rows
    assert run["billingRecords"] == manifest.billing_rows
    assert {c["category"]: c["count"] for c in run["categories"]} == manifest.injected
    assert run["discrepancyCount"] == sum(manifest.injected.values())
    assert run["currency"] == "EUR" and run["billedRevenue"] > 0
    # Leakage is well above the default 0.5% threshold: revenue assurance has a case.
    assert run["leakagePct"] > 0.5 and run["caseId"]
    cases = (await sims.state("crm"))["cases"]
    case = next(c for c in cases if c["id"] == run["caseId"])
    assert case["reference"] == started["id"] and case["category"] == "revenue-assurance"

    # The discrepancy file holds exactly what the generator injected, nothing else.
    download = await hub.api.get(f"{RUNS}/{started['id']}/discrepancies/download")
    assert download.status_code == 200
    table = pq.read_table(io.BytesIO(download.content))
    found = set(zip(table["record_id"].to_pylist(), table["category"].to_pylist(), strict=True))
    assert found == truth(tmp_path / "data")
    sms = await hub.api.get(
        f"{RUNS}/{started['id']}/discrepancies", params={"usageType": "sms", "limit": 10_000}
    )
    assert sms.status_code == 200 and sms.json()
    assert {row["usageType"] for row in sms.json()} == {"sms"}
    assert "rating_mismatch" in {row["category"] for row in sms.json()}
    # Bulk data stayed in files: the workspace's intermediate files are gone, the result kept.
    workspace = hub.settings.resolved_reconciliation_dir / started["id"]
    assert sorted(p.name for p in workspace.iterdir()) == ["discrepancies.parquet"]

    # The Temporal UI finds the run by process and status.
    handle = hub.client.get_workflow_handle(run["workflowId"])
    described = await handle.describe()
    attributes = described.typed_search_attributes
    assert attributes.get(search_attributes.PROCESS_KIND) == "billing-reconciliation"
    assert attributes.get(search_attributes.HUB_STATUS) == "completed"


async def test_discrepancies_are_listed_with_filters_and_as_csv(
    hub: Hub, sims: Simulators, tmp_path: Path
) -> None:
    make_data(tmp_path / "data", records=3_000)
    started = await start(
        hub,
        networkSource=str(tmp_path / "data" / "network"),
        billingSource=str(tmp_path / "data" / "billing"),
        leakageThresholdPct=100,
        partitions=4,
    )
    run = await finished(hub, started["id"])
    assert run["status"] == "completed" and run["caseId"] is None
    assert run["parameters"]["partitions"] == 4
    unbilled = next(c for c in run["categories"] if c["category"] == "unbilled")

    url = f"{RUNS}/{started['id']}/discrepancies"
    page = await hub.api.get(url, params={"category": "unbilled", "limit": 5, "offset": 2})
    assert page.status_code == 200
    assert page.headers["X-Total-Count"] == str(unbilled["count"])
    assert len(page.json()) == 5
    assert {row["category"] for row in page.json()} == {"unbilled"}
    row = page.json()[0]
    assert row["revenueImpact"] == row["charge"] > 0 and row["eventTime"].endswith("Z")
    one = await hub.api.get(url, params={"msisdn": row["msisdn"]})
    assert all(r["msisdn"] == row["msisdn"] for r in one.json()) and one.json()

    top = (await hub.api.get(f"{url}/by-msisdn", params={"limit": 3})).json()
    assert len(top) == 3 and top[0]["revenueLost"] >= top[1]["revenueLost"] >= top[2]["revenueLost"]
    mine = (await hub.api.get(url, params={"msisdn": top[0]["msisdn"], "limit": 1000})).json()
    assert top[0]["discrepancies"] == len(mine)
    assert top[0]["revenueLost"] == pytest.approx(
        sum(max(r["revenueImpact"], 0) for r in mine), abs=1e-6
    )

    csv = await hub.api.get(f"{url}/download", params={"format": "csv", "category": "unbilled"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert pacsv.read_csv(io.BytesIO(csv.content)).num_rows == unbilled["count"]

    listed = await hub.api.get(RUNS, params={"status": "completed"})
    assert started["id"] in [r["id"] for r in listed.json()]
    assert int(listed.headers["X-Total-Count"]) >= 1


async def test_a_malformed_file_fails_the_run_and_names_it(
    hub: Hub, sims: Simulators, tmp_path: Path
) -> None:
    hub.settings.reconciliation_task_bytes = 1  # a split activity per file, several in flight
    make_data(tmp_path / "data", records=4_000, records_per_file=250)
    network = tmp_path / "data" / "network"
    (network / "cdr-99999.csv").write_text("record_id,record_type\nx,data\n")
    started = await start(
        hub, networkSource=str(network), billingSource=str(tmp_path / "data" / "billing")
    )
    run = await finished(hub, started["id"])
    assert run["status"] == "failed"
    assert "cdr-99999.csv" in run["errorMessage"] and "record_opening_time" in run["errorMessage"]
    refused = await hub.api.get(f"{RUNS}/{started['id']}/discrepancies")
    assert refused.status_code == 409
    # The other splits in flight were waited for, then the work files removed: none is left.
    workspace = hub.settings.resolved_reconciliation_dir / started["id"]
    assert not (workspace / "work").exists()
    described = await hub.client.get_workflow_handle(run["workflowId"]).describe()
    assert described.typed_search_attributes.get(search_attributes.HUB_STATUS) == "failed"


async def test_the_same_id_starts_one_run(hub: Hub, sims: Simulators, tmp_path: Path) -> None:
    make_data(tmp_path / "data", records=200)
    body = {
        "id": "month-end-1",
        "networkSource": str(tmp_path / "data" / "network"),
        "billingSource": str(tmp_path / "data" / "billing"),
    }
    first = await start(hub, **body)
    again = await hub.api.post(
        RUNS, json={"periodStart": START.isoformat(), "periodEnd": END.isoformat(), **body}
    )
    assert again.status_code == 200 and again.json()["id"] == first["id"] == "month-end-1"
    assert (await finished(hub, "month-end-1"))["status"] == "completed"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"periodEnd": START.isoformat()}, "periodEnd must be after periodStart"),
        ({"periodEnd": (START + timedelta(days=100)).isoformat()}, "at most 92 days"),
        ({"partitions": 3}, "partitions: Value error, must be a power of two"),
        ({"networkSource": "/etc"}, "networkSource: file:///etc is not under an allowed source"),
        ({"billingSource": "s3://k:s@bucket/rated"}, "billingSource: credentials do not belong"),
        ({"tolerances": {"volumeRatio": 2}}, "tolerances.volumeRatio"),
        ({"id": "../etc"}, "id: Value error"),
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
    ],
)
async def test_bad_requests_are_400s_naming_the_field(
    hub: Hub, change: dict[str, Any], message: str
) -> None:
    body = {"periodStart": START.isoformat(), "periodEnd": END.isoformat(), **change}
    response = await hub.api.post(RUNS, json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    assert (await hub.api.get(RUNS)).headers["X-Total-Count"] == "0"  # nothing half-started


async def test_unknown_runs_and_filters(hub: Hub) -> None:
    assert (await hub.api.get(f"{RUNS}/nope")).status_code == 404
    assert (await hub.api.get(f"{RUNS}/nope/discrepancies")).status_code == 404
    bad = await hub.api.get(RUNS, params={"status": "sleeping"})
    assert bad.status_code == 400 and "status" in bad.json()["message"]
    assert (await hub.api.get(RUNS, headers={"X-API-Key": "wrong"})).status_code == 401


async def test_the_daily_schedule_reconciles_the_day_before(
    hub: Hub, sims: Simulators, tmp_path: Path, temporal_client: Client
) -> None:
    folder = tmp_path / "empty-network"
    folder.mkdir()
    assert (await hub.api.get(f"{RUNS}/schedule")).status_code == 404
    created = await hub.api.put(
        f"{RUNS}/schedule",
        json={"cron": "15 3 * * *", "paused": True, "networkSource": str(folder)},
    )
    assert created.status_code == 200, created.text
    assert created.json()["cron"] == ["15 3 * * *"] and created.json()["paused"] is True
    changed = await hub.api.put(
        f"{RUNS}/schedule",
        json={"cron": "*/15 8-18 * * 1-5", "paused": True, "networkSource": str(folder)},
    )
    assert changed.json()["cron"] == ["*/15 8-18 * * 1-5"]
    bad = await hub.api.put(f"{RUNS}/schedule", json={"cron": "every tuesday"})
    assert bad.status_code == 400 and "cron" in bad.json()["message"]

    assert (await hub.api.post(f"{RUNS}/schedule/trigger")).status_code == 202

    async def run_started() -> list[Any]:
        return [
            w
            async for w in temporal_client.list_workflows(
                "WorkflowId STARTS_WITH 'reconciliation-daily'"
            )
        ]

    started = await eventually(run_started)
    handle = temporal_client.get_workflow_handle(started[0].id)
    result = await process_failure(handle, "ReconciliationFailed")
    # No CDR files in the folder: the run fails, and says so, for yesterday (UTC).
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    period = (
        datetime.fromisoformat(result["period_start"]),
        datetime.fromisoformat(result["period_end"]),
    )
    assert period == (today - timedelta(days=1), today)
    assert result["status"] == "failed" and "no usage files" in result["error_message"]
    described = await handle.describe()
    assert described.status == WorkflowExecutionStatus.FAILED
    assert (await hub.api.delete(f"{RUNS}/schedule")).status_code == 204
    assert (await hub.api.delete(f"{RUNS}/schedule")).status_code == 404


@pytest.fixture
def slow_settings(hub_settings: Settings) -> Settings:
    hub_settings.reconciliation_parallelism = 1
    hub_settings.reconciliation_task_bytes = 1  # a split activity per file
    return hub_settings


async def test_a_running_reconciliation_can_be_cancelled(
    slow_settings: Settings, hub: Hub, sims: Simulators, tmp_path: Path
) -> None:
    make_data(tmp_path / "data", records=60 * 200, records_per_file=200)
    started = await start(
        hub,
        networkSource=str(tmp_path / "data" / "network"),
        billingSource=str(tmp_path / "data" / "billing"),
    )
    run_id = started["id"]

    async def splitting() -> bool:
        body = (await hub.api.get(f"{RUNS}/{run_id}")).json()
        return bool((body.get("progress") or {}).get("filesDone"))

    await eventually(splitting, interval=0.01)
    cancelled = await hub.api.post(f"{RUNS}/{run_id}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    run = await finished(hub, run_id)
    assert run["status"] == "cancelled" and run["discrepancies"] is None
    workspace = hub.settings.resolved_reconciliation_dir / run_id
    assert not (workspace / "work").exists()
    handle = hub.client.get_workflow_handle(run["workflowId"])

    async def closed() -> Any:
        # The run records itself cancelled, then its workflow ends: the row can be first.
        described = await handle.describe()
        return described if described.status != WorkflowExecutionStatus.RUNNING else None

    described = await eventually(closed, timeout=30)
    assert described.status == WorkflowExecutionStatus.CANCELED
    assert described.typed_search_attributes.get(search_attributes.HUB_STATUS) == "cancelled"
    again = await hub.api.post(f"{RUNS}/{run_id}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["message"]


async def test_histories_replay_deterministically(
    slow_settings: Settings, hub: Hub, sims: Simulators, tmp_path: Path
) -> None:
    """Completed, failed and cancelled runs replay against the current workflow code."""
    make_data(tmp_path / "data", records=30 * 100, records_per_file=100)
    sources = {
        "networkSource": str(tmp_path / "data" / "network"),
        "billingSource": str(tmp_path / "data" / "billing"),
    }
    completed = await finished(hub, (await start(hub, **sources, leakageThresholdPct=0))["id"])
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = await finished(hub, (await start(hub, networkSource=str(empty)))["id"])
    running = await start(hub, **sources)
    assert (await hub.api.post(f"{RUNS}/{running['id']}/cancel")).status_code == 202
    cancelled = await finished(hub, running["id"])
    assert [r["status"] for r in (completed, failed, cancelled)] == [
        "completed",
        "failed",
        "cancelled",
    ]
    assert completed["caseId"]  # the CRM case and the leakage alarm are in this history
    replayer = Replayer(workflows=[BillingReconciliation], data_converter=hub.client.data_converter)
    for run in (completed, failed, cancelled):
        history = await hub.client.get_workflow_handle(run["workflowId"]).fetch_history()
        await replayer.replay_workflow(history)


async def test_a_run_recorded_but_never_started_starts_when_posted_again(
    hub: Hub, sims: Simulators, tmp_path: Path
) -> None:
    """The API died between recording a run and starting its workflow: the client, never
    answered, posts the same id again, and that starts it."""
    make_data(tmp_path / "data", records=300)
    body = {
        "id": "lost-start",
        "periodStart": START.isoformat(),
        "periodEnd": END.isoformat(),
        "networkSource": str(tmp_path / "data" / "network"),
        "billingSource": str(tmp_path / "data" / "billing"),
    }
    async with hub.sessions() as session:
        session.add(
            ReconciliationRun(
                id="lost-start",
                workflow_id="reconciliation-lost-start",
                period_start=START,
                period_end=END,
            )
        )
        await session.commit()
    again = await hub.api.post(RUNS, json=body)
    assert again.status_code == 200 and again.json()["status"] == "running"
    run = await finished(hub, "lost-start")
    assert run["status"] == "completed" and run["discrepancyCount"] > 0
    bad = await hub.api.get(f"{RUNS}/lost-start/discrepancies/by-msisdn", params={"category": "x"})
    assert bad.status_code == 400 and "category: unknown category 'x'" in bad.json()["message"]


async def test_a_missing_source_under_the_roots_is_a_400(hub: Hub) -> None:
    missing = hub.settings.data_dir / "drop" / "typo"
    body = {"periodStart": START.isoformat(), "periodEnd": END.isoformat()}
    response = await hub.api.post(RUNS, json={**body, "networkSource": str(missing)})
    assert response.status_code == 400
    assert response.json()["message"] == f"networkSource: no such file or folder {str(missing)!r}"


async def test_sources_that_leave_the_roots_are_400s_naming_the_field(
    hub: Hub, tmp_path: Path
) -> None:
    root = tmp_path / "sources"
    make_data(root, records=200)
    secret = tmp_path / "secret"
    make_data(secret, records=200)
    (tmp_path / "sources-evil").mkdir()
    (root / "link").symlink_to(secret / "network")
    hub.settings.reconciliation_source_roots = [str(root)]
    body = {"periodStart": START.isoformat(), "periodEnd": END.isoformat()}
    for field in ("networkSource", "billingSource"):
        for source in (
            f"file://{root}/%2e%2e/secret/network",
            f"file://{root}/%2E%2E/secret/network",
            f"file://{root}/..%2fsecret%2fnetwork",
            f"file://{root}/network%2f..%2f..%2fsecret",
            f"file://{root}/%252e%252e/secret",
            f"file://{root}/network%00",
            f"file://{root}/link",
            f"{root}/link",
            f"{root}/network/../../secret/network",
            f"{root}-evil",
            f"FILE://{root}/%2e%2e/secret/network",
        ):
            response = await hub.api.post(RUNS, json={**body, field: source})
            assert response.status_code == 400, (field, source, response.text)
            message = response.json()["message"]
            assert message.startswith(f"{field}: "), message
            assert "no such file" not in message, (source, message)  # refused, not missed
    assert (await hub.api.get(RUNS)).headers["X-Total-Count"] == "0"
    # Inside the root, the same folders are welcome.
    started = await start(
        hub, networkSource=f"file://{root}/network", billingSource=str(root / "billing")
    )
    assert (await finished(hub, started["id"]))["status"] == "completed"
