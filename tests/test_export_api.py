"""Export schedules through the API: real Temporal Schedules on the dev server, the real
worker, runs recorded in the hub database, files in a local folder."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from hub.settings import Settings
from tests.conftest import API_KEY, Hub, eventually
from tests.export_data import add_state_changes, manifest_at

SCHEDULES = "/exportSchedules"
RUNS = "/exportRuns"


@pytest.fixture
def hub_settings(hub_settings: Settings) -> Settings:
    return hub_settings.model_copy(
        update={
            "export_settle_lag": timedelta(0),
            "export_heartbeat_timeout": timedelta(seconds=10),
            "export_write_timeout": timedelta(seconds=30),
        }
    )


def export_root(hub: Hub) -> Path:
    return hub.settings.data_dir / "exports"


def new_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def runs_of(hub: Hub, export_id: str, count: int) -> list[dict[str, Any]]:
    """The export's runs once ``count`` of them have finished, oldest first."""

    async def finished() -> list[dict[str, Any]] | None:
        response = await hub.api.get(RUNS, params={"exportId": export_id})
        assert response.status_code == 200, response.text
        rows = [r for r in response.json() if r["status"] != "running"]
        return list(reversed(rows)) if len(rows) >= count else None

    return await eventually(finished, timeout=60)


async def test_schedule_lifecycle(hub: Hub) -> None:
    old = datetime(2025, 12, 31, 10, 0, tzinfo=UTC)
    await add_state_changes(hub.sessions, [old, old + timedelta(hours=1)])
    export_id = new_id()
    destination = str(export_root(hub) / "warehouse")

    # Create: once a year (Jan 1st), so no run of its own starts during the test.
    created = await hub.api.post(
        SCHEDULES,
        json={
            "id": export_id,
            "dataset": "order_state_changes",
            "format": "parquet",
            "destination": destination,
            "cron": "0 0 1 1 *",
            "note": "nightly feed",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"] == export_id and body["cron"] == "0 0 1 1 *" and body["interval"] is None
    assert body["destination"] == f"file://{destination}" and body["paused"] is False
    assert body["nextRunTimes"][0].endswith("-01-01T00:00:00Z") and body["watermark"] is None
    assert created.headers["Location"].endswith(f"{SCHEDULES}/{export_id}")

    described = (await hub.api.get(f"{SCHEDULES}/{export_id}")).json()
    assert described["dataset"] == "order_state_changes" and described["format"] == "parquet"
    assert described["note"] == "nightly feed" and described["actions"] == 0

    # Trigger: one run, recorded, with its files and manifest.
    triggered = await hub.api.post(f"{SCHEDULES}/{export_id}/trigger")
    assert triggered.status_code == 202, triggered.text
    [run] = await runs_of(hub, export_id, 1)
    assert run["status"] == "completed", run
    assert run["rows"] == 2 and run["files"] == 1 and run["watermarkFrom"] is None
    assert run["workflowId"].startswith(f"export-{export_id}-")
    manifest = manifest_at(run["manifestUri"])
    [entry] = manifest["files"]
    assert entry["partition"] == {"date": "2025-12-31"}
    assert pq.read_table(Path(destination) / entry["path"]).num_rows == 2
    assert (await hub.api.get(f"{RUNS}/{run['id']}")).json() == run
    described = (await hub.api.get(f"{SCHEDULES}/{export_id}")).json()
    assert described["watermark"] == run["watermarkTo"]
    assert described["recentRuns"][0]["workflowId"] == run["workflowId"]

    # Pause.
    paused = await hub.api.post(f"{SCHEDULES}/{export_id}/pause", json={"reason": "maintenance"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True and paused.json()["pauseReason"] == "maintenance"
    assert paused.json()["note"] == "nightly feed"

    # Backfill last New Year: it runs although paused, and finds nothing left to copy (the
    # watermark is past that time), so it records an empty window where the last one ended.
    backfilled = await hub.api.post(
        f"{SCHEDULES}/{export_id}/backfill",
        json={"start": "2025-12-31T23:00:00Z", "end": "2026-01-01T01:00:00Z"},
    )
    assert backfilled.status_code == 202, backfilled.text
    first, second = await runs_of(hub, export_id, 2)
    assert first["id"] == run["id"]
    assert second["status"] == "completed" and second["scheduledAt"] == "2026-01-01T00:00:00Z"
    assert second["rows"] == 0 and second["files"] == 0
    assert second["watermarkFrom"] == second["watermarkTo"] == run["watermarkTo"]
    assert manifest_at(second["manifestUri"])["files"] == []

    # Listed (Temporal's list is eventually consistent).
    async def listed() -> dict[str, Any] | None:
        rows = (await hub.api.get(SCHEDULES)).json()
        return next((row for row in rows if row["id"] == export_id and row["paused"]), None)

    assert (await eventually(listed))["dataset"] == "order_state_changes"

    # Delete: the schedule goes, its runs stay.
    deleted = await hub.api.delete(f"{SCHEDULES}/{export_id}")
    assert deleted.status_code == 204, deleted.text
    gone = await hub.api.get(f"{SCHEDULES}/{export_id}")
    assert gone.status_code == 404 and export_id in gone.json()["message"]
    kept = (await hub.api.get(RUNS, params={"exportId": export_id})).json()
    assert len(kept) == 2


async def test_pause_and_unpause_keep_the_note_and_show_their_reason(hub: Hub) -> None:
    export_id = new_id()
    created = await hub.api.post(SCHEDULES, json=valid_body(hub, id=export_id, note="for finance"))
    assert created.status_code == 201, created.text
    assert created.json()["note"] == "for finance" and created.json()["paused"] is True
    assert created.json()["pauseReason"]  # created paused: says so
    path = f"{SCHEDULES}/{export_id}"

    unpaused = await hub.api.post(f"{path}/unpause", json={"reason": "go live"})
    assert unpaused.status_code == 200, unpaused.text
    body = unpaused.json()
    assert body["paused"] is False and body["note"] == "for finance"
    assert body["pauseReason"] is None

    paused = await hub.api.post(f"{path}/pause", json={"reason": "warehouse migration"})
    assert paused.status_code == 200, paused.text
    body = (await hub.api.get(path)).json()
    assert body["paused"] is True and body["note"] == "for finance"
    assert body["pauseReason"] == "warehouse migration"

    async def listed() -> dict[str, Any] | None:
        rows = (await hub.api.get(SCHEDULES)).json()
        return next(
            (r for r in rows if r["id"] == export_id and r["pauseReason"] == body["pauseReason"]),
            None,
        )

    assert (await eventually(listed))["note"] == "for finance"

    # No body, and the old clients' {"note": ...}, still pause; the creator's note stays.
    assert (await hub.api.post(f"{path}/unpause")).json()["note"] == "for finance"
    older = (await hub.api.post(f"{path}/pause", json={"note": "old client"})).json()
    assert older["pauseReason"] == "old client" and older["note"] == "for finance"
    for refused in ({"reason": "x" * 501}, {"why": "unknown field"}):
        response = await hub.api.post(f"{path}/pause", json=refused)
        assert response.status_code == 400, response.text
    assert (await hub.api.delete(path)).status_code == 204


async def test_backfill_fills_past_days_one_run_and_partition_each(hub: Hub) -> None:
    days = [datetime(2026, 1, d, 10, 0, tzinfo=UTC) for d in (1, 2, 3)]
    await add_state_changes(hub.sessions, days)
    export_id = new_id()
    created = await hub.api.post(
        SCHEDULES,
        json={
            "id": export_id,
            "dataset": "order_state_changes",
            "format": "csv",
            "destination": str(export_root(hub) / "daily"),
            "interval": "P1D",
            "startFrom": "2026-01-01T00:00:00Z",
            "paused": True,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["interval"] == "P1D" and created.json()["paused"] is True

    response = await hub.api.post(
        f"{SCHEDULES}/{export_id}/backfill",
        json={"start": "2026-01-02T00:00:00Z", "end": "2026-01-04T00:00:00Z"},
    )
    assert response.status_code == 202, response.text

    runs = await runs_of(hub, export_id, 3)
    assert [r["scheduledAt"] for r in runs] == [
        "2026-01-02T00:00:00Z",
        "2026-01-03T00:00:00Z",
        "2026-01-04T00:00:00Z",
    ]
    assert [r["watermarkFrom"] for r in runs] == [
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
        "2026-01-03T00:00:00Z",
    ]
    assert [r["rows"] for r in runs] == [1, 1, 1]
    partitions = [
        [f["partition"]["date"] for f in manifest_at(r["manifestUri"])["files"]] for r in runs
    ]
    assert partitions == [["2026-01-01"], ["2026-01-02"], ["2026-01-03"]]
    await hub.api.delete(f"{SCHEDULES}/{export_id}")


def valid_body(hub: Hub, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": new_id(),
        "dataset": "orders",
        "format": "parquet",
        "destination": str(export_root(hub)),
        "interval": "PT1H",
        "paused": True,
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"dataset": "subscribers"}, "dataset"),
        ({"format": "xlsx"}, "format"),
        ({"id": "Has Upper Case"}, "id"),
        ({"destination": "relative/folder"}, "destination"),
        ({"destination": "/etc/hub"}, "destination"),
        ({"destination": "ftp://host/x"}, "destination"),
        ({"destination": "s3://key:secret@bucket/x"}, "destination"),
        ({"interval": None}, "interval"),
        ({"cron": "0 1 * * *"}, "interval"),
        ({"interval": "PT0S"}, "interval"),
        ({"interval": "often"}, "interval"),
        ({"interval": None, "cron": "61 * * * *"}, "cron"),
        ({"interval": None, "cron": "every day"}, "cron"),
        ({"interval": None, "cron": "0 1 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "Europe/Vienna"}, "timezone"),
        ({"startFrom": "2026-01-01T00:00:00"}, "startFrom"),
        ({"intervall": "PT1H"}, "intervall"),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    hub: Hub, changes: dict[str, Any], field: str
) -> None:
    body = valid_body(hub, **changes)
    response = await hub.api.post(SCHEDULES, json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == "400" and error["message"].startswith(f"{field}:"), error


async def test_destinations_that_leave_the_roots_are_400s_and_create_nothing(hub: Hub) -> None:
    root = export_root(hub)
    elsewhere = hub.settings.data_dir / "elsewhere"
    elsewhere.mkdir()
    root.mkdir(parents=True, exist_ok=True)
    (root / "link").symlink_to(elsewhere)
    for destination in (
        f"file://{root}/%2e%2e/elsewhere",
        f"file://{root}/%2E%2E/elsewhere",
        f"file://{root}/.%2e/elsewhere",
        f"file://{root}/..%2felsewhere",
        f"file://{root}/warehouse%2f..%2f..%2felsewhere",
        f"file://{root}/%252e%252e/elsewhere",
        f"file://{root}/x%00",
        f"file://{root}/warehouse/..",
        f"file://{root}/link",
        f"file://{root}/link/deeper",
        f"FILE://{root}/%2e%2e/elsewhere",
    ):
        body = valid_body(hub, destination=destination)
        response = await hub.api.post(SCHEDULES, json=body)
        assert response.status_code == 400, (destination, response.text)
        error = response.json()
        assert error["code"] == "400" and error["message"].startswith("destination: "), error
        missing = await hub.api.get(f"{SCHEDULES}/{body['id']}")
        assert missing.status_code == 404, destination
    assert list(elsewhere.iterdir()) == []


async def test_a_symlink_made_after_the_schedule_is_refused_when_the_worker_writes(
    hub: Hub,
) -> None:
    await add_state_changes(hub.sessions, [datetime(2025, 12, 31, 10, 0, tzinfo=UTC)])
    root = export_root(hub)
    body = valid_body(hub, destination=str(root / "late"), dataset="order_state_changes")
    created = await hub.api.post(SCHEDULES, json=body)
    assert created.status_code == 201, created.text
    # Accepted while ``late`` did not exist; now it is a link out of the root.
    elsewhere = hub.settings.data_dir / "elsewhere"
    elsewhere.mkdir()
    root.mkdir(parents=True, exist_ok=True)
    (root / "late").symlink_to(elsewhere)

    assert (await hub.api.post(f"{SCHEDULES}/{body['id']}/trigger")).status_code == 202
    [run] = await runs_of(hub, body["id"], 1)
    assert run["status"] == "failed" and "symbolic link" in run["errorMessage"], run
    assert list(elsewhere.iterdir()) == []


async def test_conflicts_unknown_schedules_and_bad_ranges(hub: Hub) -> None:
    body = valid_body(hub)
    assert (await hub.api.post(SCHEDULES, json=body)).status_code == 201
    again = await hub.api.post(SCHEDULES, json=body)
    assert again.status_code == 409 and again.json()["message"].startswith("id:")

    backwards = await hub.api.post(
        f"{SCHEDULES}/{body['id']}/backfill",
        json={"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
    )
    assert backwards.status_code == 400 and backwards.json()["message"].startswith("end:")
    too_long = await hub.api.post(
        f"{SCHEDULES}/{body['id']}/backfill",
        json={"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
    )
    assert too_long.status_code == 400 and "10000 runs" in too_long.json()["message"]
    naive = await hub.api.post(
        f"{SCHEDULES}/{body['id']}/backfill", json={"start": "2026-01-01", "end": "soon"}
    )
    assert naive.status_code == 400 and naive.json()["message"].startswith("start:")
    assert (await hub.api.delete(f"{SCHEDULES}/{body['id']}")).status_code == 204

    for method, path in [
        ("GET", f"{SCHEDULES}/nope-{uuid.uuid4().hex[:6]}"),
        ("POST", f"{SCHEDULES}/nope-{uuid.uuid4().hex[:6]}/trigger"),
        ("POST", f"{SCHEDULES}/nope-{uuid.uuid4().hex[:6]}/pause"),
        ("DELETE", f"{SCHEDULES}/nope-{uuid.uuid4().hex[:6]}"),
        ("GET", f"{SCHEDULES}/Not_An_Id"),
        ("GET", f"{RUNS}/nope"),
    ]:
        response = await hub.api.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "404"

    bad_status = await hub.api.get(RUNS, params={"status": "done"})
    assert bad_status.status_code == 400 and bad_status.json()["message"].startswith("status:")
    bad_limit = await hub.api.get(RUNS, params={"limit": 0})
    assert bad_limit.status_code == 400 and bad_limit.json()["message"].startswith("limit:")


async def test_export_routes_need_an_api_key(hub: Hub) -> None:
    for method, path in [("GET", SCHEDULES), ("POST", SCHEDULES), ("GET", RUNS)]:
        response = await hub.api.request(method, path, headers={"X-API-Key": ""})
        assert response.status_code == 401, (method, path)
    ok = await hub.api.get(RUNS, headers={"X-API-Key": API_KEY})
    assert ok.status_code == 200
