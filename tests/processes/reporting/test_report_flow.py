"""A quarterly report end to end: computed from generated usage, refused to its preparer
(four-eyes), approved by a second person, accepted by the regulator simulator; the XML and the
receipt download, and the archived bytes are the ones the regulator received.

Real dev server, hub database, worker, API and regulator simulator (the ``hub`` fixture)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import httpx

from hub import search_attributes as sa
from tests.conftest import Hub
from tests.processes.reporting.reports import PERIOD, REPORTS, decide, make_usage, report_in, start


async def regulator_state(hub: Hub) -> dict[str, Any]:
    base = hub.settings.regulator_url.removesuffix("/regulator")
    async with httpx.AsyncClient() as http:
        return dict((await http.get(f"{base}/_sim/state")).json())


async def submissions_of(hub: Hub, report: dict[str, Any]) -> list[dict[str, Any]]:
    state = await regulator_state(hub)
    return [
        s
        for s in state["submissions"]
        if (s["operatorId"], s["period"], s["version"])
        == (report["operatorId"], report["period"], report["version"])
    ]


async def test_a_report_is_approved_by_a_second_person_and_accepted(
    hub: Hub, tmp_path: Path
) -> None:
    make_usage(tmp_path / "usage")
    started = await start(hub, tmp_path / "usage")
    assert started.status_code == 201, started.text
    report = started.json()
    assert report["status"] == "extracting" and report["version"] == 1
    assert report["preparedBy"] == "api-key:preparer" and report["period"] == PERIOD
    # 60 days after the quarter ends at midnight in Vienna (22:00 UTC, summer time)
    assert report["dueDate"] == "2026-11-29T22:00:00Z"
    again = await start(hub, tmp_path / "usage", who="approver")
    assert again.status_code == 200 and again.json()["id"] == report["id"]

    waiting = await report_in(hub, report["id"], "awaitingApproval")
    task_id = waiting["taskId"]
    assert task_id and waiting["indicators"]["sim_cards_in_use"] > 0
    assert waiting["indicators"]["employees"] == 412
    assert any(f["code"] for f in waiting["findings"])
    task = (await hub.api.get(f"/tasks/{task_id}")).json()
    assert task["excludedDeciders"] == ["api-key:preparer"]
    assert task["evidence"]["document"]["href"].endswith(f"/{report['id']}/document")
    described = await hub.client.get_workflow_handle(report["workflowId"]).describe()
    assert described.typed_search_attributes.get(sa.PROCESS_KIND) == "regulatory-report"

    ack = {"fields": {"findingsAcknowledged": True}, "comment": "no Q2 report in the hub yet"}
    silent = await decide(hub, task_id, "approver", "approve", fields=ack["fields"])
    assert silent.status_code in (400, 409, 422), silent.text  # findings need a comment
    unacknowledged = await decide(hub, task_id, "approver", "approve", comment="ok")
    assert unacknowledged.status_code in (400, 409, 422), unacknowledged.text
    refused = await decide(hub, task_id, "preparer", "approve", **ack)
    assert refused.status_code == 403, refused.text
    assert "four-eyes" in refused.text
    outsider = await decide(hub, task_id, "outsider", "approve", **ack)
    assert outsider.status_code in (403, 404), outsider.text
    approved = await decide(hub, task_id, "approver", "approve", **ack)
    assert approved.status_code == 200, approved.text

    accepted = await report_in(hub, report["id"], "accepted", "rejected", "failed")
    assert accepted["status"] == "accepted", accepted
    assert accepted["approvedBy"] == "api-key:approver" and accepted["taskId"] is None
    assert accepted["receiptId"] and accepted["verdict"] == "accepted"

    document = await hub.api.get(f"{REPORTS}/{report['id']}/document")
    assert document.status_code == 200
    assert document.headers["content-type"].startswith("application/xml")
    digest = hashlib.sha256(document.content).hexdigest()
    assert digest == accepted["documentSha256"]
    receipt = (await hub.api.get(f"{REPORTS}/{report['id']}/receipt")).json()
    assert receipt["receiptId"] == accepted["receiptId"] and receipt["documentSha256"] == digest

    (submitted,) = await submissions_of(hub, accepted)
    assert submitted["receiptId"] == accepted["receiptId"]
    assert base64.b64decode(submitted["document"]) == document.content
    assert submitted["idempotencyKey"] == f"{accepted['workflowId']}/submit"
    archived = Path(hub.settings.resolved_reporting_dir) / f"{report['id']}.receipt.json"
    assert archived.is_file()

    listed = await hub.api.get(REPORTS, params={"period": PERIOD, "status": "accepted"})
    assert [r["id"] for r in listed.json()] == [report["id"]]
    assert listed.headers["X-Total-Count"] == "1"


async def test_a_rejected_version_ends_and_the_next_post_starts_version_2(
    hub: Hub, tmp_path: Path
) -> None:
    make_usage(tmp_path / "usage", records=1_000)
    report = (await start(hub, tmp_path / "usage")).json()
    task_id = (await report_in(hub, report["id"], "awaitingApproval"))["taskId"]
    no_comment = await decide(hub, task_id, "approver", "reject")
    assert no_comment.status_code in (400, 409, 422), no_comment.text
    rejected = await decide(hub, task_id, "approver", "reject", comment="employees look wrong")
    assert rejected.status_code == 200, rejected.text
    ended = await report_in(hub, report["id"], "rejected", "failed")
    assert ended["status"] == "rejected" and "employees look wrong" in ended["reasons"][0]
    assert await submissions_of(hub, ended) == []

    second = await start(hub, tmp_path / "usage", manualFigures={"employees": 415})
    assert second.status_code == 201, second.text
    assert second.json()["version"] == 2 and "-v2-" in second.json()["id"]
    await report_in(hub, second.json()["id"], "awaitingApproval")


async def test_bad_input_is_refused_naming_the_field(hub: Hub, tmp_path: Path) -> None:
    for body, field in (
        ({"reportType": "no-such-report"}, "reportType"),
        ({"period": "2026-Q7"}, "period"),
        ({"period": "2999-Q1"}, "period"),
        ({"networkSource": "/etc"}, "networkSource"),
    ):
        response = await start(hub, tmp_path, **body)
        assert response.status_code == 400, (body, response.text)
        assert field in response.text
    listed = await hub.api.get(REPORTS)
    assert listed.json() == [] and listed.headers["X-Total-Count"] == "0"


async def test_reading_needs_the_reports_scope(hub: Hub) -> None:
    missing = await hub.api.get(f"{REPORTS}/nope")
    assert missing.status_code == 404
    anonymous = await hub.api.get(REPORTS, headers={"X-API-Key": ""})
    assert anonymous.status_code == 401
