"""The event relay: the outbox's events delivered to subscribers and brokers, through Temporal.

Three kinds of long-running workflow, each continuing as new before its history grows long:

- :class:`EventRelay` (one, ``events-relay``): fans new outbox events out into deliveries
  (``events.dispatch``). Whoever commits an event pokes it (signal-with-start,
  :func:`hub.events.relay.poke`); it also looks every ``HUB_EVENTS_SWEEP_INTERVAL`` without a
  poke, so an event whose poke was lost (the writer killed right after its commit) still goes.
- :class:`EventSubscriptionRelay` (one per subscription): delivers its due deliveries
  (``events.deliver``: per resource, in order), then sleeps on a durable timer until the next
  retry is due or a poke; ``replay`` (an update) makes a dead delivery pending again. It ends
  when the subscription does (deleted, or the callback answered 410).
- :class:`EventSinkRelay` (one per broker sink of ``HUB_EVENTS_BROKERS``): publishes each
  event through the ``events.publish_to_broker`` activity (the broker adapters'), one resource's
  events one after the other, retried without limit: a broker outage delays events and loses
  none.

The workflows keep no state of their own beyond a poke flag: the delivery log is in the hub
database, so a run that continues as new, or a worker that dies, loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from workflows.runtime import ProcessWorkflow

with workflow.unsafe.imports_passed_through():
    from activities.definitions import task_queue_for
    from activities.events import (
        DeliverInput,
        DeliverResult,
        DispatchInput,
        EventActivities,
        PruneInput,
        PruneResult,
        ReplayInput,
        ReplayResult,
        SinkBatchInput,
        SinkDoneInput,
        SinkEvent,
    )
    from hub.events.relay import (
        POKE,
        PUBLISH_TO_BROKER,
        RELAY_WORKFLOW,
        SINK_WORKFLOW,
        SUBSCRIPTION_WORKFLOW,
        SYSTEM,
        RelayInput,
        SinkRelayInput,
        SubscriptionRelayInput,
    )

#: Loop turns before a run continues as new (or sooner, when Temporal suggests it).
TURNS = 500
#: The relay deletes what the retention no longer keeps (``events.prune``) at its first sweep,
#: then at most every ``RelayInput.prune_seconds``.
PRUNE_PATCH = "events-retention"
#: The hub's own store: retried without limit, quickly.
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,
)
#: A broker that is down: retried without limit, at most a minute apart.
BROKER_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,
)


def _options(task_queue: str, attempt_seconds: float) -> dict[str, Any]:
    return {
        "task_queue": task_queue_for(task_queue, SYSTEM),
        "start_to_close_timeout": timedelta(seconds=attempt_seconds),
        "retry_policy": STORE_RETRY,
    }


def _history_is_long(turn: int) -> bool:
    return turn >= TURNS or workflow.info().is_continue_as_new_suggested()


class _Poked(ProcessWorkflow):
    def __init__(self) -> None:
        self._poked = False

    @workflow.signal(name=POKE)
    def poke(self) -> None:
        self._poked = True

    async def _sleep(self, seconds: float) -> None:
        """Until poked, or ``seconds`` (a durable timer)."""
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._poked, timeout=timedelta(seconds=max(seconds, 0.001))
            )


@workflow.defn(name=RELAY_WORKFLOW)
class EventRelay(_Poked):
    @workflow.run
    async def run(self, data: RelayInput) -> None:
        sweep = False
        pruned_at: datetime | None = None
        for turn in range(TURNS + 1):
            if _history_is_long(turn):
                break
            self._poked = False
            result = await workflow.execute_activity_method(
                EventActivities.dispatch,
                DispatchInput(batch=data.batch, sweep=sweep),
                summary="events: fan out",
                **_options(data.task_queue, data.attempt_seconds),
            )
            due = pruned_at is None or workflow.now() - pruned_at >= timedelta(
                seconds=data.prune_seconds
            )
            # At a sweep; runs that started before retention existed do without it.
            if sweep and due and workflow.patched(PRUNE_PATCH):
                pruned_at = workflow.now()
                await self._prune(data)
            sweep = False
            if result.more or self._poked:  # more waiting, or poked while it ran
                continue
            await self._sleep(data.sweep_seconds)
            sweep = not self._poked  # woken by the timer: look at everything pending
        workflow.continue_as_new(data)

    async def _prune(self, data: RelayInput) -> None:
        """``HUB_EVENTS_RETENTION``: old delivered events go, a batch at a time."""
        while True:
            pruned: PruneResult = await workflow.execute_activity_method(
                EventActivities.prune,
                PruneInput(),
                summary="events: retention",
                **_options(data.task_queue, data.attempt_seconds),
            )
            if not pruned.more:
                return


@workflow.defn(name=SUBSCRIPTION_WORKFLOW)
class EventSubscriptionRelay(_Poked):
    @workflow.init
    def __init__(self, data: SubscriptionRelayInput) -> None:
        super().__init__()
        self._input = data

    @workflow.run
    async def run(self, data: SubscriptionRelayInput) -> None:
        for turn in range(TURNS + 1):
            if _history_is_long(turn):
                break
            self._poked = False
            result: DeliverResult = await workflow.execute_activity_method(
                EventActivities.deliver,
                # It takes no new round past half its time: a round is at most the
                # subscribers' timeout.
                DeliverInput(data.subscription_id, budget_seconds=data.attempt_seconds / 2),
                summary="events: deliver",
                **_options(data.task_queue, data.attempt_seconds),
            )
            if result.ended:
                await workflow.wait_condition(workflow.all_handlers_finished)
                return
            if result.more:
                continue
            wait = data.sweep_seconds
            if result.wait_seconds is not None:
                wait = min(wait, result.wait_seconds)
            await self._sleep(wait)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(data)

    @workflow.update
    async def replay(self, data: ReplayInput) -> ReplayResult:
        """A dead delivery made pending again (the same event, the same ``eventId``)."""
        result: ReplayResult = await workflow.execute_activity_method(
            EventActivities.replay,
            data,
            summary="events: replay",
            **{
                **_options(self._input.task_queue, self._input.attempt_seconds),
                "retry_policy": RetryPolicy(maximum_attempts=5),
            },
        )
        self._poked = True
        return result

    @replay.validator
    def _validate_replay(self, data: ReplayInput) -> None:
        if data.delivery_id <= 0 or not data.decided_by:
            raise ApplicationError("a replay names a delivery and who decided it")


@workflow.defn(name=SINK_WORKFLOW)
class EventSinkRelay(_Poked):
    @workflow.run
    async def run(self, data: SinkRelayInput) -> None:
        for turn in range(TURNS + 1):
            if _history_is_long(turn):
                break
            self._poked = False
            batch: list[SinkEvent] = await workflow.execute_activity_method(
                EventActivities.sink_batch,
                SinkBatchInput(sink=data.sink, batch=data.batch),
                summary=f"events: {data.sink} batch",
                **_options(data.task_queue, data.attempt_seconds),
            )
            if not batch:
                await self._sleep(data.sweep_seconds)
                continue
            lanes: dict[str, list[SinkEvent]] = {}
            for event in batch:
                lanes.setdefault(event.resource_key, []).append(event)
            await asyncio.gather(*(self._publish(data, lane) for lane in lanes.values()))
            await workflow.execute_activity_method(
                EventActivities.sink_done,
                SinkDoneInput(sink=data.sink, delivery_ids=[e.delivery_id for e in batch]),
                summary=f"events: {data.sink} done",
                **_options(data.task_queue, data.attempt_seconds),
            )
        workflow.continue_as_new(data)

    async def _publish(self, data: SinkRelayInput, lane: list[SinkEvent]) -> None:
        """One resource's events, one after the other (in order)."""
        for event in lane:
            await workflow.execute_activity(
                PUBLISH_TO_BROKER,
                {
                    "sink": data.sink,
                    "domain": event.domain,
                    "resource_id": event.resource_id,
                    "event_id": event.event_id,
                    "event": event.event,
                },
                task_queue=task_queue_for(data.task_queue, SYSTEM),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=BROKER_RETRY,
                summary=f"events: publish to {data.sink}",
            )
