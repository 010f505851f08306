"""Circuit breakers of the outside systems: the worker's side.

Two parts, one per job:

- :class:`BreakerInterceptor` watches every attempt of an outside system's activities (in
  every worker process) over a sliding window. When a system's failures cross the threshold
  (``HUB_BREAKER_ERROR_RATIO`` of at least ``HUB_BREAKER_MIN_CALLS`` calls within
  ``HUB_BREAKER_WINDOW``) it trips the system's ``CircuitBreaker`` workflow (signal-with-start:
  one per system, ``breaker-<system>``); after a failure, the next success is reported to it.
  Only failures that say the system is unwell count: a ``TransientError`` (an outage, a
  timeout, a 5xx), never a business answer (a declined credit check) or a malformed request.
  From its trip until it sees the system answer again, the process refuses the eager first
  attempts (on the main queue, ``workflows.runtime.steps``) of calls to the system
  (``EagerRefused``, with no call made), so they go to the system's queue, which the breaker
  holds; so it does with those beyond ``HUB_BREAKER_MIN_CALLS`` in flight at once.
- :class:`BreakerActivities` carries out the workflow's decisions with Temporal's own
  control: the server-side rate limit of the system's activity task queue. ``0`` holds every
  call to the system in Temporal (durably: the steps wait, scheduled, and no worker is handed
  one), a trickle lets one call through per probe interval, and the limit is lifted when the
  system answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.workflowservice.v1 import UpdateTaskQueueConfigRequest
from temporalio.client import Client
from temporalio.common import Priority, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from activities.definitions import HUB, defn, system_of, task_queue_for
from hub.errors import TransientError
from hub.settings import SYSTEMS, Settings

logger = logging.getLogger(__name__)

#: The workflow type and id of a system's breaker (``workflows.breaker``).
BREAKER_WORKFLOW = "CircuitBreaker"
BREAKER_ID_PREFIX = "breaker-"
#: What the queue's rate limit says while a breaker holds it.
HELD_REASON = "hub circuit breaker"
#: The error type of an eager first attempt (on the main queue) refused without a call: the
#: system's breaker is open, or as many of its eager attempts as the breaker needs to see to
#: trip (``HUB_BREAKER_MIN_CALLS``) are already in flight. The step goes on on the system's own
#: queue, where the breaker can hold it; the refusal costs no attempt.
EAGER_REFUSED = "EagerRefused"
#: A breaker's workflow and activity tasks go first on the hub's task queues (Temporal's
#: task queue priority: 1 is the highest of 1-5, the default is 3).
BREAKER_PRIORITY = Priority(priority_key=1)


@dataclass
class BreakerStart:
    """What a breaker workflow is started with (``workflows.breaker.BreakerInput``)."""

    system: str
    reason: str


@dataclass
class BreakerTiming:
    """Seconds open before each probe; calls per second and seconds while half-open."""

    probe_interval: float
    probe_rate: float
    probe_window: float


@dataclass
class QueueRateInput:
    system: str
    #: Calls per second the system's queue hands out; None: lift the breaker's limit.
    rate: float | None
    reason: str = ""


class BreakerActivities:
    def __init__(self, client: Client, settings: Settings, task_queue: str) -> None:
        self.client = client
        self.settings = settings
        self.task_queue = task_queue

    @defn("hub.set_queue_rate", system=HUB)
    async def set_queue_rate(self, data: QueueRateInput) -> None:
        """Set (or lift) the server-side rate limit of ``system``'s activity task queue."""
        request = UpdateTaskQueueConfigRequest(
            namespace=self.client.namespace,
            identity=f"hub breaker {data.system}",
            task_queue=task_queue_for(self.task_queue, data.system),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
        limit = request.update_queue_rate_limit
        if data.rate is None:
            configured = self.settings.rate_limit.get(data.system)
            if configured is not None:
                limit.rate_limit.requests_per_second = configured
            limit.reason = f"{HELD_REASON}: closed"
        else:
            limit.rate_limit.requests_per_second = data.rate
            limit.reason = f"{HELD_REASON}: {data.reason}"[:1000]
        await self.client.workflow_service.update_task_queue_config(request)

    @defn("hub.breaker_settings", system=HUB)
    async def breaker_settings(self) -> BreakerTiming:
        s = self.settings
        return BreakerTiming(
            s.breaker_probe_interval.total_seconds(),
            s.breaker_probe_rate,
            s.breaker_probe_window.total_seconds(),
        )


class _Window:
    """A system's recent attempts: (monotonic time, failed)."""

    def __init__(self) -> None:
        self.attempts: deque[tuple[float, bool]] = deque()
        self.tripped_at: float | None = None
        #: The system failed since its breaker was last seen closed: successes are reported.
        self.suspect = False
        self.reported_at: float | None = None
        #: This process tripped the breaker and has seen no success of the system since:
        #: first attempts on the main queue are refused (:data:`EAGER_REFUSED`).
        self.held = False


class BreakerInterceptor(Interceptor):
    """Counts outside systems' attempts and trips their breakers (see the module)."""

    def __init__(self, client: Client, settings: Settings, task_queue: str) -> None:
        self.client = client
        self.settings = settings
        self.task_queue = task_queue
        self.windows: dict[str, _Window] = {}
        #: Eager first attempts running now, per system (see ``_Watch._eager``).
        self.eager_in_flight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Watch(next, self)

    def outcome(self, system: str, failed: bool, reason: str = "") -> None:
        s = self.settings
        window = self.windows.setdefault(system, _Window())
        now = time.monotonic()
        window.attempts.append((now, failed))
        horizon = now - s.breaker_window.total_seconds()
        while window.attempts and window.attempts[0][0] < horizon:
            window.attempts.popleft()
        if not failed:
            window.held = False
            # The system answers: its breaker, if open, waits for this to close. Told at most
            # twice per probe interval, until the breaker is found closed.
            interval = s.breaker_probe_interval.total_seconds() / 2
            if window.suspect and (
                window.reported_at is None or now - window.reported_at > interval
            ):
                window.reported_at = now
                self._background(self._succeeded(system, window))
            return
        window.suspect = True
        failures = sum(1 for _, bad in window.attempts if bad)
        calls = len(window.attempts)
        cooling = window.tripped_at is not None and now - window.tripped_at < (
            s.breaker_probe_interval.total_seconds()
        )
        if (
            calls >= s.breaker_min_calls
            and failures / calls >= s.breaker_error_ratio
            and not cooling
        ):
            window.tripped_at = now
            window.held = True
            why = f"{failures} of the last {calls} calls failed ({reason})"
            self._background(self._trip(system, why))

    def _background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def held(self, system: str) -> bool:
        """Whether this process knows ``system``'s breaker to be open (see :class:`_Window`)."""
        window = self.windows.get(system)
        return window is not None and window.held

    async def _trip(self, system: str, reason: str) -> None:
        try:
            await self.client.start_workflow(
                BREAKER_WORKFLOW,
                BreakerStart(system, reason),
                id=f"{BREAKER_ID_PREFIX}{system}",
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                start_signal="trip",
                start_signal_args=[reason],
                static_summary=f"circuit breaker of {system}",
                # Ahead of the orders it protects: a worker that starts (or catches up) with
                # a backlog of them held billing after 22 s and 597 calls at 200 orders, its
                # breaker's tasks queued behind theirs; 7 s and 18 calls first in line. Its
                # activities (the queue's rate, the alarm) inherit the priority.
                priority=BREAKER_PRIORITY,
            )
        except Exception:  # a breaker that cannot be tripped must not fail the call
            logger.exception("could not trip the breaker of %s", system)

    async def _succeeded(self, system: str, window: _Window) -> None:
        handle = self.client.get_workflow_handle(f"{BREAKER_ID_PREFIX}{system}")
        try:
            await handle.signal("succeeded")
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:  # no breaker open (any more)
                window.suspect = False
        except Exception:
            logger.debug("could not report %s's success to its breaker", system)


class _Watch(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, breakers: BreakerInterceptor) -> None:
        super().__init__(next)
        self.breakers = breakers

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            system = system_of(input.fn)
        except TypeError:
            system = HUB
        if system not in SYSTEMS or not self.breakers.settings.breaker_enabled:
            return await self.next.execute_activity(input)
        if activity.info().task_queue == self.breakers.task_queue:
            return await self._eager(system, input)
        return await self._watched(system, input)

    async def _eager(self, system: str, input: ExecuteActivityInput) -> Any:
        """An eager first attempt (``workflows.runtime.steps``). Refused without a call while
        the breaker is open, and beyond ``HUB_BREAKER_MIN_CALLS`` of them in flight: a burst
        (a worker starting with a backlog of orders) must not send a system that is down more
        calls than its breaker needs to see to trip; the rest wait on the system's queue."""
        breakers = self.breakers
        in_flight = breakers.eager_in_flight.get(system, 0)
        held = breakers.held(system)
        if held or in_flight >= breakers.settings.breaker_min_calls:
            why = "its circuit breaker is open" if held else "a burst of calls"
            raise ApplicationError(
                f"{system}: the first attempt goes through its queue ({why})", type=EAGER_REFUSED
            )
        breakers.eager_in_flight[system] = in_flight + 1
        try:
            return await self._watched(system, input)
        finally:
            breakers.eager_in_flight[system] -= 1

    async def _watched(self, system: str, input: ExecuteActivityInput) -> Any:
        try:
            result = await self.next.execute_activity(input)
        except ApplicationError as err:
            # A business answer (credit declined) is a system that works.
            self.breakers.outcome(system, err.type == TransientError.__name__, err.type or "")
            raise
        except (TimeoutError, ConnectionError) as err:
            self.breakers.outcome(system, True, type(err).__name__)
            raise
        self.breakers.outcome(system, False)
        return result
