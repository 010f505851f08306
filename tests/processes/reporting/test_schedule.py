"""The schedule of a report type: a Temporal Schedule a few days after each quarter; a run it
starts opens the report of the quarter before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import Hub, eventually
from tests.processes.reporting.conftest import as_
from tests.processes.reporting.reports import PERIOD, REPORTS, make_usage, report_in

SCHEDULE = f"{REPORTS}/schedule"
TYPE = {"reportType": "kev-mobile-quarterly"}


async def test_a_scheduled_run_reports_the_quarter_before(hub: Hub, tmp_path: Path) -> None:
    usage = tmp_path / "usage"
    make_usage(usage, records=600)
    body = {
        **TYPE,
        "daysAfterQuarter": 5,
        "hour": 6,
        "networkSource": str(usage / "network"),
        "billingSource": str(usage / "billing"),
    }
    assert (await hub.api.put(SCHEDULE, json={**body, "reportType": "nope"})).status_code == 400
    created = await hub.api.put(SCHEDULE, json=body, headers=as_("preparer"))
    assert created.status_code == 200, created.text
    try:
        described = (await hub.api.get(SCHEDULE, params=TYPE)).json()
        # 6:00 in Vienna on the 6th of January, April, July, October.
        assert described["nextRuns"][0].startswith("2027-01-06T05:00:00")

        triggered = await hub.api.post(f"{SCHEDULE}/trigger", params=TYPE, headers=as_("preparer"))
        assert triggered.status_code == 202, triggered.text

        async def listed() -> list[dict[str, Any]]:
            return list((await hub.api.get(REPORTS, params={"period": PERIOD})).json())

        (report,) = await eventually(listed, timeout=30)
        assert report["preparedBy"] == "hub: schedule" and report["version"] == 1
        waiting = await report_in(hub, report["id"], "awaitingApproval")
        assert waiting["indicators"] and waiting["dueDate"]

    finally:
        await hub.client.get_schedule_handle("regulatory-report-kev-mobile-quarterly").delete()
