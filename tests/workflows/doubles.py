"""Test doubles of the activities the process runtime calls, and the probe's own step.

Each double has the real activity's name (``activities.definitions.defn``), so the runtime
derives the same system, task queue and options for it as for the real one, and a worker that
registers the doubles serves the probes as the real worker serves the processes. The doubles
record what they receive, with the workflow id that sent it, so a test can assert on the task
records, dead letters and alarms of its own run while other runs use the same workers.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.alarms import RaiseAlarmInput, RaiseAlarmResult
from activities.breaker import EAGER_REFUSED
from activities.dead_letters import DeadLetterUpdate, ParkInput
from activities.definitions import defn
from activities.errors import outside_call
from activities.tasks import TaskRecord
from hub.alarms import PerceivedSeverity, notification_id
from hub.errors import TransientError, UnknownPlan

#: The probe's outside system: its step runs on ``<task queue>.probe``.
PROBE = "probe"
#: The NMS the alarm double says it delivered to.
NMS = "nms-double"


@dataclass
class StepInput:
    """The probe step's input: what an operator may correct, and what they may not."""

    msisdn: str
    plan: str
    quantity: int
    idempotency_key: str
    #: A secret: never offered for correction.
    token: str = "s3cret"
    note: str | None = None


@dataclass
class StepResult:
    done: str


def _run() -> str:
    """The workflow id of the run that called the activity."""
    workflow_id = activity.info().workflow_id
    assert workflow_id is not None, "the doubles serve workflows only"
    return workflow_id


class HubDoubles:
    """The hub's own activities (task records, dead letters), on the main task queue."""

    def __init__(self) -> None:
        self.task_records: dict[str, list[TaskRecord]] = defaultdict(list)
        self.parks: dict[str, list[ParkInput]] = defaultdict(list)
        self.letter_updates: dict[str, list[DeadLetterUpdate]] = defaultdict(list)
        #: Runs whose next task record is held (a slow database) until the event is set.
        self.held: dict[str, asyncio.Event] = {}
        #: Runs whose task record is being held now.
        self.holding: set[str] = set()

    @defn("hub.record_task")
    async def record_task(self, data: TaskRecord) -> None:
        workflow_id = _run()
        release = self.held.pop(workflow_id, None)
        if release is not None:
            self.holding.add(workflow_id)
            await release.wait()
            self.holding.discard(workflow_id)
        self.task_records[workflow_id].append(data)

    @defn("hub.park")
    async def park(self, data: ParkInput) -> None:
        self.parks[_run()].append(data)

    @defn("hub.update_dead_letter")
    async def update_dead_letter(self, data: DeadLetterUpdate) -> None:
        self.letter_updates[_run()].append(data)


class AlarmDouble:
    """``alarms.raise``: every alarm reaches the one NMS double."""

    def __init__(self) -> None:
        self.sent: dict[str, list[RaiseAlarmInput]] = defaultdict(list)

    @defn("alarms.raise")
    async def raise_alarm(self, data: RaiseAlarmInput) -> RaiseAlarmResult:
        self.sent[_run()].append(data)
        return RaiseAlarmResult(notification_id(data.alarm_key), delivered_to=[NMS])

    def of(self, workflow_id: str, kind: str) -> list[PerceivedSeverity]:
        """The severities sent for the alarm ``kind`` of a run, in order (CLEARED for a clear)."""
        key = f"{workflow_id}/{kind}"
        return [PerceivedSeverity(a.severity) for a in self.sent[workflow_id] if a.alarm_key == key]


class ProbeSystem:
    """The probe's outside system: down for a run until the test repairs it."""

    def __init__(self) -> None:
        self.calls: dict[str, list[StepInput]] = defaultdict(list)
        #: The task queue of each call (and of each refusal), per run.
        self.queues: dict[str, list[str]] = defaultdict(list)
        #: Workflow ids the system is down for (or a step's idempotency key: that step only).
        self.down: set[str] = set()
        #: Workflow ids whose first call fails (transiently), the later ones answer; with
        #: the ``Retry-After`` (seconds) it gives, if any.
        self.fail_first: set[str] = set()
        self.retry_after: dict[str, float] = {}
        #: When each call was made (monotonic seconds), per run.
        self.times: dict[str, list[float]] = defaultdict(list)
        #: Workflow ids whose calls on the main queue are refused as the breaker interceptor
        #: refuses them while the system's breaker is open (no call is made).
        self.held: set[str] = set()

    @defn(f"{PROBE}.step")
    async def step(self, data: StepInput) -> StepResult:
        workflow_id = _run()
        queue = activity.info().task_queue
        self.queues[workflow_id].append(queue)
        if workflow_id in self.held and not queue.endswith(f".{PROBE}"):
            raise ApplicationError("the probe's breaker is open", type=EAGER_REFUSED)
        self.calls[workflow_id].append(data)
        self.times[workflow_id].append(time.monotonic())
        with outside_call():  # the hub's error translation, as the real activities use it
            if workflow_id in self.down or data.idempotency_key in self.down:
                raise TransientError("the probe system is down", system=PROBE, status=503)
            if workflow_id in self.fail_first and len(self.calls[workflow_id]) == 1:
                raise TransientError(
                    "the probe system hiccups",
                    system=PROBE,
                    status=503,
                    retry_after=self.retry_after.get(workflow_id),
                )
            if data.plan == "UNKNOWN":
                raise UnknownPlan("no such plan", system=PROBE)
        return StepResult(f"{data.plan} x{data.quantity} for {data.msisdn}")
