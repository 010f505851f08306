"""The histories of a report the regulator accepted and of one the approver rejected replay
against the workflow code with the worker's own sandbox: the report's decisions are
deterministic (what to record in ``tests/workflows/histories/`` comes from these two runs).

Real dev server, hub database, worker, API and regulator simulator (the ``hub`` fixture)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHistory
from temporalio.worker import Replayer

from tests.conftest import Hub, eventually
from tests.processes.reporting.reports import decide, make_usage, report_in, start
from worker import WORKFLOWS, workflow_runner


async def closed_history(hub: Hub, report: dict[str, Any]) -> WorkflowHistory:
    """The report's history once its workflow has closed (archiving follows the verdict)."""
    handle = hub.client.get_workflow_handle(report["workflowId"])

    async def closed() -> bool:
        return (await handle.describe()).status != WorkflowExecutionStatus.RUNNING

    await eventually(closed, timeout=30)
    return await handle.fetch_history()


async def accepted_report(hub: Hub, usage: Path) -> dict[str, Any]:
    report = (await start(hub, usage)).json()
    task_id = (await report_in(hub, report["id"], "awaitingApproval"))["taskId"]
    fields = {"findingsAcknowledged": True}
    approved = await decide(hub, task_id, "approver", "approve", fields=fields, comment="seen")
    assert approved.status_code == 200, approved.text
    return await report_in(hub, report["id"], "accepted")


async def rejected_report(hub: Hub, usage: Path) -> dict[str, Any]:
    report = (await start(hub, usage)).json()
    task_id = (await report_in(hub, report["id"], "awaitingApproval"))["taskId"]
    rejected = await decide(hub, task_id, "approver", "reject", comment="employees look wrong")
    assert rejected.status_code == 200, rejected.text
    return await report_in(hub, report["id"], "rejected")


async def test_accepted_and_rejected_histories_replay(hub: Hub, tmp_path: Path) -> None:
    make_usage(tmp_path / "usage", records=1_000)
    # Version 1 rejected by the approver, version 2 accepted by the regulator.
    rejected = await rejected_report(hub, tmp_path / "usage")
    accepted = await accepted_report(hub, tmp_path / "usage")
    assert (rejected["version"], accepted["version"]) == (1, 2)

    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=hub.client.data_converter,
        workflow_runner=workflow_runner("strict"),
    )
    for report in (accepted, rejected):
        history = await closed_history(hub, report)
        # A history that stopped short would replay trivially: these ran to their end.
        assert history.events[-1].HasField("workflow_execution_completed_event_attributes") or (
            history.events[-1].HasField("workflow_execution_failed_event_attributes")
        ), report
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, (report["status"], result.replay_failure)
