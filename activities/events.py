"""The relay's activities: fan the outbox out into deliveries, deliver them, replay, sinks.

State lives in the hub database (the outbox and the delivery log), waits in Temporal: the
workflows (``workflows/events.py``) call these and sleep on durable timers in between. Every
activity is safe to run again: a delivery is recorded after its answer, so a worker killed
in between sends the event once more, with the same ``eventId`` (``webhook-id``), which
receivers dedupe by. Ordering per resource: of one subscription's pending deliveries of one
resource, only the oldest (``resource_seq``) is ever attempted.

Metrics (the worker's Temporal exporter): ``hub_event_deliveries_total{outcome}`` (delivered,
retry, dead, gone), ``hub_event_delivery_lag_seconds`` (event written to delivered),
``hub_events_outbox_lag_seconds`` (age of the oldest event not yet fanned out).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.definitions import defn
from adapters.event_callbacks import Answer, EventCallbackClient
from hub.db import session_scope
from hub.events.envelopes import Domain
from hub.events.models import (
    SECRET_FIELD,
    DeliveryStatus,
    EventDelivery,
    EventSubscription,
    OutboxEvent,
    SubscriptionStatus,
)
from hub.events.query import QueryError, parse_query
from hub.events.relay import (
    POKE,
    SINK_PREFIX,
    SINK_WORKFLOW,
    SUBSCRIPTION_WORKFLOW,
    RelayInput,
    SinkRelayInput,
    SubscriptionRelayInput,
    poke_soon,
    sink_workflow_id,
    subscription_workflow_id,
)
from hub.models import DeadLetter, DeadLetterStatus, utcnow
from hub.sealing import SealError, Unsealer
from hub.settings import Settings

logger = logging.getLogger("hub.events")

#: The process of the dead letters of exhausted deliveries.
DELIVERY_PROCESS = "event-delivery"
#: Deliveries one ``deliver`` call attempts at most before it hands back to the workflow.
DELIVERIES_PER_CALL = 500


def as_utc(moment: datetime) -> datetime:
    """SQLite gives times back without their zone: they are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass
class DispatchInput:
    batch: int = 200
    #: A sweep (not a poke): wake every subscription that has deliveries pending, too.
    sweep: bool = False


@dataclass
class DispatchResult:
    dispatched: int
    more: bool


@dataclass
class DeliverInput:
    subscription_id: str
    #: Seconds after which the call takes no new round of deliveries.
    budget_seconds: float = 60.0


@dataclass
class DeliverResult:
    #: The subscription ended (deleted, or 410): the relay of it stops.
    ended: bool = False
    delivered: int = 0
    failed: int = 0
    #: Work is due now (the call stopped at its budget).
    more: bool = False
    #: Seconds until the next pending delivery is due; None: nothing pending.
    wait_seconds: float | None = None


@dataclass
class ReplayInput:
    subscription_id: str
    delivery_id: int
    decided_by: str
    reason: str | None = None


@dataclass
class ReplayResult:
    delivery_id: int
    event_id: str


@dataclass
class SinkBatchInput:
    sink: str
    batch: int = 200


@dataclass
class SinkEvent:
    delivery_id: int
    domain: str
    resource_id: str
    resource_key: str
    event_id: str
    event: dict[str, Any]


@dataclass
class SinkDoneInput:
    sink: str
    delivery_ids: list[int] = field(default_factory=list)


@dataclass
class PruneInput:
    #: Rows one call deletes at most (of each table); ``more`` says when some are left.
    batch: int = 5000


@dataclass
class PruneResult:
    deliveries: int
    events: int
    more: bool


def _meter_add(name: str, description: str, amount: int = 1, **labels: str) -> None:
    if activity.in_activity():
        activity.metric_meter().with_additional_attributes(labels).create_counter(
            name, description
        ).add(amount)


def relay_or_default(relay: RelayInput | None) -> RelayInput:
    """``relay``, or the relay on the running activity's own task queue."""
    if relay is not None:
        return relay
    return RelayInput(task_queue=activity.info().task_queue if activity.in_activity() else "hub")


