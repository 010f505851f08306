"""BillingReconciliation: a period's network usage against what billing rated and billed.

The steps:

1. billing's tariffs (SOAP) and, unless the rated usage is already in a folder, billing's
   usage export (copied over HTTP into the run's workspace);
2. every input file of both sides is **split** by an activity of its own: the period's rows,
   hash-partitioned on the record id (:mod:`hub.reconciliation.engine`);
3. every partition is **reconciled** by an activity of its own: classified, priced, written;
4. the partitions' discrepancies are gathered into one Parquet file, the totals go to the hub
   database, and leakage above the threshold opens a case in the CRM.

Splits and partitions run in parallel (``parallelism`` in flight) on the ``reconciliation``
task queue, so every worker serving it takes a share: that is how a large period scales past
one machine. Only counts, paths and summaries pass through Temporal, never rows. A worker
that dies mid-run costs only the activities it had in flight: finished splits and partitions
are in the history and are not run again.

A run started by a schedule, without a period, reconciles the UTC day before its scheduled
time.

A run that fails ends its workflow execution failed (once it is recorded, cleaned up and its
alarms settled): the non-retryable ``ApplicationError`` type ``ReconciliationFailed``, whose
first detail is the :class:`ReconciliationResult`, so the Temporal UI's failure views find it;
runs recorded before (``workflow.patched(ENDS_AS_FAILED)``) still return. A cancelled run is a
Temporal cancellation (the API cancels it so) and ends canceled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

from workflows.runtime import (
    ENDS_AS_FAILED,
    ProcessContract,
    ProcessWorkflow,
    StepAborted,
    activity_options,
    describe,
    process_failure,
    set_hub_status,
    system_options,
)

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities, TariffsResult
    from activities.crm import CrmActivities, OpenCaseInput, OpenCaseResult
    from activities.policies import PolicyActivities
    from activities.reconciliation import (
        BILLING_SYSTEM,
        DiscardInput,
        FetchExportInput,
        FinalizeInput,
        ListSourcesInput,
        ReconcilePartitionInput,
        ReconcilePartitionResult,
        ReconciliationActivities,
        ReconciliationDefaults,
        ReconciliationStore,
        RecordReconciliationInput,
        SplitInput,
        SplitResult,
        leakage_pct,
    )
    from hub import search_attributes as sa
    from hub.alarms import EventType, PerceivedSeverity, ProbableCause
    from hub.models import ReconciliationStatus
    from hub.reconciliation.engine import CategoryTotal, PartitionSummary, Tolerances
    from hub.redact import redact_uri
    from hub.settings import RECONCILIATION

WORKFLOW_NAME = "BillingReconciliation"
PROCESS_KIND = "billing-reconciliation"
WORKFLOW_ID_PREFIX = "reconciliation-"
#: The ``ApplicationError.type`` a failed run fails its workflow with.
RECONCILIATION_FAILED = "ReconciliationFailed"
#: Set by Temporal on every workflow a schedule starts: the schedule's time for the run.
SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")

T = TypeVar("T")


def workflow_id_for(run_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{run_id}"


@dataclass
class ReconciliationInput:
    """What to reconcile; every field left empty takes the worker's settings."""

    run_id: str | None = None
    #: The period, ``[start, end)``; both empty: the UTC day before the (scheduled) start.
    period_start: datetime | None = None
    period_end: datetime | None = None
    #: A folder or ``pyarrow.fs`` URI of CDR files.
    network_source: str | None = None
    #: ``billing-system`` (its usage export) or a folder / URI of rated usage files.
    billing_source: str | None = None
    tolerances: Tolerances = field(default_factory=Tolerances)
    leakage_threshold_pct: float | None = None
    #: A power of two; 0 chooses from the size of the input.
    partitions: int = 0
    #: Keep the workspace's intermediate files (to look into a run).
    keep_work: bool = False


@dataclass
class ReconciliationProgress:
    phase: str
    files_total: int = 0
    files_done: int = 0
    rows_read: int = 0
    rows_kept: int = 0
    partitions_total: int = 0
    partitions_done: int = 0
    discrepancies: int = 0


@dataclass
class ReconciliationResult:
    run_id: str
    status: str
    period_start: datetime
    period_end: datetime
    discrepancy_uri: str | None = None
    summary: PartitionSummary | None = None
    leakage_pct: float = 0.0
    case_id: str | None = None
    error_message: str | None = None


def previous_day(moment: datetime) -> tuple[datetime, datetime]:
    end = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return end - timedelta(days=1), end


