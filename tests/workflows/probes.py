"""Test-only workflows that stand on the process runtime, as a process does.

``ApprovalProbe`` asks a person one question (a :class:`TaskSpec` from its input) and returns
the outcome; ``ParkProbe`` runs one step on the probe system, which parks when the system is
down; ``TogetherProbe`` runs two such steps at the same time, each pushing its undo. They take
their :class:`ProcessPolicies` as input instead of reading them from settings through the local
activity, so no policy double is needed and each test picks its timings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from temporalio import workflow

from workflows.runtime import ProcessWorkflow, StepAborted, TaskOutcome, TaskSpec

with workflow.unsafe.imports_passed_through():
    from activities.definitions import HUB
    from activities.policies import ProcessPolicies, SystemPolicy
    from hub.settings import ALARMS
    from tests.workflows.doubles import PROBE, ProbeSystem, StepInput, StepResult

APPROVAL_PROCESS = "approval-probe"
PARK_PROCESS = "park-probe"


def fast_policies(
    *, park_timeout: float = 60.0, operator_groups: list[str] | None = None
) -> ProcessPolicies:
    """Policies with retries in tens of milliseconds; the probe system gives up after two
    attempts (so its step parks at once), the hub's own store never does."""
    quick = SystemPolicy(
        initial_interval=0.05,
        backoff_coefficient=1.0,
        maximum_interval=0.05,
        maximum_attempts=2,
        attempt_timeout=5.0,
        schedule_to_close=None,
    )
    store = SystemPolicy(
        initial_interval=0.05,
        backoff_coefficient=2.0,
        maximum_interval=0.5,
        maximum_attempts=0,
        attempt_timeout=5.0,
        schedule_to_close=None,
    )
    return ProcessPolicies(
        systems={PROBE: quick, ALARMS: quick, HUB: store},
        park_timeout=park_timeout,
        operator_groups=operator_groups or ["ops"],
    )


@dataclass
class ApprovalProbeInput:
    reference: str
    spec: TaskSpec
    policies: ProcessPolicies


@dataclass
class ApprovalProbeResult:
    outcome: TaskOutcome | None = None
    #: The runtime refused the task spec (``ValueError``), before recording anything.
    refused: str | None = None


@workflow.defn(name="ApprovalProbe")
class ApprovalProbe(ProcessWorkflow):
    @workflow.run
    async def run(self, data: ApprovalProbeInput) -> ApprovalProbeResult:
        self.start_runtime(
            process=APPROVAL_PROCESS, reference=data.reference, policies=data.policies
        )
        try:
            outcome = await self.runtime.ask(data.spec)
        except ValueError as err:
            return ApprovalProbeResult(refused=str(err))
        await self.runtime.settle()
        return ApprovalProbeResult(outcome=outcome)


@dataclass
class ParkProbeInput:
    reference: str
    step: StepInput
    policies: ProcessPolicies
    skippable: bool = False


@dataclass
class ParkProbeResult:
    result: StepResult | None = None
    skipped: bool = False
    #: ``str(StepAborted)``, and who aborted.
    aborted: str | None = None
    aborted_by: str | None = None


@workflow.defn(name="ParkProbe")
class ParkProbe(ProcessWorkflow):
    @workflow.run
    async def run(self, data: ParkProbeInput) -> ParkProbeResult:
        self.start_runtime(process=PARK_PROCESS, reference=data.reference, policies=data.policies)
        try:
            result = await self.runtime.call(
                f"{PROBE}.step", ProbeSystem.step, data.step, skippable=data.skippable
            )
        except StepAborted as err:
            await self.runtime.settle()
            return ParkProbeResult(aborted=str(err), aborted_by=err.decided_by)
        await self.runtime.settle()
        return ParkProbeResult(result=result, skipped=result is None)


@dataclass
class TogetherProbeInput:
    reference: str
    first: StepInput
    second: StepInput
    policies: ProcessPolicies


@dataclass
class TogetherProbeResult:
    results: list[StepResult] = field(default_factory=list)
    #: ``str(StepAborted)``, and the runtime's current step when it was raised.
    aborted: str | None = None
    failed_step: str | None = None


def undo_of(step: StepInput) -> StepInput:
    """The input of a step's undo (another call of the probe step, its own key)."""
    return dataclasses.replace(step, idempotency_key=f"{step.idempotency_key}/undo")


@workflow.defn(name="TogetherProbe")
class TogetherProbe(ProcessWorkflow):
    @workflow.run
    async def run(self, data: TogetherProbeInput) -> TogetherProbeResult:
        self.start_runtime(process=PARK_PROCESS, reference=data.reference, policies=data.policies)

        async def step(name: str, arg: StepInput) -> StepResult:
            result: StepResult = await self.runtime.call(f"{PROBE}.{name}", ProbeSystem.step, arg)
            self.runtime.push(f"{PROBE}.undo_{name}", ProbeSystem.step, undo_of(arg))
            return result

        try:
            results = await self.runtime.together(
                step("first", data.first), step("second", data.second)
            )
        except StepAborted as err:
            failed_step = self.runtime.current_step
            await self.runtime.compensate()
            await self.runtime.settle()
            return TogetherProbeResult(aborted=str(err), failed_step=failed_step)
        await self.runtime.settle()
        return TogetherProbeResult(results=results)
