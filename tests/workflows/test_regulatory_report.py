"""RegulatoryReport's own logic, fast: every activity a same-named double (``defn``), on the
real dev server. What the process tests cannot easily make happen: a document that does not
validate (it never reaches a person), a verdict that never comes, a scheduled run that finds
its report under way, the approval's due time passing (it rejects, never approves), and a
refusal by the regulator whose correction task starts version 2 as a run of its own."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.definitions import HUB, defn, task_queue_for
from activities.errors import outside_call
from activities.policies import ProcessPolicies, SystemPolicy
from activities.reporting import (
    ArchiveInput,
    ExtractInput,
    ExtractResult,
    OpenCorrectionInput,
    OpenedCorrection,
    OpenedReport,
    OpenScheduledInput,
    PlausibilityInput,
    PreviousReport,
    PreviousReportInput,
    RecordReportInput,
    RenderInput,
    RenderResult,
    ReportingDefaults,
    SubmitInput,
    SubmitResult,
    VerdictInput,
    VerdictResult,
)
from hub.errors import PermanentError
from hub.settings import RECONCILIATION
from tests.conftest import eventually
from tests.workflows.doubles import AlarmDouble, HubDoubles
from tests.workflows.probes import fast_policies
from worker import SANDBOX_PASSTHROUGH, by_system
from workflows.regulatory_report import CONTRACT, RegulatoryReport, ReportInput, ReportResult
from workflows.runtime import ProcessWorkflow, TaskDecision
from workflows.runtime.tasks import TaskView


def _run() -> str:
    from temporalio import activity

    return str(activity.info().workflow_id)


@dataclass
class ReportDoubles:
    """The reporting activities, answering what each test sets for its run."""

    records: dict[str, list[RecordReportInput]] = field(default_factory=lambda: defaultdict(list))
    submissions: dict[str, list[SubmitInput]] = field(default_factory=lambda: defaultdict(list))
    invalid: set[str] = field(default_factory=set)
    #: Runs the regulator never decides (always ``received``).
    undecided: set[str] = field(default_factory=set)
    #: Runs the regulator rejects.
    refused: set[str] = field(default_factory=set)
    corrections: list[OpenCorrectionInput] = field(default_factory=list)
    approval_due: float = 3600.0

    @defn("reporting.defaults", system=HUB)
    async def defaults(self) -> ReportingDefaults:
        return ReportingDefaults(
            operator_id="AT-1",
            time_zone="Europe/Vienna",
            network_source="/n",
            billing_source="/b",
            approver_groups=["regulatory"],
            follow_up_after=3600,
            escalate_after=3600,
            escalation_groups=["managers"],
            approval_due_after=self.approval_due,
            verdict_poll=0.1,
            verdict_timeout=1.0,
            due_warning=0,
            heartbeat_timeout=60,
            preparer_groups=["preparers"],
        )

    @defn("hub.process_policies")
    async def process_policies(self) -> ProcessPolicies:
        policies = fast_policies()
        quick = SystemPolicy(0.05, 1.0, 0.05, 2, 5.0, None)
        policies.systems.update({"regulator": quick, RECONCILIATION: quick, "billing": quick})
        return policies

    @defn("hub.record_report")
    async def record(self, data: RecordReportInput) -> None:
        self.records[_run()].append(data)

    @defn("hub.previous_accepted_report")
    async def previous(self, data: PreviousReportInput) -> PreviousReport | None:
        return None

    @defn("hub.open_scheduled_report")
    async def open_scheduled(self, data: OpenScheduledInput) -> OpenedReport:
        return OpenedReport("r-open", "2026-Q3", "AT-1", 1, "someone", datetime.now(UTC), True)

    @defn("hub.open_report_correction")
    async def open_correction(self, data: OpenCorrectionInput) -> OpenedCorrection:
        self.corrections.append(data)
        figures = {"investments": "1.00", **(data.manual_figures or {})}
        return OpenedCorrection(f"{data.report_id}-v2", 2, "/n2", None, figures)

    @defn("hub.archive_report")
    async def archive(self, data: ArchiveInput) -> None:
        return None

    @defn("reporting.extract", system=RECONCILIATION)
    async def extract(self, data: ExtractInput) -> ExtractResult:
        return ExtractResult({"sim_cards_in_use": 10}, [])

    @defn("reporting.render", system=RECONCILIATION)
    async def render(self, data: RenderInput) -> RenderResult:
        with outside_call():
            if _run() in self.invalid:
                raise PermanentError("the document does not validate: simCardsInUse", system="hub")
        return RenderResult("/reports/r.xml", "ab" * 32, 100)

    @defn("reporting.plausibility", system=RECONCILIATION)
    async def plausibility(self, data: PlausibilityInput) -> list[dict[str, Any]]:
        return []

    @defn("regulator.submit_report")
    async def submit(self, data: SubmitInput) -> SubmitResult:
        self.submissions[_run()].append(data)
        return SubmitResult("rcpt-1", datetime.now(UTC))

    @defn("regulator.get_submission")
    async def get_submission(self, data: VerdictInput) -> VerdictResult:
        if _run() in self.refused:
            return VerdictResult("rejected", ["smsCount missing"])
        return VerdictResult("received" if _run() in self.undecided else "accepted")


@dataclass
class Reports:
    client: Client
    task_queue: str
    doubles: ReportDoubles
    hub: HubDoubles

    async def run(
        self, prepare: Any = None, *, approve: bool = False, **changes: Any
    ) -> tuple[str, ReportResult]:
        report_id = f"r-{uuid.uuid4().hex[:10]}"
        workflow_id = CONTRACT.workflow_id(report_id)
        if prepare is not None:
            prepare(workflow_id)
        data = ReportInput(report_id, "kev-mobile-quarterly", "2026-Q3", "AT-1", 1, "alice")
        for name, value in changes.items():
            setattr(data, name, value)
        handle = await self.client.start_workflow(
            RegulatoryReport.run, data, id=workflow_id, task_queue=self.task_queue
        )
        if approve:
            task = await open_task(handle, "approval")
            await handle.execute_update(
                ProcessWorkflow.complete_task,
                TaskDecision(task.task_id, "approve", "bob", ["regulatory"]),
            )
        return workflow_id, await handle.result()


async def open_task(handle: Any, kind: str) -> TaskView:
    """The run's open task of ``kind``, once it is open."""

    async def opened() -> TaskView | None:
        tasks = await handle.query(ProcessWorkflow.open_tasks)
        return next((t for t in tasks if t.kind == kind), None)

    return await eventually(opened, timeout=20)


