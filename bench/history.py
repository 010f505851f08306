"""Where an order's time goes, read from its Temporal workflow history.

Service activation is a chain: each workflow task schedules one activity, the activity runs,
its completion schedules the next workflow task, which schedules the next activity. So the
time from the API's POST to the workflow's completion splits exactly into:

- ``api``: POST sent → ``WorkflowExecutionStarted`` (request handling, database insert,
  the ``StartWorkflowExecution`` call);
- ``wft_queue``: ``WorkflowTaskScheduled`` → ``WorkflowTaskStarted`` (the task waits for a
  workflow poller of the worker);
- ``wft_run``: ``WorkflowTaskStarted`` → ``WorkflowTaskCompleted`` (the worker runs the
  workflow code, and the first task also the local activity ``hub.retry_policies``);
- ``activity_queue``: ``ActivityTaskScheduled`` → ``ActivityTaskStarted`` (the task waits for
  an activity poller; retries' back-off would land here too);
- ``outside_run`` / ``hub_run``: ``ActivityTaskStarted`` → ``ActivityTaskCompleted`` of the
  outside systems' activities (``credit.*``, ``crm.*``, ``hss.*``, ``billing.*``: the simulated
  latency is in here) and of the hub's own (``hub.*``: database writes);
- ``residual``: whatever the events above do not cover (should be ~0).

Event times are the server's; the POST time is the benchmark's clock on the same machine.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from hub.settings import SYSTEMS

OUTSIDE_PREFIXES = tuple(f"{system}." for system in SYSTEMS)

#: The parts of an order's end-to-end time, in timeline order, with what they mean.
CATEGORIES: dict[str, str] = {
    "api": "API: POST sent -> WorkflowExecutionStarted",
    "wft_queue": "workflow tasks: Scheduled -> Started (queue wait)",
    "wft_run": "workflow tasks: Started -> Completed (worker runs workflow code)",
    "activity_queue": "activities: Scheduled -> Started (queue wait)",
    "outside_run": "outside activities: Started -> Completed (incl. simulated latency)",
    "hub_run": "hub.* activities: Started -> Completed (hub database writes)",
    "residual": "not covered by the events above",
}

_CLOSE_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "canceled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued_as_new",
}
_ACTIVITY_CLOSE_EVENTS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}


def _seconds(event: HistoryEvent) -> float:
    return event.event_time.ToNanoseconds() / 1e9


@dataclass
class WorkflowTask:
    scheduled: float
    started: float | None = None
    completed: float | None = None

    @property
    def queue(self) -> float:
        return (self.started - self.scheduled) if self.started is not None else 0.0

    @property
    def run(self) -> float:
        if self.started is None or self.completed is None:
            return 0.0
        return self.completed - self.started


@dataclass
class ActivityStep:
    """One activity as the history tells it, with the workflow task that scheduled it."""

    name: str
    scheduled: float
    #: When the previous activity closed (or the workflow started, for the first one).
    previous_close: float
    scheduled_by: WorkflowTask | None
    started: float | None = None
    closed: float | None = None
    attempts: int = 0
    outcome: str = "open"

    @property
    def outside(self) -> bool:
        return self.name.startswith(OUTSIDE_PREFIXES)

    @property
    def queue(self) -> float:
        return (self.started - self.scheduled) if self.started is not None else 0.0

    @property
    def run(self) -> float:
        if self.started is None or self.closed is None:
            return 0.0
        return self.closed - self.started

    @property
    def gap_before(self) -> float:
        """Previous activity's completion (or the start) → this one's scheduling."""
        return self.scheduled - self.previous_close


@dataclass
class OrderTimeline:
    workflow_id: str
    posted: float | None
    started: float
    closed: float | None
    outcome: str
    steps: list[ActivityStep]
    workflow_tasks: list[WorkflowTask]
    #: Last activity's completion → workflow closed (the final workflow task).
    gap_after: float = 0.0

    @property
    def end_to_end(self) -> float | None:
        if self.closed is None or self.posted is None:
            return None
        return self.closed - self.posted

    @property
    def outside_calls(self) -> int:
        """Outside activities scheduled (one call each when nothing is retried)."""
        return sum(1 for step in self.steps if step.outside)

    @property
    def outside_attempts(self) -> int:
        """Outside calls actually made: the attempts of every outside activity."""
        return sum(step.attempts for step in self.steps if step.outside)

    @property
    def hub_retries(self) -> int:
        return sum(max(0, step.attempts - 1) for step in self.steps if not step.outside)

    def breakdown(self) -> dict[str, float]:
        """The end-to-end time split into :data:`CATEGORIES` (seconds)."""
        parts = dict.fromkeys(CATEGORIES, 0.0)
        parts["api"] = self.started - self.posted if self.posted is not None else 0.0
        for task in self.workflow_tasks:
            parts["wft_queue"] += task.queue
            parts["wft_run"] += task.run
        for step in self.steps:
            parts["activity_queue"] += step.queue
            parts["outside_run" if step.outside else "hub_run"] += step.run
        total = self.end_to_end
        if total is not None:
            parts["residual"] = total - sum(parts.values())
        return parts


def parse_history(
    workflow_id: str, events: Sequence[HistoryEvent], posted: float | None
) -> OrderTimeline:
    """Rebuild the activity chain of one workflow from its history events."""
    tasks: dict[int, WorkflowTask] = {}
    completed_tasks: dict[int, WorkflowTask] = {}  # by WorkflowTaskCompleted event id
    steps: dict[int, ActivityStep] = {}  # by ActivityTaskScheduled event id
    started = _seconds(events[0]) if events else 0.0
    closed: float | None = None
    outcome = "open"
    last_close = started
    for event in events:
        kind, at = event.event_type, _seconds(event)
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            started = last_close = at
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            tasks[event.event_id] = WorkflowTask(scheduled=at)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            task = tasks.get(event.workflow_task_started_event_attributes.scheduled_event_id)
            if task is not None:
                task.started = at
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            completed = event.workflow_task_completed_event_attributes
            task = tasks.get(completed.scheduled_event_id)
            if task is not None:
                task.completed = at
                completed_tasks[event.event_id] = task
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            steps[event.event_id] = ActivityStep(
                name=scheduled.activity_type.name,
                scheduled=at,
                previous_close=last_close,
                scheduled_by=completed_tasks.get(scheduled.workflow_task_completed_event_id),
            )
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            begun = event.activity_task_started_event_attributes
            step = steps.get(begun.scheduled_event_id)
            if step is not None:
                step.started, step.attempts = at, begun.attempt
        elif kind in _ACTIVITY_CLOSE_EVENTS:
            attrs = getattr(event, _ACTIVITY_CLOSE_EVENTS[kind])
            step = steps.get(attrs.scheduled_event_id)
            if step is not None:
                step.closed = last_close = at
                step.outcome = EventType.Name(kind).removeprefix("EVENT_TYPE_ACTIVITY_TASK_")
                step.outcome = step.outcome.lower()
        elif kind in _CLOSE_EVENTS:
            closed, outcome = at, _CLOSE_EVENTS[kind]
    timeline = OrderTimeline(
        workflow_id=workflow_id,
        posted=posted,
        started=started,
        closed=closed,
        outcome=outcome,
        steps=sorted(steps.values(), key=lambda step: step.scheduled),
        workflow_tasks=list(tasks.values()),
    )
    if closed is not None:
        timeline.gap_after = closed - last_close
    return timeline


# --- Summaries over many orders --------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else 0.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation): a latency some order really had."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Breakdown:
    """Medians over all orders: per order (summed over its steps) and per single step."""

    orders: int
    per_order: dict[str, float] = field(default_factory=dict)
    per_step: dict[str, float] = field(default_factory=dict)
    steps_per_order: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "per_order_median_s": self.per_order,
            "per_step_median_s": self.per_step,
            "steps_per_order_median": self.steps_per_order,
        }


def summarise(timelines: Sequence[OrderTimeline]) -> Breakdown:
    """Median of each category per order, and median single-step gaps across all orders."""
    done = [t for t in timelines if t.end_to_end is not None]
    result = Breakdown(orders=len(done))
    for category in CATEGORIES:
        result.per_order[category] = median(t.breakdown()[category] for t in done)
    steps = [step for t in done for step in t.steps]
    outside = [s for s in steps if s.outside]
    hub = [s for s in steps if not s.outside]
    tasks = [task for t in done for task in t.workflow_tasks]
    result.per_step = {
        # The three gaps around each activity, as the issue asks for them.
        "activity scheduled -> started": median(s.queue for s in steps),
        "outside activity started -> completed": median(s.run for s in outside),
        "hub.* activity started -> completed": median(s.run for s in hub),
        "previous completed -> next scheduled (workflow task latency)": median(
            s.gap_before for s in steps if s.scheduled_by is not None
        ),
        "  of which workflow task scheduled -> started": median(t.queue for t in tasks),
        "  of which workflow task started -> completed": median(t.run for t in tasks),
        "last activity completed -> workflow closed": median(t.gap_after for t in done),
    }
    result.steps_per_order = {
        "outside activities": median(t.outside_calls for t in done),
        "hub.* activities": median(len(t.steps) - t.outside_calls for t in done),
        "workflow tasks": median(len(t.workflow_tasks) for t in done),
    }
    return result


def representative(timelines: Sequence[OrderTimeline]) -> OrderTimeline | None:
    """The order whose end-to-end time is closest to the median."""
    done = [t for t in timelines if t.end_to_end is not None]
    if not done:
        return None
    middle = median(t.end_to_end or 0.0 for t in done)
    return min(done, key=lambda t: abs((t.end_to_end or 0.0) - middle))
