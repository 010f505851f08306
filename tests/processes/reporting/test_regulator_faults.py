"""What the regulator answers besides "accepted": a rejection of the report (its verdict, or a
SOAP fault: permanent, the version goes back to its preparer as a correction task; correcting
it ends it ``rejected`` and starts version 2 with the corrected figures, abandoning it ends it)
and an outage (the submit step parks; an operator retries it and the report is submitted once)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Hub, eventually
from tests.processes.reporting.conftest import as_
from tests.processes.reporting.reports import decide, make_usage, report_in, start


@pytest.fixture
async def portal(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """The regulator simulator's control API (``/_sim``), reset after the test."""
    base = hub.settings.regulator_url.removesuffix("/regulator")
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        yield http
        await http.delete("/_sim/faults")
        await http.put("/_sim/verdicts", json={})


async def approved(hub: Hub, tmp_path: Path) -> dict[str, Any]:
    """A report whose approval has just been given."""
    make_usage(tmp_path / "usage", records=600)
    report = (await start(hub, tmp_path / "usage")).json()
    task_id = (await report_in(hub, report["id"], "awaitingApproval"))["taskId"]
    answer = await decide(
        hub,
        task_id,
        "approver",
        "approve",
        fields={"findingsAcknowledged": True},
        comment="no earlier report to compare with",
    )
    assert answer.status_code == 200, answer.text
    return dict(report)


async def submissions(portal: httpx.AsyncClient, report: dict[str, Any]) -> list[dict[str, Any]]:
    state = (await portal.get("/_sim/state")).json()
    return [
        s for s in state["submissions"] if s["idempotencyKey"] == f"{report['workflowId']}/submit"
    ]


async def correction_task(hub: Hub, report: dict[str, Any]) -> dict[str, Any]:
    """The version back with its preparer: ``awaitingCorrection`` and the task, assigned."""
    waiting = await report_in(hub, report["id"], "awaitingCorrection")
    task = (await hub.api.get(f"/tasks/{waiting['taskId']}", headers=as_("preparer"))).json()
    assert task["kind"] == "correction" and task["state"] == "assigned", task
    assert task["assignee"] == "api-key:preparer"
    return {"report": waiting, "task": task}


async def test_the_regulators_rejection_goes_back_to_the_preparer_who_corrects_it(
    hub: Hub, portal: httpx.AsyncClient, tmp_path: Path
) -> None:
    policy = {"verdict": "reject", "delay_seconds": 0.2, "reasons": ["SMS count missing"]}
    assert (await portal.put("/_sim/verdicts", json=policy)).status_code == 200
    report = await approved(hub, tmp_path)
    back = await correction_task(hub, report)
    waiting, task = back["report"], back["task"]
    assert waiting["reasons"] == ["rejected by the regulator: SMS count missing"]
    assert task["evidence"]["reasons"] == waiting["reasons"]
    assert task["evidence"]["receiptId"] == waiting["receiptId"]
    receipt = (await hub.api.get(f"/regulatoryReports/{report['id']}/receipt")).json()
    assert receipt["receiptId"] == waiting["receiptId"]
    # The same report asked for again is this version, waiting for its correction.
    again = await start(hub, tmp_path / "usage")
    assert again.status_code == 200 and again.json()["id"] == report["id"], again.text
    # Claimed by its preparer: nobody else decides it; a malformed figure is refused.
    other = await decide(hub, task["id"], "approver", "correct", comment="fixed")
    assert other.status_code == 409 and "claimed" in other.text, other.text
    bad = await decide(
        hub, task["id"], "preparer", "correct", comment="x", fields={"investments": "1,5"}
    )
    assert bad.status_code == 400 and "investments" in bad.text, bad.text
    await portal.put("/_sim/verdicts", json={})
    # A source the hub may not read: the decision is taken, the correction is not; asked again.
    outside = await decide(
        hub, task["id"], "preparer", "correct", comment="x", fields={"networkSource": "/etc"}
    )
    assert outside.status_code == 200, outside.text

    async def asked_again() -> dict[str, Any] | None:
        body = (await hub.api.get(f"/regulatoryReports/{report['id']}")).json()
        return body if body["taskId"] not in (None, task["id"]) else None

    again_task_id = (await eventually(asked_again, timeout=30))["taskId"]
    again_task = (await hub.api.get(f"/tasks/{again_task_id}", headers=as_("preparer"))).json()
    assert "networkSource" in again_task["evidence"]["refusedCorrection"]
    assert "refused" in again_task["description"]
    task = again_task

    corrected = await decide(
        hub,
        task["id"],
        "preparer",
        "correct",
        comment="SMS counted now",
        fields={"employees": 415},
    )
    assert corrected.status_code == 200, corrected.text
    ended = await report_in(hub, report["id"], "rejected")
    assert ended["taskId"] is None and "SMS counted now" in ended["reasons"][-1]

    version_2 = next(r for r in await eventually_listed(hub, report) if r["version"] == 2)
    v2 = await report_in(hub, version_2["id"], "awaitingApproval")
    assert v2["version"] == 2 and v2["preparedBy"] == "api-key:preparer"
    assert v2["parameters"]["manualFigures"] == {"employees": 415, "investments": "1250000.00"}
    assert v2["parameters"]["reason"] == "SMS counted now"
    assert v2["indicators"]["employees"] == 415
    # Four-eyes again: the preparer who corrected it may not approve it.
    refused = await decide(
        hub, v2["taskId"], "preparer", "approve", comment="ok",
        fields={"findingsAcknowledged": True},
    )  # fmt: skip
    assert refused.status_code == 403, refused.text
    approve = await decide(
        hub, v2["taskId"], "approver", "approve", comment="ok",
        fields={"findingsAcknowledged": True},
    )  # fmt: skip
    assert approve.status_code == 200, approve.text
    assert (await report_in(hub, v2["id"], "accepted"))["version"] == 2


