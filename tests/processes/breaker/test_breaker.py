"""The circuit breaker of an outside system at the issue's scale, on the real dev server, worker
and simulators: a billing outage with 200 orders in flight makes far fewer calls to billing
with the breaker than without it, and every order completes once billing is back.

What it proves, both arms in one run on the same machine (a loaded machine slows both):

- **Far fewer calls.** Billing refuses every call (all its operations: an outage, not one
  failing operation) while 200 orders are placed through the API, one after the other as
  clients send them, and for ``OUTAGE`` seconds after the last one, all 200 in flight. The
  same is done to 200 other orders on a stack of their own (task queue, database) without a
  breaker, where each order kept retrying. With the breaker billing is asked at most a third
  as often in those last ``OUTAGE`` seconds, and at most a third as often per second over
  the whole outage (the calls before it tripped and the probes included: the two outages'
  lengths differ with the time the orders took to place). A breaker that held nothing would
  make as many calls as the other arm and fail both.
- **Every order completes once billing is back**, with nothing duplicated in billing: each
  order's customer has exactly one account and each line exactly one active subscription in
  the billing simulator's own records.
- **The breaker itself at that scale**: one breaker run for the whole outage (its trips
  signal the same run), its ``major`` alarm raised once and cleared once,
  ``hub_breaker_state{system="billing"}`` on the worker's metrics 1 (open) during the outage
  and 0 once closed, and at least two probes (one that found billing down, the one that
  closed it).

The arm without a breaker counts calls only: its orders are terminated once the outage ends,
billing still down (carrying them out too would add a minute and prove nothing about the
breaker).

A second test starts a worker with 200 orders already waiting on a billing that is down (a
restart): the breaker, ahead of them in Temporal's queues, holds billing before half of
their first attempts reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from activities.alarms import RaiseAlarmInput
from activities.breaker import BREAKER_ID_PREFIX
from activities.definitions import task_queue_for
from adapters.billing import billing_msisdn
from hub.alarms import PerceivedSeverity
from hub.settings import RetrySettings, Settings
from tests.conftest import (
    Hub,
    Simulators,
    eventually,
    free_port,
    metrics_client,
    running_hub,
    settings_for,
)
from tests.factories import new_identity, order
from workflows.breaker import BreakerResult

ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
IN_FLIGHT = 200
#: Seconds billing stays down once the last order is placed (it is down while they are placed
#: too). Without a breaker each order retries every 5 s at most (the policy below) for all of
#: it; with one, the calls are those before it trips and a probe's few each second.
OUTAGE = 10.0


def breaker_settings(settings: Settings) -> Settings:
    # Billing retried every 0.2-5 s with no attempt limit and a budget far beyond the test: a
    # step held by the breaker waits in its queue, and must not park while it does.
    settings.retry["billing"] = RetrySettings(
        initial_interval=timedelta(milliseconds=200),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=5),
        maximum_attempts=0,
        attempt_timeout=timedelta(seconds=5),
        schedule_to_close=timedelta(minutes=15),
    )
    settings.breaker_min_calls = 10
    settings.breaker_window = timedelta(seconds=10)
    settings.breaker_probe_interval = timedelta(seconds=1)
    return settings


@pytest.fixture
async def hub_settings(hub_settings: Settings, temporal_client: Client) -> Settings:
    hub_settings.worker_metrics_address = f"127.0.0.1:{free_port()}"
    # Breakers are one per system in a namespace: one an earlier test tripped, its worker
    # gone, would take this test's trips (they signal the running one) and hold nothing here.
    await end_breaker(temporal_client)
    return breaker_settings(hub_settings)


async def end_breaker(client: Client) -> None:
    """Terminate billing's breaker run, if one is running."""
    with contextlib.suppress(RPCError):  # none running
        await client.get_workflow_handle(f"{BREAKER_ID_PREFIX}billing").terminate(
            "breaker test: not this test's"
        )


@pytest.fixture
async def hub(
    hub_settings: Settings, temporal_client: Client, sims: Simulators
) -> AsyncIterator[Hub]:
    """The hub with the breaker, its worker on a client whose runtime exports metrics (as
    ``worker.run`` does with ``HUB_WORKER_METRICS_ADDRESS``)."""
    client = await metrics_client(hub_settings, temporal_client)
    async with running_hub(hub_settings, client) as running:
        yield running


async def place(hub: Hub, identities: list[dict[str, str]]) -> list[str]:
    """Post one order per identity through the API, one after the other; their ids. (Eight
    at a time, some got a 500, SQLite's "database is locked": the API's limit on SQLite,
    not the breaker's.)"""
    ids = []
    for identity in identities:
        created = await hub.api.post(ORDERS, json=order(identity))
        assert created.status_code == 201, created.text
        ids.append(str(created.json()["id"]))
    return ids


