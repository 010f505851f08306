"""InventoryAudit: the HSS, billing and CRM subscriber inventories against the hub's record.

The steps:

1. each system's inventory is read, page by page, into a Parquet file of the audit's
   workspace (``hss.read_inventory``, ``billing.read_inventory`` with billing's catalogue,
   ``crm.read_inventory``): steps of the runtime, so a system that is down parks the audit
   for an operator rather than failing it;
2. the hub's own record (the latest completed order of every IMSI) is read from the hub
   database into the workspace;
3. the four are compared, columnar (:mod:`hub.inventory.engine`), every difference
   classified and priced, into ``differences.parquet``;
4. the totals per category go to the hub database; the intermediate files are removed;
5. the differences with an obvious repair (subscribers in the HSS that no completed order
   names) are proposed as one human task; approved, they are removed from the HSS.

Only paths, counts and totals pass through Temporal, never a subscriber row. A run started by
the daily schedule takes its audit id from its workflow id (``daily-<time>``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

from workflows.runtime import (
    ProcessContract,
    ProcessWorkflow,
    StepAborted,
    TaskSpec,
    activity_options,
    describe,
    set_hub_status,
    system_options,
)

with workflow.unsafe.imports_passed_through():
    from activities.inventory import (
        CompareInput,
        CompareResult,
        DiscardInventoryInput,
        InventoryActivities,
        InventoryAuditStore,
        ReadInventoryInput,
        ReadInventoryResult,
        RecordInventoryAuditInput,
        RemoveUnknownInput,
        RemoveUnknownResult,
    )
    from activities.policies import PolicyActivities
    from hub import search_attributes as sa
    from hub.inventory.engine import AuditSummary
    from hub.models import InventoryAuditStatus
    from hub.settings import RECONCILIATION

WORKFLOW_NAME = "InventoryAudit"
PROCESS_KIND = "inventory-audit"
WORKFLOW_ID_PREFIX = "inventory-audit-"


@dataclass
class InventoryAuditInput:
    """What to audit and how; the defaults suit a production inventory."""

    audit_id: str | None = None
    #: Subscribers per page read from each system.
    page_size: int = 1000
    #: Seconds without a heartbeat (a page read) after which a read is retried.
    heartbeat_timeout: float = 120.0
    #: Keep the workspace's side files (to look into an audit).
    keep_work: bool = False
    #: Ask a person to approve the obvious repairs (one task per audit).
    propose_repairs: bool = True
    #: Seconds until an unanswered repair task expires (rejected: nothing is repaired).
    repair_due_seconds: float = 7 * 86_400.0


@dataclass
class InventoryAuditProgress:
    phase: str
    records: dict[str, int]


@dataclass
class InventoryAuditResult:
    audit_id: str
    status: str
    differences_uri: str | None = None
    summary: AuditSummary | None = None
    error_message: str | None = None
    #: The repair task's decision (None: nothing to repair, or not proposed).
    repair_decision: str | None = None
    repaired: int = 0


@workflow.defn(name=WORKFLOW_NAME)
class InventoryAudit(ProcessWorkflow):
    def __init__(self) -> None:
        self._progress = InventoryAuditProgress(phase="starting", records={})

    @workflow.query
    def progress(self) -> InventoryAuditProgress:
        return self._progress

    @workflow.run
    async def run(self, data: InventoryAuditInput) -> InventoryAuditResult:
        info = workflow.info()
        audit_id = data.audit_id or info.workflow_id.removeprefix(WORKFLOW_ID_PREFIX)
        self._record_input = RecordInventoryAuditInput(
            audit_id=audit_id, workflow_id=info.workflow_id, status=InventoryAuditStatus.RUNNING
        )
        try:
            policies = await workflow.execute_local_activity_method(
                PolicyActivities.process_policies, start_to_close_timeout=timedelta(seconds=10)
            )
            self.start_runtime(
                process=PROCESS_KIND, reference=audit_id, policies=policies, reference_kind="audit"
            )
            set_hub_status(sa.HubStatus.RUNNING)
            await self._record()
            result = await self._audit(data, audit_id)
        except (asyncio.CancelledError, ActivityError, StepAborted) as err:
            cancelled = isinstance(err, asyncio.CancelledError) or (
                isinstance(err, ActivityError) and is_cancelled_exception(err)
            )
            message = "cancelled" if cancelled else self._failure(err)
            await self._fail(audit_id, err, message, data.keep_work, alarm=not cancelled)
            if cancelled:
                raise
            return InventoryAuditResult(audit_id, "failed", error_message=message)
        set_hub_status(sa.HubStatus.COMPLETED)
        await self.runtime.settle()
        return result

    async def _audit(self, data: InventoryAuditInput, audit_id: str) -> InventoryAuditResult:
        read = ReadInventoryInput(audit_id, page_size=data.page_size)
        # A whole inventory takes longer than one call: the data budget, with heartbeats.
        budget = {
            "start_to_close_timeout": system_options(self.runtime.policies, RECONCILIATION)[
                "start_to_close_timeout"
            ],
            "heartbeat_timeout": timedelta(seconds=data.heartbeat_timeout),
        }
        self._progress.phase = "reading"
        for step, activity in (
            ("hss.read_inventory", InventoryActivities.read_hss),
            ("billing.read_inventory", InventoryActivities.read_billing),
            ("crm.read_inventory", InventoryActivities.read_crm),
        ):
            side: ReadInventoryResult = await self.runtime.call(step, activity, read, **budget)
            self._progress.records[side.side] = side.rows
            if side.currency:
                self._record_input.currency = side.currency
        self.runtime.current_step = "hub.read_inventory_record"
        hub: ReadInventoryResult = await self._data(
            InventoryActivities.read_hub, read, data, "the hub's record"
        )
        self._progress.records["hub"] = hub.rows
        self._progress.phase = "comparing"
        self.runtime.current_step = "inventory.compare"
        compared: CompareResult = await self._data(
            InventoryActivities.compare, CompareInput(audit_id), data, "compare"
        )
        self.runtime.current_step = None
        summary = compared.summary
        self._record_input.status = InventoryAuditStatus.COMPLETED
        self._record_input.summary = summary
        self._record_input.differences_uri = compared.uri
        # Cleaned up before the row says completed: whoever reads it sees the final workspace.
        await self._discard(audit_id, data.keep_work)
        await self._record()
        self._progress.phase = "completed"
        workflow.set_current_details(
            f"completed: {summary.differences} differences, "
            f"{summary.revenue_at_stake:.2f} {self._record_input.currency} a month at stake"
        )
        result = InventoryAuditResult(audit_id, "completed", compared.uri, summary)
        if compared.unknown_in_hss and data.propose_repairs:
            await self._repair(audit_id, compared, data, budget, result)
        return result

    async def _repair(
        self,
        audit_id: str,
        compared: CompareResult,
        data: InventoryAuditInput,
        budget: dict[str, Any],
        result: InventoryAuditResult,
    ) -> None:
        """One task per audit for the differences with an obvious repair; approved, the repair
        runs through the normal adapters. The audit's findings stand whatever the decision."""
        count = compared.unknown_in_hss
        self._progress.phase = "awaiting repair approval"
        outcome = await self.runtime.ask(
            TaskSpec(
                kind="inventory-repair",
                title=f"Approve repairs for {count} differences",
                description=(
                    f"Inventory audit {audit_id} found {count} subscribers in the HSS that no "
                    "completed order names (unknown_to_hub). Approve removes them from the HSS; "
                    "reject leaves them."
                ),
                decisions=["approve", "reject"],
                candidate_groups=list(self.runtime.policies.operator_groups),
                reference=audit_id,
                evidence={
                    "audit": audit_id,
                    "category": "unknown_to_hub",
                    "system": "hss",
                    "repair": "hss.remove_unknown_subscribers",
                    "subscribers": count,
                },
                due_after=data.repair_due_seconds,
                expiry_decision="reject",
            )
        )
        result.repair_decision = outcome.decision
        if outcome.decision == "approve":
            self._progress.phase = "repairing"
            try:
                removed: RemoveUnknownResult = await self.runtime.call(
                    "hss.remove_unknown_subscribers",
                    InventoryActivities.remove_unknown,
                    RemoveUnknownInput(audit_id, f"{workflow.info().workflow_id}/repair"),
                    **budget,
                )
            except (ActivityError, StepAborted) as err:
                if isinstance(err, ActivityError) and is_cancelled_exception(err):
                    raise
                # The audit's findings are recorded and stand: a failed repair is its own
                # alarm, not a failed audit (the next audit finds what is left).
                message = self._failure(err)
                self.runtime.alarm_failed(err, f"repair of audit {audit_id}: {message}")
                result.repair_decision = "failed"
                workflow.set_current_details(f"completed; repair failed: {message}")
                return
            self.runtime.current_step = None
            result.repaired = removed.removed
        self._progress.phase = "completed"
        workflow.set_current_details(
            f"completed; repairs {outcome.decision}d"
            + (f": {result.repaired} removed from the HSS" if result.repaired else "")
        )

    # --- failure ----------------------------------------------------------------------------

    def _failure(self, err: BaseException) -> str:
        if isinstance(err, StepAborted):
            return str(err)
        step = (self._runtime.current_step if self._runtime else None) or self._progress.phase
        return f"{step}: {describe(err)}"

    async def _fail(
        self, audit_id: str, err: BaseException, message: str, keep_work: bool, *, alarm: bool
    ) -> None:
        workflow.logger.warning("inventory audit failed", extra={"audit": audit_id})
        self._progress.phase = "failed"
        self._record_input.status = InventoryAuditStatus.FAILED
        self._record_input.error_message = message
        set_hub_status(sa.HubStatus.FAILED)
        workflow.set_current_details(f"failed: {message}")
        if self._runtime is not None:
            if alarm:
                self._runtime.alarm_failed(err, message)
            await self._discard(audit_id, keep_work)
        await self._record()
        if self._runtime is not None:
            await self._runtime.settle()

    # --- plumbing ---------------------------------------------------------------------------

    async def _data(
        self, activity: Callable[..., Any], arg: Any, data: InventoryAuditInput, summary: str
    ) -> Any:
        """A data activity (the hub's record, the comparison): the data budget, whichever
        queue it runs on (the hub's record is a bulk read, not one of the hub's quick writes),
        with a heartbeat timeout."""
        budget = system_options(self.runtime.policies, RECONCILIATION)["start_to_close_timeout"]
        options = {**activity_options(self.runtime.policies, activity)}
        options["start_to_close_timeout"] = budget
        return await workflow.execute_activity_method(
            activity,
            arg,
            summary=f"inventory audit: {summary}",
            heartbeat_timeout=timedelta(seconds=data.heartbeat_timeout),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            **options,
        )

    async def _discard(self, audit_id: str, keep_work: bool) -> None:
        """The intermediate files; failing to remove them is not a failure."""
        if keep_work:
            return
        try:
            await workflow.execute_activity_method(
                InventoryActivities.discard,
                DiscardInventoryInput(audit_id),
                summary="inventory audit: remove the intermediate files",
                **activity_options(self.runtime.policies, InventoryActivities.discard),
            )
        except ActivityError as err:
            workflow.logger.warning("workspace not removed", extra={"error": describe(err)})

    async def _record(self) -> None:
        summary = f"hub: record {self._record_input.status}"
        if self._runtime is not None:
            await self._runtime.record(InventoryAuditStore.record, self._record_input, summary)
            return
        # Stopped before the policies were read: the hub's own store, retried until it answers.
        await workflow.execute_activity_method(
            InventoryAuditStore.record,
            self._record_input,
            summary=summary,
            start_to_close_timeout=timedelta(seconds=30),
        )


# --- the process contract -------------------------------------------------------------------


def _summary(data: InventoryAuditInput) -> str:
    if data.audit_id:
        return f"Inventory audit {data.audit_id}: HSS, billing and CRM against the hub"
    return "Daily inventory audit: HSS, billing and CRM against the hub"


def _memo(data: InventoryAuditInput) -> dict[str, str]:
    return {"audit": data.audit_id} if data.audit_id else {}


CONTRACT: ProcessContract[InventoryAuditInput] = ProcessContract(
    name=WORKFLOW_NAME,
    kind=PROCESS_KIND,
    run=InventoryAudit.run,
    workflow_id_prefix=WORKFLOW_ID_PREFIX,
    memo=_memo,
    summary=_summary,
    log_field="auditId",
)