async def eventually_listed(hub: Hub, report: dict[str, Any]) -> list[dict[str, Any]]:
    async def listed() -> list[dict[str, Any]] | None:
        rows = (await hub.api.get("/regulatoryReports", params={"period": report["period"]})).json()
        mine = [r for r in rows if r["operatorId"] == report["operatorId"]]
        return mine if any(r["version"] == 2 for r in mine) else None

    return await eventually(listed, timeout=30)


async def test_a_soap_fault_is_permanent_and_an_abandoned_correction_ends_the_version(
    hub: Hub, portal: httpx.AsyncClient, tmp_path: Path
) -> None:
    rule = {"operation": "SubmitReport", "kind": "permanent", "message": "operator suspended"}
    assert (await portal.post("/_sim/faults", json=rule)).status_code == 201
    report = await approved(hub, tmp_path)
    back = await correction_task(hub, report)
    assert "operator suspended" in back["report"]["reasons"][0]
    assert back["report"]["receiptId"] is None
    assert await submissions(portal, report) == []
    no_reason = await decide(hub, back["task"]["id"], "preparer", "abandon")
    assert no_reason.status_code == 400 and "comment" in no_reason.text, no_reason.text
    abandoned = await decide(
        hub, back["task"]["id"], "preparer", "abandon", comment="we appeal instead"
    )
    assert abandoned.status_code == 200, abandoned.text
    ended = await report_in(hub, report["id"], "rejected")
    assert "we appeal instead" in ended["reasons"][-1]
    rows = (await hub.api.get("/regulatoryReports", params={"period": report["period"]})).json()
    assert [r["version"] for r in rows if r["operatorId"] == report["operatorId"]] == [1]


async def test_an_outage_parks_the_submission_and_a_retry_submits_it_once(
    hub: Hub, portal: httpx.AsyncClient, tmp_path: Path
) -> None:
    rule = {"operation": "SubmitReport", "kind": "transient"}
    assert (await portal.post("/_sim/faults", json=rule)).status_code == 201
    report = await approved(hub, tmp_path)

    async def parked() -> dict[str, Any] | None:
        rows = (
            await hub.api.get(
                "/deadLetters", params={"process": "regulatory-report", "status": "parked"}
            )
        ).json()
        return next((r for r in rows if r["workflowId"] == report["workflowId"]), None)

    letter = await eventually(parked, timeout=30)
    assert letter["step"] == "regulator.submit_report" and letter["system"] == "regulator"
    assert (await hub.api.get(f"/regulatoryReports/{report['id']}")).json()[
        "status"
    ] == "submitting"
    assert await submissions(portal, report) == []

    await portal.delete("/_sim/faults")
    retried = await hub.api.post(f"/deadLetters/{letter['id']}/retry", json={})
    assert retried.status_code in (200, 202), retried.text
    ended = await report_in(hub, report["id"], "accepted", "rejected", "failed")
    assert ended["status"] == "accepted", ended
    (only,) = await submissions(portal, report)
    assert only["receiptId"] == ended["receiptId"]