@dataclass
class Outage:
    """What one arm's outage cost billing: the calls it refused in all (from the 200 orders'
    first to the end) and in the last ``OUTAGE`` seconds (all 200 in flight), and how long."""

    ids: list[str]
    refused: int
    refused_in_flight: int
    placing: float
    seconds: float
    #: When billing answered again (``time.monotonic()``).
    ended: float


async def outage(
    hub: Hub,
    sims: Simulators,
    identities: list[dict[str, str]],
    *,
    during: Callable[[], Awaitable[Any]] | None = None,
    before_the_end: Callable[[], Awaitable[Any]] | None = None,
) -> Outage:
    """Billing down (every operation) while the orders are placed and ``OUTAGE`` seconds
    after the last one; ``during`` runs in those seconds, ``before_the_end`` after them but
    before billing answers again."""
    rule = await sims.fault("billing", operation="*", kind="transient")
    begun = time.monotonic()
    ids = await place(hub, identities)
    placed = time.monotonic()
    before = await refused(sims, rule)
    if during is not None:
        await during()
    # The outage lasts its time, the same in both arms: a scenario's length, not a condition
    # to wait for.
    while time.monotonic() - placed < OUTAGE:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    total = await refused(sims, rule)
    ended = time.monotonic()
    if before_the_end is not None:
        await before_the_end()
    await sims.clear_faults()
    return Outage(ids, total, total - before, placed - begun, ended - begun, time.monotonic())


async def refused(sims: Simulators, rule: dict[str, Any]) -> int:
    """How many calls the fault rule ``rule`` has refused so far."""
    response = await sims.http.get(f"{sims.urls['billing']}/_sim/faults")
    return int(next(r for r in response.json() if r["id"] == rule["id"])["applied"])


async def states(hub: Hub, ids: list[str]) -> list[str]:
    listed = (await hub.api.get(ORDERS, params={"fields": "state", "limit": 1000})).json()
    by_id = {o["id"]: o["state"] for o in listed}
    return [by_id.get(i, "missing") for i in ids]


async def all_completed(hub: Hub, ids: list[str], timeout: float) -> None:
    async def done() -> bool:
        now = await states(hub, ids)
        assert not set(now) & {"failed", "cancelled", "missing"}, Counter(now)
        return all(state == "completed" for state in now)

    try:
        await eventually(done, timeout=timeout, interval=1.0)
    except AssertionError:
        letters = (await hub.api.get("/deadLetters", params={"status": "parked"})).json()
        raise AssertionError(
            f"states {Counter(await states(hub, ids))}, parked: "
            + "; ".join(f"{d['step']}: {d['lastError']}" for d in letters[:5])
        ) from None


