"""Due-date alarms through a real NMS (snmptrapd): ``warning`` before the due date while the
report is not accepted, ``critical`` once it has passed, both cleared on acceptance. The due
date is set a few seconds ahead (the settings are durations, so the test uses seconds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from hub.alarms import PerceivedSeverity, notification_id
from hub.settings import Settings
from tests.conftest import Hub, eventually
from tests.processes.reporting.reports import decide, make_usage, report_in, start
from tests.snmp_fixtures import TrapReceiver
from tests.test_alarms import COMMUNITY, SEVERITY_OID, nms  # noqa: F401  (the NMS fixture)

#: 2026-Q3 ends at midnight in Vienna.
Q3_END = datetime(2026, 9, 30, 22, tzinfo=UTC)
WARNING, CRITICAL, CLEARED = (
    str(int(s))
    for s in (PerceivedSeverity.WARNING, PerceivedSeverity.CRITICAL, PerceivedSeverity.CLEARED)
)


@pytest.fixture
def hub_settings(hub_settings: Settings, nms: TrapReceiver) -> Settings:  # noqa: F811
    hub_settings.snmp_targets = SecretStr(f"v2c:{COMMUNITY}@127.0.0.1:{nms.port}")
    # Due in 6 s, warned 3 s before.
    hub_settings.reporting_due_after = datetime.now(UTC) - Q3_END + timedelta(seconds=6)
    hub_settings.reporting_due_warning = timedelta(seconds=3)
    return hub_settings


async def severities(receiver: TrapReceiver, workflow_id: str, kind: str, count: int) -> list[str]:
    alarm = notification_id(f"{workflow_id}/due/{kind}")

    async def check() -> list[str]:
        found = [n.value(SEVERITY_OID) for n in receiver.with_id(alarm)]
        return found if len(found) >= count else []

    return await eventually(check, timeout=30)


async def test_due_date_alarms_are_raised_and_cleared_on_acceptance(
    hub: Hub,
    nms: TrapReceiver,  # noqa: F811
    tmp_path: Path,
) -> None:
    make_usage(tmp_path / "usage", records=600)
    report = (await start(hub, tmp_path / "usage")).json()
    workflow_id = report["workflowId"]
    task_id = (await report_in(hub, report["id"], "awaitingApproval"))["taskId"]
    assert await severities(nms, workflow_id, "warning", 1) == [WARNING]
    assert await severities(nms, workflow_id, "critical", 1) == [CRITICAL]

    approved = await decide(
        hub,
        task_id,
        "approver",
        "approve",
        fields={"findingsAcknowledged": True},
        comment="late, but checked",
    )
    assert approved.status_code == 200, approved.text
    await report_in(hub, report["id"], "accepted")
    assert await severities(nms, workflow_id, "warning", 2) == [WARNING, CLEARED]
    assert await severities(nms, workflow_id, "critical", 2) == [CRITICAL, CLEARED]
