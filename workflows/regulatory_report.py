"""RegulatoryReport: one version of a report to the regulator, from the figures to the receipt.

The steps:

1. **extract**: the quarter's indicators from the sources reconciliation reads (billing's
   usage export is copied first when the billing source is the billing system);
2. **render and validate**: the document, checked against the type's XSD; one that does not
   validate fails the version and never reaches a person;
3. **plausibility**: the figures against the last accepted report of the same type and
   operator (none is a finding too);
4. **approval**: a human task for the approver group, never for whoever prepared the report
   (four-eyes); ``reject`` (with a comment) ends the version ``rejected``, and the preparer
   starts the next one with corrected figures or sources; the due time rejects too;
5. **submit** over SOAP with the key ``<workflow id>/submit``: a retried submission is one;
6. **verdict**: the regulator is asked for it, a durable timer between two questions, for at
   most ``HUB_REPORTING_VERDICT_TIMEOUT``;
7. **archive**: the receipt beside the exact bytes submitted; the version is ``accepted``.

A refusal by the regulator (the document, the period, the version, or a ``rejected`` verdict:
permanent) goes back to the preparer as a **correction task** (``awaitingCorrection``), assigned
to whoever prepared the version (the preparer groups may take it over): ``correct`` with the
reason, and optionally corrected manual figures or sources, ends this version ``rejected`` and
starts version n+1 (a child run that outlives this one; its approval is four-eyes against the
preparer again); ``abandon`` ends it ``rejected`` with nothing after it. The due-date alarms run
on meanwhile. An outage of the portal parks the submit step (the runtime's dead letter and task).

Due date: a ``warning`` alarm ``HUB_REPORTING_DUE_WARNING`` before it if the version is not
accepted by then, ``critical`` once it has passed; both are cleared when it is accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError

from workflows.runtime import (
    FormField,
    ProcessContract,
    ProcessWorkflow,
    StepAborted,
    TaskSpec,
    activity_options,
    describe,
    set_hub_status,
)
from workflows.runtime.failures import application_cause

with workflow.unsafe.imports_passed_through():
    from activities.policies import PolicyActivities
    from activities.reconciliation import BILLING_SYSTEM, FetchExportInput, ReconciliationActivities
    from activities.reporting import (
        SCHEDULE_PREPARER,
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
        RegulatorActivities,
        RenderInput,
        RenderResult,
        ReportingActivities,
        ReportingDefaults,
        ReportStore,
        SubmitInput,
        SubmitResult,
        VerdictInput,
        VerdictResult,
    )
    from hub import search_attributes as sa
    from hub.alarms import EventType, PerceivedSeverity, ProbableCause
    from hub.errors import CorrectionRefused, ReportRejected
    from hub.models import ReportStatus
    from hub.reporting.kev import MANUAL_FIGURES

WORKFLOW_NAME = "RegulatoryReport"
PROCESS_KIND = "regulatory-report"
WORKFLOW_ID_PREFIX = "report-"
#: Corrections whose sources the hub refused before the version ends without one.
MAX_REFUSED_CORRECTIONS = 4
#: Histories before it ended a version the regulator refused without a correction task.
CORRECTION_TASK_PATCH = "regulator-refusal-correction-task"
#: Set by Temporal on every workflow a schedule starts: the schedule's time for the run.
SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@dataclass
class ReportInput:
    """One version of one report; sources left empty take the worker's settings. A schedule
    gives the report type (and operator, sources) only: the run opens its own version."""

    report_id: str
    report_type: str
    period: str
    operator_id: str
    version: int
    #: Who started it: excluded from deciding its approval.
    prepared_by: str
    network_source: str | None = None
    billing_source: str | None = None
    manual_figures: dict[str, Any] | None = None
    #: The receipt of the accepted version this one corrects.
    supersedes: str | None = None
    reason: str | None = None
    due_date: datetime | None = None


@dataclass
class ReportResult:
    report_id: str
    status: str
    receipt_id: str | None = None
    reasons: list[str] = field(default_factory=list)


class VersionEnded(Exception):
    """The version ends here, with ``status`` and ``reasons`` (rejected, failed)."""

    def __init__(self, status: ReportStatus, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.status = status
        self.reasons = reasons


@workflow.defn(name=WORKFLOW_NAME)
class RegulatoryReport(ProcessWorkflow):
    def __init__(self) -> None:
        self._status = ReportStatus.EXTRACTING
        self._accepted = False

    @workflow.query
    def report_status(self) -> str:
        return self._status.value

    @workflow.run
    async def run(self, data: ReportInput) -> ReportResult:
        defaults: ReportingDefaults = await workflow.execute_local_activity_method(
            ReportingActivities.defaults, start_to_close_timeout=timedelta(seconds=10)
        )
        policies = await workflow.execute_local_activity_method(
            PolicyActivities.process_policies, start_to_close_timeout=timedelta(seconds=10)
        )
        if not data.report_id:
            opened = await self._open_scheduled(data, policies)
            if opened.already_open:
                workflow.set_current_details(f"{opened.report_id} is under way already")
                return ReportResult(opened.report_id, "alreadyOpen")
            data = dataclasses.replace(
                data,
                report_id=opened.report_id,
                period=opened.period,
                operator_id=opened.operator_id,
                version=opened.version,
                prepared_by=opened.prepared_by,
                due_date=opened.due_date,
            )
        self.start_runtime(
            process=PROCESS_KIND,
            reference=data.report_id,
            policies=policies,
            reference_kind="report",
        )
        set_hub_status(sa.HubStatus.RUNNING)
        due = asyncio.create_task(self._due_alarms(data, defaults))
        try:
            result = await self._steps(data, defaults)
        except VersionEnded as ended:
            result = await self._ended(data, ended.status, ended.reasons)
        except (ActivityError, StepAborted) as err:
            step = self.runtime.current_step or self._status.value
            message = str(err) if isinstance(err, StepAborted) else f"{step}: {describe(err)}"
            self.runtime.alarm_failed(err, message)
            result = await self._ended(data, ReportStatus.FAILED, [message])
        due.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await due
        await self.runtime.settle()
        return result

    async def _open_scheduled(self, data: ReportInput, policies: Any) -> OpenedReport:
        """A run its schedule started has no row yet: the quarter before its scheduled time."""
        info = workflow.info()
        scheduled = info.typed_search_attributes.get(SCHEDULED_START_TIME) or workflow.now()
        opened: OpenedReport = await workflow.execute_activity_method(
            ReportStore.open_scheduled,
            OpenScheduledInput(
                report_type=data.report_type,
                workflow_id=info.workflow_id,
                scheduled_at=scheduled,
                operator_id=data.operator_id or None,
                network_source=data.network_source,
                billing_source=data.billing_source,
            ),
            summary="hub: open the scheduled report",
            **activity_options(policies, ReportStore.open_scheduled),
        )
        return opened

    async def _steps(self, data: ReportInput, defaults: ReportingDefaults) -> ReportResult:
        wid = workflow.info().workflow_id
        # 1. extract
        billing_source = data.billing_source or defaults.billing_source
        if billing_source == BILLING_SYSTEM:
            await self.runtime.call(
                "billing.fetch_usage_export",
                ReconciliationActivities.fetch_usage_export,
                FetchExportInput(data.report_id),
                heartbeat_timeout=timedelta(seconds=defaults.heartbeat_timeout),
            )
        extracted: ExtractResult = await self.runtime.call(
            "reporting.extract",
            ReportingActivities.extract,
            ExtractInput(
                report_id=data.report_id,
                report_type=data.report_type,
                period=data.period,
                network_source=data.network_source or defaults.network_source,
                billing_source=billing_source,
                manual_figures=data.manual_figures,
            ),
        )
        # 2. render and validate
        await self._record(
            data,
            ReportStatus.VALIDATING,
            indicators=extracted.indicators,
            findings=extracted.findings,
        )
        document: RenderResult = await self.runtime.call(
            "reporting.render",
            ReportingActivities.render,
            RenderInput(
                report_id=data.report_id,
                report_type=data.report_type,
                operator_id=data.operator_id,
                period=data.period,
                version=data.version,
                generated_at=workflow.now(),
                indicators=extracted.indicators,
                supersedes=data.supersedes,
            ),
        )
        await self._record(
            data,
            ReportStatus.VALIDATING,
            document_uri=document.uri,
            document_sha256=document.sha256,
        )
        # 3. plausibility
        previous: PreviousReport | None = await self.runtime.record(
            ReportStore.previous_accepted,
            PreviousReportInput(data.report_type, data.operator_id, data.period),
            "hub: the last accepted report",
        )
        plausibility: list[dict[str, Any]] = await self.runtime.call(
            "reporting.plausibility",
            ReportingActivities.plausibility,
            PlausibilityInput(
                data.report_type, extracted.indicators, previous.indicators if previous else None
            ),
        )
        findings = extracted.findings + plausibility
        # 4. approval
        outcome = await self._approval(data, defaults, extracted.indicators, findings, document)
        if outcome.decision != "approve":
            why = outcome.comment or ("the approval's due time passed" if outcome.expired else "")
            raise VersionEnded(ReportStatus.REJECTED, [f"rejected by {outcome.decided_by}: {why}"])
        # 5. submit
        await self._record(
            data, ReportStatus.SUBMITTING, task_closed=True, approved_by=outcome.decided_by
        )
        try:
            receipt: SubmitResult = await self.runtime.call(
                "regulator.submit_report",
                RegulatorActivities.submit_report,
                SubmitInput(
                    report_id=data.report_id,
                    operator_id=data.operator_id,
                    report_type=data.report_type,
                    period=data.period,
                    version=data.version,
                    document_uri=document.uri,
                    document_sha256=document.sha256,
                    idempotency_key=f"{wid}/submit",
                    supersedes=data.supersedes,
                ),
            )
        except ActivityError as err:
            cause = application_cause(err)
            if cause is None or cause.type != ReportRejected.__name__:
                raise
            return await self._refused(
                data, defaults, extracted, [f"refused by the regulator: {cause.message}"], None
            )
        self.runtime.current_step = None
        await self._record(
            data,
            ReportStatus.SUBMITTED,
            receipt_id=receipt.receipt_id,
            received_at=receipt.received_at,
        )
        # 6. verdict
        verdict = await self._verdict(receipt, defaults)
        # 7. archive
        await self.runtime.record(
            ReportStore.archive,
            ArchiveInput(
                data.report_id,
                document.uri,
                document.sha256,
                receipt.receipt_id,
                receipt.received_at,
                verdict.status,
                verdict.reasons,
            ),
            "hub: archive the receipt",
        )
        if verdict.status != "accepted":
            return await self._refused(
                data,
                defaults,
                extracted,
                [f"rejected by the regulator: {reason}" for reason in verdict.reasons]
                or ["rejected by the regulator"],
                receipt.receipt_id,
            )
        self._accepted = True
        await self._record(
            data,
            ReportStatus.ACCEPTED,
            verdict=verdict.status,
            reasons=[],
            document_uri=document.uri,
            document_sha256=document.sha256,
        )
        set_hub_status(sa.HubStatus.COMPLETED)
        workflow.set_current_details(f"accepted: receipt `{receipt.receipt_id}`")
        self.runtime.alarms.clear_matching("due/", "the report was accepted")
        return ReportResult(data.report_id, ReportStatus.ACCEPTED.value, receipt.receipt_id)

    async def _approval(
        self,
        data: ReportInput,
        defaults: ReportingDefaults,
        indicators: dict[str, Any],
        findings: list[dict[str, Any]],
        document: RenderResult,
    ) -> Any:
        must_acknowledge = any(finding.get("requires_ack", True) for finding in findings)
        spec = TaskSpec(
            kind="approval",
            title=f"Approve {data.report_type} {data.period} v{data.version} for the regulator",
            description=(
                f"Prepared by {data.prepared_by}. Check the figures and the findings; "
                "approve to submit it to the regulator, or reject with the reason."
                + (f" Correction: {data.reason}" if data.reason else "")
            ),
            decisions=["approve", "reject"],
            candidate_groups=list(defaults.approver_groups),
            reference=data.report_id,
            form=[
                FormField(
                    "findingsAcknowledged",
                    "boolean",
                    required=must_acknowledge,
                    label="I have read every finding",
                    equals=True if must_acknowledge else None,
                )
            ],
            form_decisions=["approve"],
            excluded_deciders=[data.prepared_by],
            # A finding that needs acknowledging is acknowledged with a comment.
            comment_required=["reject", "approve"] if must_acknowledge else ["reject"],
            evidence={
                "reportType": data.report_type,
                "period": data.period,
                "version": data.version,
                "indicators": indicators,
                "findings": findings,
                "document": {
                    "href": f"/regulatoryReports/{data.report_id}/document",
                    "sha256": document.sha256,
                    "size": document.size,
                },
            },
            follow_up_after=defaults.follow_up_after,
            escalate_after=defaults.escalate_after,
            escalation_groups=list(defaults.escalation_groups),
            due_after=defaults.approval_due_after,
            expiry_decision="reject",
            priority=70,
        )
        # Opened and then waited for (not Runtime.ask): the row names the task meanwhile.
        self._status = ReportStatus.AWAITING_APPROVAL
        task = await self.runtime.tasks.open(spec)
        await self._record(data, ReportStatus.AWAITING_APPROVAL, findings=findings, task_id=task.id)
        try:
            outcome = await self.runtime.tasks.outcome(task.id, stop=self.runtime.stop_requested)
        except asyncio.CancelledError:
            # As Runtime.ask does: a cancelled run leaves no task open in the inbox.
            await self.runtime.tasks.cancel(task.id, "the report was cancelled")
            raise
        set_hub_status(sa.HubStatus.RUNNING)
        return outcome

    async def _refused(
        self,
        data: ReportInput,
        defaults: ReportingDefaults,
        extracted: ExtractResult,
        reasons: list[str],
        receipt_id: str | None,
    ) -> ReportResult:
        """The regulator refused the version: its preparer corrects it (version n+1) or
        abandons it, in a task; histories from before the task end it ``rejected`` at once."""
        if not workflow.patched(CORRECTION_TASK_PATCH):
            raise VersionEnded(ReportStatus.REJECTED, reasons)
        refusal: str | None = None
        for _ in range(MAX_REFUSED_CORRECTIONS + 1):
            outcome = await self._correction_task(
                data, defaults, extracted, reasons, receipt_id, refusal
            )
            why = f"{outcome.decision} by {outcome.decided_by}: {outcome.comment}"
            if outcome.decision != "correct":
                raise VersionEnded(ReportStatus.REJECTED, [*reasons, why])
            fields = outcome.fields
            figures = {name: fields[name] for name, *_ in MANUAL_FIGURES if name in fields}
            try:
                opened: OpenedCorrection = await self.runtime.record(
                    ReportStore.open_correction,
                    OpenCorrectionInput(
                        report_id=data.report_id,
                        workflow_id_prefix=WORKFLOW_ID_PREFIX,
                        prepared_by=outcome.decided_by,
                        reason=outcome.comment or "",
                        reasons=[*reasons, why],
                        network_source=fields.get("networkSource") or None,
                        billing_source=fields.get("billingSource") or None,
                        manual_figures=figures or None,
                    ),
                    "hub: open the corrected version",
                )
                break
            except ActivityError as err:
                cause = application_cause(err)
                if cause is None or cause.type != CorrectionRefused.__name__:
                    raise
                # A source the hub may not read: asked again, saying why, nothing recorded.
                refusal = cause.message
        else:
            # Bounded, so a run's history does not grow without end: the preparer starts the
            # next version by hand (POST) with sources the hub reads.
            raise VersionEnded(
                ReportStatus.REJECTED,
                [*reasons, f"{MAX_REFUSED_CORRECTIONS + 1} corrections refused; last: {refusal}"],
            )
        following = dataclasses.replace(
            data,
            report_id=opened.report_id,
            version=opened.version,
            prepared_by=outcome.decided_by,
            network_source=opened.network_source,
            billing_source=opened.billing_source,
            manual_figures=opened.manual_figures,
            reason=outcome.comment,
        )
        await CONTRACT.start_next(following, opened.report_id)
        self._status = ReportStatus.REJECTED
        set_hub_status(sa.HubStatus.COMPLETED)
        workflow.set_current_details(
            f"rejected: {'; '.join(reasons)}; corrected as version {opened.version} "
            f"({opened.report_id})"
        )
        return ReportResult(data.report_id, ReportStatus.REJECTED.value, reasons=[*reasons, why])

    async def _correction_task(
        self,
        data: ReportInput,
        defaults: ReportingDefaults,
        extracted: ExtractResult,
        reasons: list[str],
        receipt_id: str | None,
        refusal: str | None,
    ) -> Any:
        """The preparer's correction task, and its outcome; ``refusal``: why the last
        correction could not be taken."""
        preparer = data.prepared_by if data.prepared_by != SCHEDULE_PREPARER else None
        again = f" The last correction was refused: {refusal}." if refusal else ""
        spec = TaskSpec(
            kind="correction",
            title=f"Correct {data.report_type} {data.period} v{data.version}: "
            "the regulator refused it",
            description=(
                "The regulator refused this version: " + "; ".join(reasons) + ". Correct it "
                "(version n+1, with the reason and any corrected manual figures or sources; "
                "it is approved again by a second person) or abandon it." + again
            ),
            decisions=["correct", "abandon"],
            candidate_groups=list(defaults.preparer_groups),
            assignee=preparer,
            reference=data.report_id,
            form=[
                *(
                    FormField(name, kind, label=label, pattern=pattern, minimum=minimum)
                    for name, kind, label, pattern, minimum in MANUAL_FIGURES
                ),
                FormField("networkSource", "string", label="CDR folder or URI"),
                FormField("billingSource", "string", label="billing-system or a folder / URI"),
            ],
            form_decisions=["correct"],
            comment_required=["correct", "abandon"],
            evidence={
                "reportType": data.report_type,
                "period": data.period,
                "version": data.version,
                "reasons": reasons,
                "receiptId": receipt_id,
                "indicators": extracted.indicators,
                "manualFigures": data.manual_figures or {},
                "document": {"href": f"/regulatoryReports/{data.report_id}/document"},
                **({"refusedCorrection": refusal} if refusal else {}),
            },
            follow_up_after=defaults.follow_up_after,
            escalate_after=defaults.escalate_after,
            escalation_groups=list(defaults.escalation_groups),
            priority=80,
        )
        self.runtime.current_step = None
        self._status = ReportStatus.AWAITING_CORRECTION
        task = await self.runtime.tasks.open(spec)
        await self._record(data, ReportStatus.AWAITING_CORRECTION, task_id=task.id, reasons=reasons)
        try:
            outcome = await self.runtime.tasks.outcome(task.id, stop=self.runtime.stop_requested)
        except asyncio.CancelledError:
            await self.runtime.tasks.cancel(task.id, "the report was cancelled")
            raise
        set_hub_status(sa.HubStatus.RUNNING)
        return outcome

    async def _verdict(self, receipt: SubmitResult, defaults: ReportingDefaults) -> VerdictResult:
        deadline = workflow.now() + timedelta(seconds=defaults.verdict_timeout)
        while True:
            verdict: VerdictResult = await self.runtime.call(
                "regulator.get_submission",
                RegulatorActivities.get_submission,
                VerdictInput(receipt.receipt_id),
            )
            self.runtime.current_step = None
            if verdict.status in ("accepted", "rejected"):
                return verdict
            if workflow.now() >= deadline:
                raise VersionEnded(
                    ReportStatus.FAILED,
                    [f"no verdict from the regulator within {defaults.verdict_timeout:.0f}s "
                     f"(receipt {receipt.receipt_id}, last {verdict.status})"],
                )  # fmt: skip
            workflow.set_current_details(f"waiting for the regulator's verdict ({verdict.status})")
            await workflow.sleep(timedelta(seconds=defaults.verdict_poll))

    async def _due_alarms(self, data: ReportInput, defaults: ReportingDefaults) -> None:
        """``warning`` before the due date, ``critical`` after it, while nothing is accepted."""
        if data.due_date is None:
            return
        stages = (
            (data.due_date - timedelta(seconds=defaults.due_warning), PerceivedSeverity.WARNING),
            (data.due_date, PerceivedSeverity.CRITICAL),
        )
        for moment, severity in stages:
            wait = moment - workflow.now()
            if wait > timedelta(0):
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: self._accepted, timeout=wait)
            if self._accepted:
                return
            self.runtime.alarms.raise_alarm(
                "due/" + severity.name.lower(),
                severity,
                EventType.PROCESSING_ERROR_ALARM,
                ProbableCause.THRESHOLD_CROSSED,
                f"{data.report_type} {data.period} for {data.operator_id} is due "
                f"{data.due_date:%Y-%m-%d} and not accepted yet",
            )

    async def _ended(
        self, data: ReportInput, status: ReportStatus, reasons: list[str]
    ) -> ReportResult:
        self._status = status
        set_hub_status(
            sa.HubStatus.FAILED if status == ReportStatus.FAILED else sa.HubStatus.COMPLETED
        )
        workflow.set_current_details(f"{status.value}: {'; '.join(reasons)}")
        await self._record(
            data,
            status,
            task_closed=True,
            reasons=reasons,
            error_message="; ".join(reasons) if status == ReportStatus.FAILED else None,
        )
        return ReportResult(data.report_id, status.value, reasons=reasons)

    # --- plumbing ---------------------------------------------------------------------------

    async def _record(self, data: ReportInput, status: ReportStatus, **fields: Any) -> None:
        self._status = status
        await self.runtime.record(
            ReportStore.record,
            RecordReportInput(report_id=data.report_id, status=status.value, **fields),
            f"hub: report {status.value}",
        )


# --- the process contract -------------------------------------------------------------------


def _summary(data: ReportInput) -> str:
    return f"{data.report_type} {data.period} v{data.version} for {data.operator_id}"


def _memo(data: ReportInput) -> dict[str, str]:
    memo = {
        "report": data.report_id,
        "reportType": data.report_type,
        "period": data.period,
        "operator": data.operator_id,
        "version": str(data.version),
        "preparedBy": data.prepared_by,
    }
    if data.supersedes:
        memo["supersedes"] = data.supersedes
    return memo


CONTRACT: ProcessContract[ReportInput] = ProcessContract(
    name=WORKFLOW_NAME,
    kind=PROCESS_KIND,
    run=RegulatoryReport.run,
    workflow_id_prefix=WORKFLOW_ID_PREFIX,
    memo=_memo,
    summary=_summary,
    log_field="reportId",
)