async def wake_relay(relay: RelayInput | None) -> None:
    """After a commit that wrote events someone listens to (:func:`hub.events.relay.listened`,
    asked in the writer's transaction with :func:`relay_or_default`): poke
    the relay (from inside an activity; the relay runs on the activity's own task queue
    unless ``relay`` says otherwise)."""
    if not activity.in_activity():
        return
    poke_soon(activity.client(), relay_or_default(relay))


class EventActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        callbacks: EventCallbackClient,
        unsealer: Unsealer | None,
        *,
        client: Client | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.callbacks = callbacks
        self.unsealer = unsealer
        self._client = client

    def client(self) -> Client:
        return self._client or activity.client()

    # --- fan-out --------------------------------------------------------------------------

    @defn("events.dispatch")
    async def dispatch(self, data: DispatchInput) -> DispatchResult:
        """Fan the oldest events not yet dispatched out into deliveries (one per matching
        subscription, one per broker sink), then wake the relays that got work."""
        now = utcnow()
        woken: set[str] = set()
        sinks: set[str] = set()
        async with session_scope(self.sessions) as session:
            rows = list(
                await session.exec(
                    select(OutboxEvent)
                    .where(col(OutboxEvent.dispatched_at).is_(None))
                    .order_by(col(OutboxEvent.seq))
                    .limit(data.batch)
                )
            )
            if activity.in_activity():
                lag = (now - as_utc(rows[0].created_at)).total_seconds() if rows else 0.0
                activity.metric_meter().create_gauge_float(
                    "hub_events_outbox_lag_seconds",
                    "Age of the oldest event the relay had not fanned out yet",
                ).set(max(lag, 0.0))
            subscriptions = []
            for sub in await session.exec(
                select(EventSubscription).where(
                    EventSubscription.status == SubscriptionStatus.ACTIVE
                )
            ):
                try:
                    subscriptions.append((sub, parse_query(sub.query, Domain(sub.api))))
                except (QueryError, ValueError):  # refused at the door; never here
                    logger.error("subscription %s has a query the hub cannot evaluate", sub.id)
            for row in rows:
                assert row.seq is not None
                targets = [
                    sub.id
                    for sub, wanted in subscriptions
                    if sub.api == row.domain
                    and (sub.partner_id is None or sub.partner_id == row.partner_id)
                    # A subscriber gets the events after it subscribed, however late the
                    # relay fans them out (a writer that saw no listener did not poke).
                    and as_utc(row.created_at) >= as_utc(sub.created_at)
                    and wanted.matches(row.envelope)
                ]
                targets += [SINK_PREFIX + sink for sink in self.settings.events_brokers]
                for target in targets:
                    session.add(
                        EventDelivery(
                            subscription_id=target,
                            event_id=row.event_id,
                            event_seq=row.seq,
                            event_type=row.event_type,
                            resource_key=f"{row.resource_type}/{row.resource_id}",
                            resource_seq=row.resource_seq,
                            next_attempt_at=now,
                            created_at=as_utc(row.created_at),
                        )
                    )
                woken.update(t for t in targets if not t.startswith(SINK_PREFIX))
                sinks.update(self.settings.events_brokers)
                row.dispatched_at = now
                session.add(row)
            if data.sweep:
                pending = await session.exec(
                    select(EventDelivery.subscription_id)
                    .where(EventDelivery.status == DeliveryStatus.PENDING)
                    .distinct()
                )
                for target in pending:
                    if target.startswith(SINK_PREFIX):
                        sinks.add(target.removeprefix(SINK_PREFIX))
                    else:
                        woken.add(target)
        await self._wake(woken, sinks)
        return DispatchResult(dispatched=len(rows), more=len(rows) >= data.batch)

    async def _wake(self, subscriptions: set[str], sinks: set[str]) -> None:
        """Signal-with-start the relays that have work. A relay that cannot be told now is
        told by the next sweep (``dispatch`` with ``sweep``)."""
        if not subscriptions and not sinks:
            return
        client = self.client()
        queue = self.settings.task_queue
        sweep = self.settings.events_sweep_interval.total_seconds()
        attempt = self.settings.events_attempt_timeout.total_seconds()
        starts = [
            client.start_workflow(
                SUBSCRIPTION_WORKFLOW,
                SubscriptionRelayInput(
                    subscription_id=sid,
                    sweep_seconds=sweep,
                    task_queue=queue,
                    attempt_seconds=attempt,
                ),
                id=subscription_workflow_id(sid),
                task_queue=queue,
                start_signal=POKE,
            )
            for sid in sorted(subscriptions)
        ] + [
            client.start_workflow(
                SINK_WORKFLOW,
                SinkRelayInput(
                    sink=sink,
                    sweep_seconds=sweep,
                    batch=self.settings.events_batch_size,
                    task_queue=queue,
                    attempt_seconds=attempt,
                ),
                id=sink_workflow_id(queue, sink),
                task_queue=queue,
                start_signal=POKE,
            )
            for sink in sorted(sinks)
        ]
        results = await asyncio.gather(*starts, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                logger.warning("could not wake an event relay: %s", type(result).__name__)

    # --- delivery -------------------------------------------------------------------------

    def _secrets(self, sub: EventSubscription) -> list[str]:
        if self.unsealer is None:
            raise ApplicationError(
                "event deliveries are signed with sealed secrets: HUB_SEAL_KEYS is not set "
                "on this worker",
                type="SealKeysMissing",
            )
        try:
            return [
                self.unsealer.unseal(SECRET_FIELD, token, context=sub.id)
                for token in sub.secrets_sealed
            ]
        except SealError as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__) from None

    @defn("events.deliver")
    async def deliver(self, data: DeliverInput) -> DeliverResult:
        """Deliver what is due of one subscription. Its pending events form one lane per
        resource, in order; lanes run side by side (``HUB_EVENTS_CONCURRENCY`` requests in
        flight), each one event after the other, stopping at its first failure (the rest of
        that lane waits for the retry of its head)."""
        result = DeliverResult()
        async with self.sessions() as session:
            sub = await session.get(EventSubscription, data.subscription_id)
            if sub is None or sub.status != SubscriptionStatus.ACTIVE:
                await self._cancel_pending(data.subscription_id)
                result.ended = True
                return result
            secrets = self._secrets(sub)
        lanes = await self._lanes(data.subscription_id)
        now = utcnow()
        due = [lane for lane in lanes if as_utc(lane[0].next_attempt_at) <= now]
        later = [as_utc(lane[0].next_attempt_at) for lane in lanes if lane not in due]
        if later:
            result.wait_seconds = max((min(later) - now).total_seconds(), 0.0)
        taken: list[list[EventDelivery]] = []
        budget = DELIVERIES_PER_CALL
        for lane in due:
            if budget <= 0:
                result.more = True
                break
            taken.append(lane[:budget])
            budget -= len(taken[-1])
            result.more = result.more or len(taken[-1]) < len(lane)
        if not taken:
            return result
        envelopes = await self._envelopes([d.event_seq for lane in taken for d in lane])
        limit = asyncio.Semaphore(self.settings.events_concurrency)
        deadline = time.monotonic() + data.budget_seconds

        async def run(lane: list[EventDelivery]) -> list[tuple[EventDelivery, Answer]]:
            outcomes = []
            for delivery in lane:
                if time.monotonic() > deadline:
                    result.more = True
                    break
                async with limit:
                    answer = await self._send(sub, secrets, envelopes[delivery.event_seq], delivery)
                outcomes.append((delivery, answer))
                if not answer.delivered:
                    break
            return outcomes

        outcomes = [
            o for lane in await asyncio.gather(*(run(lane) for lane in taken)) for o in lane
        ]
        if await self._record(sub, outcomes, result):
            result.ended = True
            result.more = False
        elif result.failed:
            result.more = True  # the failed heads got their next attempt's time: look again
        return result

    async def _send(
        self,
        sub: EventSubscription,
        secrets: list[str],
        envelope: dict[str, Any],
        delivery: EventDelivery,
    ) -> Answer:
        body = json.dumps(envelope, separators=(",", ":")).encode()
        return await self.callbacks.post(
            sub.callback,
            body,
            secrets=secrets,
            message_id=delivery.event_id,
            timeout=self.settings.events_delivery_timeout.total_seconds(),
        )

    async def _lanes(self, subscription_id: str) -> list[list[EventDelivery]]:
        """The subscription's pending deliveries, one list per resource, oldest first."""
        async with self.sessions() as session:
            rows = await session.exec(
                select(EventDelivery)
                .where(
                    EventDelivery.subscription_id == subscription_id,
                    EventDelivery.status == DeliveryStatus.PENDING,
                )
                .order_by(col(EventDelivery.resource_key), col(EventDelivery.resource_seq))
                .limit(5000)
            )
            lanes: dict[str, list[EventDelivery]] = {}
            for delivery in rows:
                lanes.setdefault(delivery.resource_key, []).append(delivery)
            return list(lanes.values())

    async def _envelopes(self, seqs: list[int]) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        async with self.sessions() as session:
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                rows = await session.exec(
                    select(OutboxEvent.seq, OutboxEvent.envelope).where(
                        col(OutboxEvent.seq).in_(chunk)
                    )
                )
                for seq, envelope in rows:
                    assert seq is not None
                    found[seq] = dict(envelope)
        return found

    async def _record(
        self,
        sub: EventSubscription,
        outcomes: Sequence[tuple[EventDelivery, Answer]],
        result: DeliverResult,
    ) -> bool:
        """Write the answers to the delivery log; True if the callback said 410 Gone."""
        schedule = self.settings.events_retry_schedule
        cap = self.settings.events_max_retry_after.total_seconds()
        gone = False
        answers = {delivery.id: answer for delivery, answer in outcomes}
        async with session_scope(self.sessions) as session:
            rows = await session.exec(
                select(EventDelivery).where(col(EventDelivery.id).in_(list(answers)))
            )
            for delivery in rows:
                answer = answers[delivery.id]
                if delivery.status != DeliveryStatus.PENDING:
                    continue
                now = utcnow()
                delivery.attempts += 1
                delivery.last_status_code = answer.status
                delivery.last_error = answer.error
                if answer.delivered:
                    delivery.status = DeliveryStatus.DELIVERED
                    delivery.delivered_at = now
                    result.delivered += 1
                    await self._resolve_letter(session, delivery)
                    self._observe_delivered(delivery, now)
                elif answer.status == 410:
                    gone = True
                    _meter_add("hub_event_deliveries", "Event deliveries", outcome="gone")
                elif delivery.attempts > len(schedule):
                    result.failed += 1
                    delivery.status = DeliveryStatus.DEAD
                    await self._park(session, sub, delivery, now)
                    result.more = True  # the events after it in its lane go now
                    _meter_add("hub_event_deliveries", "Event deliveries", outcome="dead")
                else:
                    result.failed += 1
                    wait = schedule[delivery.attempts - 1].total_seconds()
                    if answer.retry_after is not None:
                        wait = min(answer.retry_after, cap)
                    delivery.next_attempt_at = now + timedelta(seconds=wait)
                    soonest = result.wait_seconds
                    result.wait_seconds = wait if soonest is None else min(soonest, wait)
                    _meter_add("hub_event_deliveries", "Event deliveries", outcome="retry")
                session.add(delivery)
            if gone:
                row = await session.get(EventSubscription, sub.id)
                if row is not None and row.status == SubscriptionStatus.ACTIVE:
                    row.status = SubscriptionStatus.ENDED
                    row.ended_reason = "the callback answered 410 Gone"
                    row.ended_at = utcnow()
                    session.add(row)
        if gone:
            await self._cancel_pending(sub.id)
            logger.info("subscription %s ended: its callback answered 410 Gone", sub.id)
        return gone

    def _observe_delivered(self, delivery: EventDelivery, now: datetime) -> None:
        _meter_add("hub_event_deliveries", "Event deliveries", outcome="delivered")
        if activity.in_activity():
            activity.metric_meter().create_histogram_float(
                "hub_event_delivery_lag_seconds",
                "From the event's write to its delivery",
                "s",
            ).record(max((now - as_utc(delivery.created_at)).total_seconds(), 0.0))

    async def _cancel_pending(self, subscription_id: str) -> None:
        async with session_scope(self.sessions) as session:
            for delivery in await session.exec(
                select(EventDelivery).where(
                    EventDelivery.subscription_id == subscription_id,
                    EventDelivery.status == DeliveryStatus.PENDING,
                )
            ):
                delivery.status = DeliveryStatus.CANCELLED
                session.add(delivery)

    async def _park(
        self, session: AsyncSession, sub: EventSubscription, delivery: EventDelivery, now: datetime
    ) -> None:
        """The delivery exhausted its retries: a dead letter in the inbox, replayable."""
        info = activity.info() if activity.in_activity() else None
        letter = await session.get(DeadLetter, delivery.dead_letter_id or "")
        if letter is not None:  # a replay failed again: the same incident, parked once more
            letter.status = DeadLetterStatus.PARKED
            letter.last_error = delivery.last_error or "no answer"
            letter.attempts += delivery.attempts
            letter.last_failure_at = now
            letter.parked_at = now
            letter.closed_at = None
            session.add(letter)
            return
        resource_type, _, resource_id = delivery.resource_key.partition("/")
        letter = DeadLetter(
            id=uuid.uuid4().hex,
            workflow_id=subscription_workflow_id(sub.id),
            run_id=(info.workflow_run_id or "") if info else "",
            process=DELIVERY_PROCESS,
            order_id=resource_id if resource_type == "serviceOrder" else None,
            step=f"deliver {delivery.event_type}",
            system="events",
            activity="events.deliver",
            input={
                "subscriptionId": sub.id,
                "deliveryId": delivery.id,
                "eventId": delivery.event_id,
                "eventType": delivery.event_type,
                "callback": sub.callback,
            },
            error_type="DeliveryExhausted",
            last_error=delivery.last_error or "no answer",
            attempts=delivery.attempts,
            first_failure_at=as_utc(delivery.created_at),
            last_failure_at=now,
            deadline=now + timedelta(days=365),
        )
        session.add(letter)
        delivery.dead_letter_id = letter.id

    @staticmethod
    async def _resolve_letter(session: AsyncSession, delivery: EventDelivery) -> None:
        if delivery.dead_letter_id is None:
            return
        letter = await session.get(DeadLetter, delivery.dead_letter_id)
        if letter is not None and letter.status == DeadLetterStatus.RETRYING:
            letter.status = DeadLetterStatus.RESOLVED
            letter.closed_at = utcnow()
            session.add(letter)

    @defn("events.replay")
    async def replay(self, data: ReplayInput) -> ReplayResult:
        """Make a dead delivery pending again (same event, same ``eventId``), its dead letter
        ``retrying`` with who decided; refused unless it is dead and the subscription active."""
        async with session_scope(self.sessions) as session:
            delivery = await session.get(EventDelivery, data.delivery_id)
            if delivery is None or delivery.subscription_id != data.subscription_id:
                raise ApplicationError(
                    f"no delivery {data.delivery_id} of this subscription",
                    type="NoSuchDelivery",
                    non_retryable=True,
                )
            if delivery.status != DeliveryStatus.DEAD:
                raise ApplicationError(
                    f"delivery {delivery.id} is {delivery.status}: only a dead one is replayed",
                    type="NotDead",
                    non_retryable=True,
                )
            sub = await session.get(EventSubscription, data.subscription_id)
            if sub is None or sub.status != SubscriptionStatus.ACTIVE:
                raise ApplicationError(
                    "the subscription has ended", type="SubscriptionEnded", non_retryable=True
                )
            now = utcnow()
            delivery.status = DeliveryStatus.PENDING
            delivery.attempts = 0
            delivery.next_attempt_at = now
            session.add(delivery)
            letter = await session.get(DeadLetter, delivery.dead_letter_id or "")
            if letter is not None:
                letter.status = DeadLetterStatus.RETRYING
                letter.decision = "retry"
                letter.decided_by = data.decided_by
                letter.decided_at = now
                letter.decision_reason = data.reason
                session.add(letter)
            assert delivery.id is not None
            return ReplayResult(delivery_id=delivery.id, event_id=delivery.event_id)

    # --- broker sinks ---------------------------------------------------------------------

    @defn("events.sink_batch")
    async def sink_batch(self, data: SinkBatchInput) -> list[SinkEvent]:
        """The sink's oldest pending events, in outbox order."""
        async with self.sessions() as session:
            rows = await session.exec(
                select(EventDelivery, OutboxEvent)
                .join(OutboxEvent, col(OutboxEvent.seq) == col(EventDelivery.event_seq))
                .where(
                    EventDelivery.subscription_id == SINK_PREFIX + data.sink,
                    EventDelivery.status == DeliveryStatus.PENDING,
                )
                .order_by(col(EventDelivery.event_seq))
                .limit(data.batch)
            )
            events = []
            for delivery, event in rows:
                assert delivery.id is not None
                events.append(
                    SinkEvent(
                        delivery_id=delivery.id,
                        domain=event.domain,
                        resource_id=event.resource_id,
                        resource_key=delivery.resource_key,
                        event_id=event.event_id,
                        event=event.envelope,
                    )
                )
            return events

    @defn("events.sink_done")
    async def sink_done(self, data: SinkDoneInput) -> None:
        now = utcnow()
        async with session_scope(self.sessions) as session:
            for delivery in await session.exec(
                select(EventDelivery).where(
                    col(EventDelivery.id).in_(data.delivery_ids),
                    EventDelivery.subscription_id == SINK_PREFIX + data.sink,
                )
            ):
                if delivery.status == DeliveryStatus.PENDING:
                    delivery.status = DeliveryStatus.DELIVERED
                    delivery.attempts += 1
                    delivery.delivered_at = now
                    session.add(delivery)
        _meter_add(
            "hub_event_deliveries",
            "Event deliveries",
            len(data.delivery_ids),
            outcome="delivered",
            sink=data.sink,
        )

    @defn("events.prune")
    async def prune(self, data: PruneInput) -> PruneResult:
        """Delete what ``HUB_EVENTS_RETENTION`` no longer keeps: deliveries that ended
        (delivered, or cancelled with their subscription) for events older than that, then
        the outbox rows of such events that no delivery refers to any more. A pending
        delivery and a dead one (a dead letter an operator may replay) keep their event."""
        cutoff = utcnow() - self.settings.events_retention
        async with session_scope(self.sessions) as session:
            ended = (
                select(EventDelivery.id)
                .where(
                    col(EventDelivery.status).in_(
                        [DeliveryStatus.DELIVERED, DeliveryStatus.CANCELLED]
                    ),
                    col(EventDelivery.created_at) < cutoff,
                )
                .limit(data.batch)
            )
            deliveries = (
                await session.exec(
                    delete(EventDelivery).where(col(EventDelivery.id).in_(ended.scalar_subquery()))
                )
            ).rowcount
            referred = select(EventDelivery.id).where(EventDelivery.event_seq == OutboxEvent.seq)
            unreferred = (
                select(OutboxEvent.seq)
                .where(
                    col(OutboxEvent.dispatched_at).is_not(None),
                    col(OutboxEvent.created_at) < cutoff,
                    ~referred.exists(),
                )
                .limit(data.batch)
            )
            events = (
                await session.exec(
                    delete(OutboxEvent).where(
                        col(OutboxEvent.seq).in_(unreferred.scalar_subquery())
                    )
                )
            ).rowcount
        if deliveries or events:
            logger.info("events retention: deleted %d deliveries and %d events", deliveries, events)
        return PruneResult(deliveries, events, max(deliveries, events) >= data.batch)
