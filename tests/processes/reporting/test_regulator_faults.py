"""What the regulator answers besides "accepted": a rejection of the report (its verdict, or a
SOAP fault: permanent, the version ends ``rejected`` with the reasons) and an outage (the
submit step parks; an operator retries it and the report is submitted once)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Hub, eventually
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


async def test_the_regulators_rejection_ends_the_version_with_its_reasons(
    hub: Hub, portal: httpx.AsyncClient, tmp_path: Path
) -> None:
    policy = {"verdict": "reject", "delay_seconds": 0.2, "reasons": ["SMS count missing"]}
    assert (await portal.put("/_sim/verdicts", json=policy)).status_code == 200
    report = await approved(hub, tmp_path)
    ended = await report_in(hub, report["id"], "rejected", "accepted", "failed")
    assert ended["status"] == "rejected", ended
    assert ended["reasons"] == ["rejected by the regulator: SMS count missing"]
    assert (ended["receiptId"] and ended["verdict"] is None) or ended["verdict"] != "accepted"
    receipt = (await hub.api.get(f"/regulatoryReports/{report['id']}/receipt")).json()
    assert receipt["receiptId"] == ended["receiptId"]


async def test_a_soap_fault_is_a_permanent_rejection(
    hub: Hub, portal: httpx.AsyncClient, tmp_path: Path
) -> None:
    rule = {"operation": "SubmitReport", "kind": "permanent", "message": "operator suspended"}
    assert (await portal.post("/_sim/faults", json=rule)).status_code == 201
    report = await approved(hub, tmp_path)
    ended = await report_in(hub, report["id"], "rejected", "accepted", "failed")
    assert ended["status"] == "rejected", ended
    assert "operator suspended" in ended["reasons"][0]
    assert ended["receiptId"] is None
    assert await submissions(portal, report) == []


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