@workflow.defn(name=WORKFLOW_NAME)
class BillingReconciliation(ProcessWorkflow):
    def __init__(self) -> None:
        self._progress = ReconciliationProgress(phase="starting")

    @workflow.query
    def progress(self) -> ReconciliationProgress:
        return self._progress

    @workflow.run
    async def run(self, data: ReconciliationInput) -> ReconciliationResult:
        info = workflow.info()
        run_id = data.run_id or info.workflow_id.removeprefix(WORKFLOW_ID_PREFIX)
        if data.period_start and data.period_end:
            start, end = data.period_start, data.period_end
        else:
            scheduled = info.typed_search_attributes.get(SCHEDULED_START_TIME)
            start, end = previous_day(scheduled or workflow.now())
        self._run = RecordReconciliationInput(
            run_id=run_id,
            workflow_id=info.workflow_id,
            period_start=start,
            period_end=end,
            status=ReconciliationStatus.RUNNING,
        )
        try:
            defaults, threshold = await self._begin(data)
            result = await self._reconcile(data, run_id, start, end, defaults, threshold)
        except (asyncio.CancelledError, ActivityError) as err:
            if isinstance(err, ActivityError) and not is_cancelled_exception(err):
                return await self._failed(err, run_id, start, end, data.keep_work)
            # Asked to stop (Temporal cancel, or the API). Whether the cancel reached this
            # coroutine first or an activity it cancelled: say so everywhere, then stop.
            self._progress.phase = "cancelled"
            self._run.status = ReconciliationStatus.CANCELLED
            self._run.error_message = "cancelled"
            set_hub_status(sa.HubStatus.CANCELLED)
            workflow.set_current_details("cancelled")
            await self._clean_up(run_id, data.keep_work)
            await self._record()
            if isinstance(err, asyncio.CancelledError):
                raise
            raise asyncio.CancelledError() from err
        except StepAborted as err:
            return await self._failed(err, run_id, start, end, data.keep_work)
        set_hub_status(sa.HubStatus.COMPLETED)
        await self.runtime.settle()
        return result

    async def _begin(self, data: ReconciliationInput) -> tuple[ReconciliationDefaults, float]:
        """Settings, the runtime, the search attributes, and the run's row marked running."""
        defaults: ReconciliationDefaults = await workflow.execute_local_activity_method(
            ReconciliationActivities.defaults, start_to_close_timeout=timedelta(seconds=10)
        )
        policies = await workflow.execute_local_activity_method(
            PolicyActivities.process_policies, start_to_close_timeout=timedelta(seconds=10)
        )
        self.start_runtime(process=PROCESS_KIND, reference=None, policies=policies)
        workflow.upsert_search_attributes([sa.PROCESS_KIND.value_set(PROCESS_KIND)])
        set_hub_status(sa.HubStatus.RUNNING)
        threshold = (
            data.leakage_threshold_pct
            if data.leakage_threshold_pct is not None
            else defaults.leakage_threshold_pct
        )
        self._run.parameters = {
            "networkSource": redact_uri(data.network_source or defaults.network_source),
            "billingSource": redact_uri(data.billing_source or defaults.billing_source),
            "tolerances": {
                "volumeBytes": data.tolerances.volume_bytes,
                "volumeRatio": data.tolerances.volume_ratio,
                "durationSeconds": data.tolerances.duration_seconds,
                "charge": data.tolerances.charge,
                "clockSkewSeconds": data.tolerances.clock_skew_seconds,
            },
            "leakageThresholdPct": threshold,
            "partitions": data.partitions,
        }
        await self._record()
        return defaults, threshold

    async def _failed(
        self,
        err: ActivityError | StepAborted,
        run_id: str,
        start: datetime,
        end: datetime,
        keep_work: bool,
    ) -> ReconciliationResult:
        step = (self._runtime.current_step if self._runtime else None) or self._progress.phase
        message = str(err) if isinstance(err, StepAborted) else f"{step}: {describe(err)}"
        workflow.logger.warning("reconciliation failed", extra={"run": run_id})
        self._progress.phase = "failed"
        self._run.status = ReconciliationStatus.FAILED
        self._run.error_message = message
        set_hub_status(sa.HubStatus.FAILED)
        workflow.set_current_details(f"failed: {message}")
        if self._runtime is not None:
            self._runtime.alarm_failed(err, message)
        await self._clean_up(run_id, keep_work)
        await self._record()
        if self._runtime is not None:
            await self._runtime.settle()
        result = ReconciliationResult(run_id, "failed", start, end, error_message=message)
        if workflow.patched(ENDS_AS_FAILED):
            raise process_failure(
                RECONCILIATION_FAILED, f"reconciliation {run_id} failed: {message}", result
            )
        return result

    async def _clean_up(self, run_id: str, keep_work: bool) -> None:
        """The intermediate files of a run that did not finish; failing to is not a failure."""
        if keep_work or self._runtime is None:  # no runtime yet: nothing was written
            return
        try:
            await workflow.execute_activity_method(
                ReconciliationActivities.discard,
                DiscardInput(run_id),
                summary="reconciliation: remove the intermediate files",
                **activity_options(self.runtime.policies, ReconciliationActivities.discard),
            )
        except ActivityError as err:
            workflow.logger.warning("workspace not removed", extra={"error": describe(err)})

    async def _reconcile(
        self,
        data: ReconciliationInput,
        run_id: str,
        start: datetime,
        end: datetime,
        defaults: ReconciliationDefaults,
        threshold: float,
    ) -> ReconciliationResult:
        progress = self._progress
        progress.phase = "fetching"
        tariffs: TariffsResult = await self.runtime.call(
            "billing.get_tariffs", BillingActivities.get_tariffs
        )
        self._run.currency = tariffs.currency
        billing_source = data.billing_source or defaults.billing_source
        if billing_source == BILLING_SYSTEM:
            # A large export takes longer than one SOAP call: the data budget, with heartbeats.
            data_options = system_options(self.runtime.policies, RECONCILIATION)
            await self.runtime.call(
                "billing.fetch_usage_export",
                ReconciliationActivities.fetch_usage_export,
                FetchExportInput(run_id),
                start_to_close_timeout=data_options["start_to_close_timeout"],
                heartbeat_timeout=timedelta(seconds=defaults.heartbeat_timeout),
            )
        self.runtime.current_step = None
        sources = await self._data(
            ReconciliationActivities.list_sources,
            ListSourcesInput(
                run_id=run_id,
                network_source=data.network_source or defaults.network_source,
                billing_source=billing_source,
                partitions=data.partitions,
            ),
            defaults,
            "list the input files",
        )
        partitions = sources.partitions
        self._run.parameters["partitions"] = partitions
        tasks = {"network": sources.network_tasks, "billing": sources.billing_tasks}
        progress.phase = "splitting"
        progress.files_total = sources.network_files + sources.billing_files
        progress.partitions_total = partitions
        workflow.set_current_details(
            f"splitting {progress.files_total} files into {partitions} partitions"
        )

        def split(side: str, index: int) -> Callable[[], Awaitable[SplitResult]]:
            async def call() -> SplitResult:
                result: SplitResult = await self._data(
                    ReconciliationActivities.split,
                    SplitInput(
                        run_id,
                        side,
                        index,
                        partitions,
                        start,
                        end,
                        tariffs.tariffs,
                        margin_seconds=data.tolerances.clock_skew_seconds,
                    ),
                    defaults,
                    f"split {side} files, part {index}",
                )
                progress.files_done += result.files
                progress.rows_read += result.rows_read
                progress.rows_kept += result.rows_kept
                return result

            return call

        await self._bounded(
            [split(side, index) for side, count in tasks.items() for index in range(count)],
            defaults.parallelism,
        )

        progress.phase = "reconciling"
        workflow.set_current_details(f"reconciling {partitions} partitions")

        def partition(number: int) -> Callable[[], Awaitable[ReconcilePartitionResult]]:
            async def call() -> ReconcilePartitionResult:
                result: ReconcilePartitionResult = await self._data(
                    ReconciliationActivities.reconcile_partition,
                    ReconcilePartitionInput(
                        run_id=run_id,
                        partition=number,
                        partitions=partitions,
                        network_tasks=tasks["network"],
                        billing_tasks=tasks["billing"],
                        tariffs=tariffs.tariffs,
                        period_start=start,
                        period_end=end,
                        tolerances=data.tolerances,
                    ),
                    defaults,
                    f"reconcile partition {number}",
                )
                progress.partitions_done += 1
                progress.discrepancies += result.summary.discrepancies
                return result

            return call

        results = await self._bounded(
            [partition(n) for n in range(partitions)], defaults.parallelism
        )
        total = PartitionSummary()
        for result in results:
            total.add(result.summary)
        total.categories = {
            name: CategoryTotal(t.count, round(t.revenue_impact, 4))
            for name, t in sorted(total.categories.items())
        }

        progress.phase = "finalizing"
        final = await self._data(
            ReconciliationActivities.finalize,
            FinalizeInput(run_id, partitions, keep_work=data.keep_work),
            defaults,
            "gather the discrepancies",
        )
        pct = leakage_pct(total)
        self._run.summary = total
        self._run.discrepancy_uri = final.uri
        case_id = None
        if pct > threshold:
            case_id = await self._open_case(run_id, start, end, total, pct, threshold)
            self.runtime.alarms.raise_alarm(
                "leakage",
                PerceivedSeverity.MAJOR,
                EventType.QUALITY_OF_SERVICE_ALARM,
                ProbableCause.THRESHOLD_CROSSED,
                f"revenue leakage {pct:.3f}% ({total.leakage:.2f} {self._run.currency}) over "
                f"{threshold}% in {start:%Y-%m-%d}..{end:%Y-%m-%d}"
                + (f"; CRM case {case_id}" if case_id else ""),
            )
        self._run.case_id = case_id
        self._run.status = ReconciliationStatus.COMPLETED
        progress.phase = "completed"
        workflow.set_current_details(
            f"completed: {total.discrepancies} discrepancies, leakage {pct:.3f}%"
            + (f", case {case_id}" if case_id else "")
        )
        await self._record()
        return ReconciliationResult(
            run_id, "completed", start, end, final.uri, total, pct, case_id=case_id
        )

    async def _open_case(
        self,
        run_id: str,
        start: datetime,
        end: datetime,
        total: PartitionSummary,
        pct: float,
        threshold: float,
    ) -> str | None:
        """A case for revenue assurance; skippable, since the run's result stands without it."""
        lines = [
            f"{name}: {t.count} records, impact {t.revenue_impact:.2f} {self._run.currency}"
            for name, t in total.categories.items()
        ]
        result: OpenCaseResult | None = await self.runtime.call(
            "crm.open_case",
            CrmActivities.open_case,
            OpenCaseInput(
                subject=(
                    f"Revenue leakage {pct:.2f}% ({total.leakage:.2f} {self._run.currency}) "
                    f"in {start:%Y-%m-%d}..{end:%Y-%m-%d}"
                ),
                description=(
                    f"Reconciliation {run_id} found leakage of {pct:.3f}% of billed revenue, "
                    f"above the threshold of {threshold}%.\n" + "\n".join(lines)
                ),
                category="revenue-assurance",
                priority="high",
                reference=run_id,
                idempotency_key=f"{workflow.info().workflow_id}/crm.open_case",
            ),
            skippable=True,
        )
        self.runtime.current_step = None
        return result.case_id if result else None

    # --- plumbing ---------------------------------------------------------------------------

    async def _data(
        self,
        activity: Callable[..., Any],
        arg: Any,
        defaults: ReconciliationDefaults,
        summary: str,
    ) -> Any:
        """A data activity on the reconciliation queue, with a heartbeat timeout."""
        return await workflow.execute_activity_method(
            activity,
            arg,
            summary=f"reconciliation: {summary}",
            heartbeat_timeout=timedelta(seconds=defaults.heartbeat_timeout),
            # A cancelled data activity is waited for: it may still be writing.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            **activity_options(self.runtime.policies, activity),
        )

    async def _bounded(self, calls: list[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
        """Run the calls with at most ``limit`` in flight; answers in order.

        When one fails (or the run is cancelled) the others are cancelled, and this waits
        until their activities have really ended: nothing may write to the workspace after
        the run has cleaned it up.
        """
        results: list[Any] = [None] * len(calls)
        running = 0

        async def one(index: int, call: Callable[[], Awaitable[T]]) -> None:
            nonlocal running
            await workflow.wait_condition(lambda: running < limit)
            running += 1
            try:
                results[index] = await call()
            finally:
                running -= 1

        tasks = [asyncio.create_task(one(index, call)) for index, call in enumerate(calls)]
        if not tasks:
            return results
        try:
            await workflow.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            await self._stop_all(tasks)
            raise
        failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception()), None)
        if failed is not None:
            await self._stop_all(tasks)
            error = failed.exception()
            assert error is not None
            raise error
        return results

    @staticmethod
    async def _stop_all(tasks: list[asyncio.Task[None]]) -> None:
        pending = [task for task in tasks if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            await workflow.wait(pending)

    async def _record(self) -> None:
        summary = f"hub: record {self._run.status}"
        if self._runtime is not None:
            await self._runtime.record(ReconciliationStore.record, self._run, summary)
            return
        # Stopped before the policies were read: the hub's own store, retried until it answers.
        await workflow.execute_activity_method(
            ReconciliationStore.record,
            self._run,
            summary=summary,
            start_to_close_timeout=timedelta(seconds=30),
        )


# --- the process contract -------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _summary(data: ReconciliationInput) -> str:
    if data.period_start and data.period_end:
        return f"Billing reconciliation {data.period_start:%Y-%m-%d}..{data.period_end:%Y-%m-%d}"
    return "Daily billing reconciliation (the day before)"


def _memo(data: ReconciliationInput) -> dict[str, str]:
    memo = {"run": data.run_id} if data.run_id else {}
    if data.period_start and data.period_end:
        memo["period"] = f"{_iso(data.period_start)}/{_iso(data.period_end)}"
    return memo


CONTRACT: ProcessContract[ReconciliationInput] = ProcessContract(
    name=WORKFLOW_NAME,
    kind=PROCESS_KIND,
    run=BillingReconciliation.run,
    workflow_id_prefix=WORKFLOW_ID_PREFIX,
    memo=_memo,
    summary=_summary,
    log_field="reconciliationId",
)
