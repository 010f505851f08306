"""A correction of an accepted report: version 2 supersedes version 1 at the regulator, and
version 1 shows ``superseded`` once version 2 is accepted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import Hub
from tests.processes.reporting.conftest import as_
from tests.processes.reporting.reports import REPORTS, decide, make_usage, report_in, start

ACK = {"fields": {"findingsAcknowledged": True}, "comment": "checked"}


async def accepted_version(hub: Hub, report_id: str) -> dict[str, Any]:
    task_id = (await report_in(hub, report_id, "awaitingApproval"))["taskId"]
    assert (await decide(hub, task_id, "approver", "approve", **ACK)).status_code == 200
    return await report_in(hub, report_id, "accepted")


async def test_a_correction_supersedes_the_accepted_version(hub: Hub, tmp_path: Path) -> None:
    make_usage(tmp_path / "usage", records=600)
    first = await accepted_version(hub, (await start(hub, tmp_path / "usage")).json()["id"])

    not_yet = await hub.api.post(
        f"{REPORTS}/{first['id']}/corrections", json={}, headers=as_("preparer")
    )
    assert not_yet.status_code == 400, not_yet.text  # a correction says why
    corrected = await hub.api.post(
        f"{REPORTS}/{first['id']}/corrections",
        json={"reason": "employees were counted twice", "manualFigures": {"employees": 206}},
        headers=as_("preparer"),
    )
    assert corrected.status_code == 201, corrected.text
    second = corrected.json()
    assert second["version"] == 2 and second["supersedes"] == first["receiptId"]
    again = await hub.api.post(
        f"{REPORTS}/{first['id']}/corrections", json={"reason": "again"}, headers=as_("preparer")
    )
    assert again.status_code == 200 and again.json()["id"] == second["id"]

    done = await accepted_version(hub, second["id"])
    assert done["indicators"]["employees"] == 206
    old = await report_in(hub, first["id"], "superseded")
    assert old["receiptId"] == first["receiptId"]
    rejected = await hub.api.post(
        f"{REPORTS}/{first['id']}/corrections", json={"reason": "x"}, headers=as_("preparer")
    )
    assert rejected.status_code == 409, rejected.text