async def breaker_state(hub: Hub) -> float | None:
    """``hub_breaker_state{system="billing"}`` as the worker's exporter shows it now."""
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"http://{hub.settings.worker_metrics_address}/metrics")).text
    found = re.search(r'^hub_breaker_state\{[^}]*system="billing"[^}]*\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


async def alarms_of(hub: Hub, workflow_id: str, run_id: str) -> list[PerceivedSeverity]:
    """The severities of the alarms a breaker run sent, in order."""
    handle = hub.client.get_workflow_handle(workflow_id, run_id=run_id)
    severities = []
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        scheduled = event.activity_task_scheduled_event_attributes
        if scheduled.activity_type.name != "alarms.raise":
            continue
        [alarm] = await hub.client.data_converter.decode(
            scheduled.input.payloads, [RaiseAlarmInput]
        )
        severities.append(PerceivedSeverity(alarm.severity))
    return severities


async def test_a_billing_outage_with_200_orders_is_held_by_the_breaker_and_every_order_completes(
    hub: Hub, sims: Simulators, temporal_client: Client, tmp_path: Path
) -> None:
    identities = [new_identity() for _ in range(IN_FLIGHT)]

    async def seen_open() -> None:
        # Open while billing is down: the worker's gauge says so (1; 2 while half-open).
        await eventually(lambda: _is(breaker_state(hub), 1.0), timeout=OUTAGE, interval=0.1)

    guarded = await outage(hub, sims, identities, during=seen_open)
    await all_completed(hub, guarded.ids, timeout=600)
    recovered = time.monotonic()

    # One breaker run for the whole outage; it closed (its run ended) once billing answered.
    runs = [
        run
        async for run in hub.client.list_workflows(
            f'WorkflowType = "CircuitBreaker" AND TaskQueue = "{hub.settings.task_queue}"'
        )
    ]
    assert len(runs) == 1, [(r.id, r.run_id, r.status) for r in runs]
    result = await hub.client.get_workflow_handle(
        runs[0].id, run_id=runs[0].run_id, result_type=BreakerResult
    ).result()
    assert result.system == "billing" and result.probes >= 2, result
    assert await alarms_of(hub, runs[0].id, runs[0].run_id) == [
        PerceivedSeverity.MAJOR,
        PerceivedSeverity.CLEARED,
    ]
    await eventually(lambda: _is(breaker_state(hub), 0.0), timeout=30)

    # Nothing twice in billing: one account per customer, one subscription per line.
    billing = await sims.state("billing")
    accounts = Counter(a["customerId"] for a in billing["accounts"])
    lines = Counter(s["msisdn"] for s in billing["subscriptions"] if s["status"] == "active")
    assert {accounts[i["customer"]] for i in identities} == {1}, accounts
    assert {lines[billing_msisdn(i["msisdn"])] for i in identities} == {1}, lines

    # The same outage for 200 other orders, on a stack of its own (task queue, database) with
    # no breaker.
    unguarded = breaker_settings(settings_for(tmp_path / "without", sims.urls))
    unguarded.breaker_enabled = False
    (tmp_path / "without").mkdir()
    async with running_hub(unguarded, temporal_client) as bare:
        bare_identities = [new_identity() for _ in range(IN_FLIGHT)]
        free = await outage(bare, sims, bare_identities, before_the_end=lambda: stop(bare))

    print(
        f"{IN_FLIGHT} orders, billing down while placed and {OUTAGE:g} s after; calls refused "
        f"in the last {OUTAGE:g} s: {guarded.refused_in_flight} with the breaker, "
        f"{free.refused_in_flight} without; in the whole outage: {guarded.refused} in "
        f"{guarded.seconds:.0f} s ({guarded.refused / guarded.seconds:.1f}/s; placed in "
        f"{guarded.placing:.0f} s) with, {free.refused} in {free.seconds:.0f} s "
        f"({free.refused / free.seconds:.1f}/s; placed in {free.placing:.0f} s) without; "
        f"{result.probes} probes; all completed {recovered - guarded.ended:.0f} s after"
    )
    # Every order kept retrying (at least every 5 s: twice in 10 s at the retry policy's pace).
    assert free.refused_in_flight >= IN_FLIGHT, free
    # The same seconds with all 200 in flight; and the whole outages, per second.
    assert guarded.refused_in_flight <= free.refused_in_flight / 3, (guarded, free)
    assert guarded.refused / guarded.seconds <= free.refused / free.seconds / 3, (guarded, free)


async def stop(bare: Hub) -> None:
    """End the orders of the arm without a breaker: counted, not carried out."""
    query = f'WorkflowType = "ServiceActivation" AND TaskQueue = "{bare.settings.task_queue}"'
    handles = [
        bare.client.get_workflow_handle(run.id, run_id=run.run_id)
        async for run in bare.client.list_workflows(f"{query} AND ExecutionStatus = 'Running'")
    ]
    await asyncio.gather(*(h.terminate(reason="breaker test: counted only") for h in handles))


async def _is(value: Any, expected: float) -> bool:
    return bool(await value == expected)


@pytest.fixture
async def idle_hub(
    hub_settings: Settings, temporal_client: Client, sims: Simulators
) -> AsyncIterator[Hub]:
    """The hub with the breaker, its worker not started until the test says."""
    async with running_hub(hub_settings, temporal_client, worker=False) as running:
        yield running


async def held_rate(hub: Hub) -> float | None:
    """The rate limit the breaker set on billing's activity queue (None: no limit)."""
    answer = await hub.client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=hub.client.namespace,
            task_queue=TaskQueue(name=task_queue_for(hub.settings.task_queue, "billing")),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            report_config=True,
        )
    )
    if not answer.config.HasField("queue_rate_limit"):
        return None
    limit = answer.config.queue_rate_limit
    return limit.rate_limit.requests_per_second if limit.HasField("rate_limit") else None


async def test_the_breaker_holds_billing_ahead_of_a_backlog_of_200_orders(
    idle_hub: Hub, sims: Simulators
) -> None:
    """A worker that starts with 200 orders waiting while billing is down (a restart, a
    deploy) holds billing after a few of their calls: its breaker's workflow and activities go
    ahead of theirs on the hub's queues (``activities.breaker.BREAKER_PRIORITY``). Queued
    behind them it held billing after 22 s and 597 calls, every order's first attempt and
    more; first in line, 7 s and 18 calls."""
    assert idle_hub.start_worker is not None
    rule = await sims.fault("billing", operation="*", kind="transient")
    await place(idle_hub, [new_identity() for _ in range(IN_FLIGHT)])
    await idle_hub.start_worker()
    started = time.monotonic()

    async def when_held() -> int | None:
        return await refused(sims, rule) if await held_rate(idle_hub) == 0 else None

    try:
        calls = await eventually(when_held, timeout=180, interval=0.1)
        print(f"billing held {time.monotonic() - started:.1f} s after the worker started, {calls}")
        assert calls <= IN_FLIGHT / 2, calls  # fewer than the orders' first attempts
    finally:
        # Ended here, or the next test's trip would join this run on this test's queue.
        await stop(idle_hub)
        await end_breaker(idle_hub.client)