@pytest.fixture
async def reports(temporal_client: Client) -> AsyncIterator[Reports]:
    doubles, hub, alarms = ReportDoubles(), HubDoubles(), AlarmDouble()
    queue = f"report-tests-{uuid.uuid4()}"
    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*SANDBOX_PASSTHROUGH)
    )
    functions = by_system(
        [
            doubles.defaults,
            doubles.process_policies,
            doubles.record,
            doubles.previous,
            doubles.open_scheduled,
            doubles.open_correction,
            doubles.archive,
            doubles.extract,
            doubles.render,
            doubles.plausibility,
            doubles.submit,
            doubles.get_submission,
            hub.record_task,
            hub.park,
            hub.update_dead_letter,
            alarms.raise_alarm,
        ]
    )
    async with AsyncExitStack() as stack:
        for system, activities in functions.items():
            await stack.enter_async_context(
                Worker(
                    temporal_client,
                    task_queue=task_queue_for(queue, system),
                    workflows=[RegulatoryReport] if system == HUB else [],
                    activities=activities,
                    workflow_runner=runner,
                )
            )
        yield Reports(temporal_client, queue, doubles, hub)


async def test_a_document_that_does_not_validate_never_reaches_a_person(
    reports: Reports,
) -> None:
    workflow_id, result = await reports.run(reports.doubles.invalid.add)
    assert result.status == "failed" and "does not validate" in result.reasons[0]
    assert reports.hub.task_records[workflow_id] == []
    assert reports.doubles.submissions[workflow_id] == []
    assert reports.doubles.records[workflow_id][-1].status == "failed"


