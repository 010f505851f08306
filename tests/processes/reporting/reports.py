"""Helpers of the reporting tests: a quarter of generated usage, reports through the API."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from simulators.usage import UsageManifest, UsageSpec, generate
from tests.conftest import Hub, eventually
from tests.processes.reporting.conftest import as_

REPORTS = "/regulatoryReports"
FINAL = ("accepted", "rejected", "superseded", "failed")
PERIOD = "2026-Q3"
#: 2026-Q3 in Vienna, a little wider on both sides: usage that crosses the quarter's edges.
START = datetime(2026, 6, 30, 20, tzinfo=UTC)
END = datetime(2026, 10, 1, 2, tzinfo=UTC)


def make_usage(root: Path, records: int = 3_000) -> UsageManifest:
    spec = UsageSpec(START, END, records=records, records_per_file=1_000, rates={})
    return generate(spec, root)


async def start(hub: Hub, root: Path, who: str = "preparer", **body: Any) -> httpx.Response:
    payload = {
        "reportType": "kev-mobile-quarterly",
        "period": PERIOD,
        # The regulator simulator is the suite's: an operator of its own per test.
        "operatorId": hub.settings.reporting_operator_id,
        "networkSource": str(root / "network"),
        "billingSource": str(root / "billing"),
        "manualFigures": {"employees": 412, "investments": "1250000.00"},
        **body,
    }
    return await hub.api.post(REPORTS, json=payload, headers=as_(who))


async def report_in(
    hub: Hub, report_id: str, *statuses: str, timeout: float = 60
) -> dict[str, Any]:
    """The report once it is in one of ``statuses``; one that ended otherwise fails."""

    async def check() -> dict[str, Any] | None:
        body = (await hub.api.get(f"{REPORTS}/{report_id}")).json()
        if body["status"] in statuses:
            return body
        assert body["status"] not in FINAL, body
        return None

    return await eventually(check, timeout=timeout)


async def decide(hub: Hub, task_id: str, who: str, decision: str, **body: Any) -> httpx.Response:
    return await hub.api.post(
        f"/tasks/{task_id}/complete", json={"decision": decision, **body}, headers=as_(who)
    )
