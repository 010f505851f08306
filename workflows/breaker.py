"""CircuitBreaker: one outside system's breaker, open while the system does not answer.

Started (signal-with-start, ``breaker-<system>``) by the first ``trip`` a worker sends when the
system's failures cross the threshold (``activities.breaker``). Open, it holds every call to
the system in Temporal: the rate limit of the system's activity task queue is 0, so steps stay
scheduled (durably, in their workflows: nothing fails, no retries burn) and no load reaches the
system. A ``major`` alarm says so. ``HUB_BREAKER_PROBE_INTERVAL`` later it half-opens: the
queue lets ``HUB_BREAKER_PROBE_RATE`` calls a second through; the first success a worker
reports (``succeeded``) closes it (the limit lifted, the alarm cleared) and the run ends;
``HUB_BREAKER_PROBE_WINDOW`` with no success (or a new trip) opens it again.
``hub_breaker_state{system}``: 0 closed, 1 open, 2 half-open.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow

from workflows.runtime import ProcessContract, ProcessWorkflow, activity_options, set_hub_status

with workflow.unsafe.imports_passed_through():
    from activities.breaker import (
        BREAKER_ID_PREFIX,
        BREAKER_WORKFLOW,
        BreakerActivities,
        BreakerStart,
        BreakerTiming,
        QueueRateInput,
    )
    from activities.policies import PolicyActivities
    from hub import search_attributes as sa
    from hub.alarms import EventType, PerceivedSeverity, ProbableCause

PROCESS_KIND = "circuit-breaker"
STATES = {"closed": 0, "open": 1, "half-open": 2}


@dataclass
class BreakerResult:
    system: str
    probes: int


@workflow.defn(name=BREAKER_WORKFLOW)
class CircuitBreaker(ProcessWorkflow):
    def __init__(self) -> None:
        self._trips = 0
        self._successes = 0
        self._state = "closed"

    @workflow.signal
    def trip(self, reason: str) -> None:
        self._trips += 1
        self._reason = reason

    @workflow.signal
    def succeeded(self) -> None:
        self._successes += 1

    @workflow.query
    def state(self) -> str:
        return self._state

    @workflow.run
    async def run(self, data: BreakerStart) -> BreakerResult:
        policies = await workflow.execute_local_activity_method(
            PolicyActivities.process_policies, start_to_close_timeout=timedelta(seconds=10)
        )
        timing: BreakerTiming = await workflow.execute_local_activity_method(
            BreakerActivities.breaker_settings, start_to_close_timeout=timedelta(seconds=10)
        )
        runtime = self.start_runtime(
            process=PROCESS_KIND, reference=data.system, policies=policies, reference_kind="system"
        )
        options = activity_options(policies, BreakerActivities.set_queue_rate)
        set_hub_status(sa.HubStatus.RUNNING)
        await self._set(data.system, 0.0, "open", data.reason, options)
        runtime.alarms.raise_alarm(
            "open",
            PerceivedSeverity.MAJOR,
            EventType.COMMUNICATIONS_ALARM,
            ProbableCause.COMMUNICATIONS_SUBSYSTEM_FAILURE,
            f"{data.system} does not answer: its calls are held (circuit breaker open): "
            f"{data.reason}",
            system=data.system,
        )
        probes = 0
        while True:
            await workflow.sleep(timedelta(seconds=timing.probe_interval))
            probes += 1
            successes = self._successes
            await self._set(data.system, timing.probe_rate, "half-open", "probing", options)
            if await self._answered(successes, timing.probe_window):
                break
            await self._set(data.system, 0.0, "open", "the probe failed", options)
        await self._set(data.system, None, "closed", "", options)
        runtime.alarms.clear_alarm("open", f"{data.system} answers again: circuit breaker closed")
        set_hub_status(sa.HubStatus.COMPLETED)
        workflow.set_current_details(f"closed after {probes} probe(s)")
        await runtime.settle()
        return BreakerResult(data.system, probes)

    async def _answered(self, successes: int, seconds: float) -> bool:
        """Whether a success is reported within ``seconds`` (a new trip ends the wait)."""
        trips = self._trips
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._successes > successes or self._trips > trips,
                timeout=timedelta(seconds=seconds),
            )
        return self._successes > successes

    async def _set(
        self, system: str, rate: float | None, state: str, reason: str, options: dict
    ) -> None:
        await workflow.execute_activity_method(
            BreakerActivities.set_queue_rate,
            QueueRateInput(system, rate, reason),
            summary=f"hub: {system} breaker {state}",
            **options,
        )
        self._state = state
        workflow.metric_meter().create_gauge(
            "hub_breaker_state", "Circuit breaker of a system: 0 closed, 1 open, 2 half-open"
        ).set(STATES[state], {"system": system})
        workflow.set_current_details(f"{state}: {reason}" if reason else state)


CONTRACT: ProcessContract[BreakerStart] = ProcessContract(
    name=BREAKER_WORKFLOW,
    kind=PROCESS_KIND,
    run=CircuitBreaker.run,
    workflow_id_prefix=BREAKER_ID_PREFIX,
    summary=lambda data: f"circuit breaker of {data.system}",
    log_field="system",
)