async def test_the_approvals_due_time_rejects_it(reports: Reports) -> None:
    reports.doubles.approval_due = 0.5
    try:
        workflow_id, result = await reports.run()
    finally:
        reports.doubles.approval_due = 3600.0
    assert result.status == "rejected" and "due time" in result.reasons[0]
    assert reports.doubles.submissions[workflow_id] == []
    assert [r.action for r in reports.hub.task_records[workflow_id]][-1] == "expired"


async def test_no_verdict_in_time_fails_the_version(reports: Reports) -> None:
    workflow_id, result = await reports.run(reports.doubles.undecided.add, approve=True)
    assert result.status == "failed" and "no verdict" in result.reasons[0]
    (submitted,) = reports.doubles.submissions[workflow_id]
    assert submitted.idempotency_key == f"{workflow_id}/submit"
    assert reports.doubles.records[workflow_id][-1].status == "failed"


async def test_an_approved_report_is_submitted_once_and_accepted(reports: Reports) -> None:
    workflow_id, result = await reports.run(approve=True)
    assert (result.status, result.receipt_id) == ("accepted", "rcpt-1")
    assert len(reports.doubles.submissions[workflow_id]) == 1
    statuses = [r.status for r in reports.doubles.records[workflow_id]]
    assert statuses == [
        "validating",
        "validating",
        "awaitingApproval",
        "submitting",
        "submitted",
        "accepted",
    ]


async def test_a_scheduled_run_finds_its_report_under_way(reports: Reports) -> None:
    workflow_id, result = await reports.run(report_id="", period="", version=0, prepared_by="")
    assert (result.report_id, result.status) == ("r-open", "alreadyOpen")
    assert reports.doubles.records[workflow_id] == []


async def test_a_refusal_goes_back_to_the_preparer_and_version_2_runs_on_its_own(
    reports: Reports,
) -> None:
    report_id = f"r-{uuid.uuid4().hex[:10]}"
    workflow_id = CONTRACT.workflow_id(report_id)
    reports.doubles.refused.add(workflow_id)
    data = ReportInput(report_id, "kev-mobile-quarterly", "2026-Q3", "AT-1", 1, "alice")
    handle = await reports.client.start_workflow(
        RegulatoryReport.run, data, id=workflow_id, task_queue=reports.task_queue
    )
    approval = await open_task(handle, "approval")
    await handle.execute_update(
        ProcessWorkflow.complete_task,
        TaskDecision(approval.task_id, "approve", "bob", ["regulatory"]),
    )
    correction = await open_task(handle, "correction")
    assert (correction.assignee, correction.candidate_groups) == ("alice", ["preparers"])
    assert correction.decisions == ["correct", "abandon"]

    async def recorded() -> RecordReportInput | None:
        last = reports.doubles.records[workflow_id][-1]
        return last if last.status == "awaitingCorrection" else None

    assert (await eventually(recorded, timeout=10)).task_id == correction.task_id
    await handle.execute_update(
        ProcessWorkflow.complete_task,
        TaskDecision(correction.task_id, "correct", "alice", [], "counted", {"employees": 7}),
    )
    result = await handle.result()
    assert result.status == "rejected"
    assert result.reasons[0] == "rejected by the regulator: smsCount missing"
    assert "correct by alice: counted" in result.reasons[-1]
    (opened,) = reports.doubles.corrections
    assert (opened.report_id, opened.prepared_by, opened.reason) == (report_id, "alice", "counted")
    assert opened.manual_figures == {"employees": 7}

    # Version 2 is a run of its own, with the corrected figures, and outlives this one.
    child = reports.client.get_workflow_handle(CONTRACT.workflow_id(f"{report_id}-v2"))
    described = await child.describe()
    assert (await described.memo())["version"] == "2"
    assert await open_task(child, "approval")
    await child.terminate("test over")
