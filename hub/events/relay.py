"""The relay's workflow names, ids and inputs, and the poke that wakes it after a commit.

They live in ``hub`` so the API and every activity that writes to the outbox can wake the
relay without importing the workflows (``workflows/events.py`` defines them under these names).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from hub.events.models import EventSubscription, SubscriptionStatus
from hub.settings import Settings

logger = logging.getLogger("hub.events")

RELAY_WORKFLOW = "EventRelay"
SUBSCRIPTION_WORKFLOW = "EventSubscriptionRelay"
SINK_WORKFLOW = "EventSinkRelay"
#: The signal that says "there is new work": new events, a delivery due.
POKE = "poke"
#: The activity the broker adapters provide (another package): called by name.
PUBLISH_TO_BROKER = "events.publish_to_broker"
#: The system of the relay's activities: their own task queue, so a slow subscriber never
#: delays an order's steps.
SYSTEM = "events"
#: ``delivery_id``s of the sinks' deliveries are in the delivery log under this prefix.
SINK_PREFIX = "sink:"


def relay_workflow_id(task_queue: str) -> str:
    """One relay per hub (hubs sharing a namespace have task queues of their own)."""
    return f"events-relay-{task_queue}"


def subscription_workflow_id(subscription_id: str) -> str:
    return f"events-subscription-{subscription_id}"


def sink_workflow_id(task_queue: str, sink: str) -> str:
    return f"events-sink-{task_queue}-{sink}"


@dataclass
class RelayInput:
    """The relay's settings, fixed for a run (they come from the settings of who starts it)."""

    #: How long the relay waits at most without a poke before it looks anyway.
    sweep_seconds: float = 30.0
    #: Outbox rows one dispatch takes.
    batch: int = 200
    #: The main task queue (activities' queues derive from it).
    task_queue: str = "hub"
    #: An activity attempt's timeout: what a killed worker's attempt delays its retry by.
    attempt_seconds: float = 120.0
    #: The broker sinks every event goes to (``HUB_EVENTS_BROKERS``): for the writers,
    #: :func:`listened`; the relay's dispatch reads its own settings.
    sinks: list[str] = field(default_factory=list)
    #: How often the relay deletes what ``HUB_EVENTS_RETENTION`` no longer keeps.
    prune_seconds: float = 3600.0


@dataclass
class SubscriptionRelayInput:
    subscription_id: str
    sweep_seconds: float = 30.0
    task_queue: str = "hub"
    attempt_seconds: float = 120.0


@dataclass
class SinkRelayInput:
    sink: str
    sweep_seconds: float = 30.0
    batch: int = 200
    task_queue: str = "hub"
    attempt_seconds: float = 120.0


async def poke(client: Client, relay: RelayInput) -> bool:
    """Wake the relay (starting it if it does not run); False if Temporal could not be told
    (the sweep delivers the events anyway)."""
    try:
        await client.start_workflow(
            RELAY_WORKFLOW,
            relay,
            id=relay_workflow_id(relay.task_queue),
            task_queue=relay.task_queue,
            start_signal=POKE,
            rpc_timeout=timedelta(seconds=5),
        )
    except Exception as exc:
        logger.warning("could not wake the event relay: %s", type(exc).__name__)
        return False
    return True


def relay_of(settings: Settings) -> RelayInput:
    """The relay's input from the settings."""
    return RelayInput(
        sweep_seconds=settings.events_sweep_interval.total_seconds(),
        batch=settings.events_batch_size,
        task_queue=settings.task_queue,
        attempt_seconds=settings.events_attempt_timeout.total_seconds(),
        sinks=list(settings.events_brokers),
        prune_seconds=settings.events_prune_interval.total_seconds(),
    )


async def listened(session: AsyncSession, relay: RelayInput) -> bool:
    """Whether events written in ``session`` have somewhere to go, so that a poke after the
    commit starts work: a broker sink, or an active subscription (read in the writer's
    transaction). With neither, the writer does not poke: a poke would cost the relay a
    workflow task and a dispatch to fan out to no one, per state change of every order; its
    sweep (``HUB_EVENTS_SWEEP_INTERVAL``) marks those events dispatched instead, and a
    subscription created meanwhile gets none of them (dispatch gives a subscription only the
    events written after it)."""
    if relay.sinks:
        return True
    found = await session.exec(
        select(EventSubscription.id)
        .where(EventSubscription.status == SubscriptionStatus.ACTIVE)
        .limit(1)
    )
    return found.first() is not None


class _Pokes:
    """One event loop's pokes: at most one in flight per relay, and one more after it when
    a writer asked meanwhile (the relay fans out everything new at each poke, so the writers
    between them need no poke of their own)."""

    def __init__(self) -> None:
        self.running: dict[str, asyncio.Task[None]] = {}
        self.again: set[str] = set()

    def ask(self, client: Client, relay: RelayInput) -> None:
        key = relay_workflow_id(relay.task_queue)
        if key in self.running:
            self.again.add(key)
            return
        self.running[key] = asyncio.get_running_loop().create_task(self._poke(client, relay, key))

    async def _poke(self, client: Client, relay: RelayInput, key: str) -> None:
        try:
            while True:
                self.again.discard(key)
                await poke(client, relay)
                if key not in self.again:
                    return
        finally:
            del self.running[key]


#: Per event loop (a test's loop ends with its test; a task of a closed loop never finishes).
_POKES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pokes] = weakref.WeakKeyDictionary()


def poke_soon(client: Client, relay: RelayInput) -> None:
    """:func:`poke` without waiting for it: the writer's answer (an API response, an
    activity's completion) is not held up by the relay's RPC. While a poke is under way, the
    writers' pokes fold into one that follows it. A poke lost with its process is made good
    by the relay's sweep."""
    loop = asyncio.get_running_loop()
    pokes = _POKES.get(loop)
    if pokes is None:
        pokes = _POKES[loop] = _Pokes()
    pokes.ask(client, relay)
