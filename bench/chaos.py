"""Orders under faults and crashes, and the ledger that says whether anything was lost.

Shared by the chaos tests (``tests/chaos/``) and the soak (``python -m bench.soak``). Both run
orders through a private :class:`~bench.stack.BenchStack` while the simulators fail calls at
random and the worker (and the Temporal dev server) are killed and restarted, then check:

- the hub database holds each order once, in a final state (or parked, waiting for a person);
- each simulator holds every record of each completed order exactly once (no *duplicates*,
  nothing *missing*);
- no simulator holds a record of an order that did not complete (no *orphans*).

A record belongs to an order through the order's identity: its customer id (credit check,
CRM customer, billing account) or its IMSI (CRM service, HSS subscriber, billing
subscription). Every order of a run gets identities of its own.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from hub.settings import SYSTEMS

ORDERS_PATH = "/tmf-api/serviceOrdering/v4/serviceOrder"
# 3GPP TS 35.208 test set 1: OPc given, so no Milenage per order.
TS35208_K = "465b5ce8b199b49faa5f0a2ee238a6bc"
TS35208_OPC = "cd63cb71954a9f4e48a5994e37a02baf"
FINAL_STATES = frozenset({"completed", "failed", "cancelled"})
#: Outside calls of one ``add`` order without faults: price, credit, CRM customer, HSS,
#: billing account, billing subscription, CRM service.
CALLS_PER_ORDER = 7


# --- Retry budget -----------------------------------------------------------------------------


def attempts_for(fault_rate: float, calls: int, risk: float = 1e-3) -> int:
    """Attempts per call so that, with every attempt failing independently at ``fault_rate``,
    the chance that any of ``calls`` calls exhausts them stays below ``risk``.

    P(one call exhausts n attempts) = rate**n; over all calls about calls * rate**n.
    """
    if fault_rate <= 0:
        return 3
    return max(3, math.ceil(math.log(risk / max(calls, 1)) / math.log(fault_rate)))


def retry_env(
    attempts: int,
    *,
    initial_s: float = 0.05,
    maximum_s: float = 0.5,
    attempt_timeout_s: float = 5.0,
    http_timeout_s: float = 3.0,
) -> dict[str, str]:
    """``HUB_*`` settings for short retries of every outside system (and the hub's own store).

    A short attempt timeout matters after a crash: an attempt the killed worker had started is
    only retried once its start-to-close timeout has passed.
    """
    env = {"HUB_HTTP_TIMEOUT": str(http_timeout_s)}
    for system in (*SYSTEMS, "hub"):
        prefix = f"HUB_RETRY__{system.upper()}__"
        env |= {
            f"{prefix}INITIAL_INTERVAL": str(initial_s),
            f"{prefix}BACKOFF_COEFFICIENT": "2",
            f"{prefix}MAXIMUM_INTERVAL": str(maximum_s),
            # The hub's own database is retried without limit (0), as in production.
            f"{prefix}MAXIMUM_ATTEMPTS": "0" if system == "hub" else str(attempts),
            f"{prefix}ATTEMPT_TIMEOUT": str(attempt_timeout_s),
        }
    return env


# --- Orders -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """What makes one order's records recognisable in every simulator."""

    external_id: str
    customer: str
    imsi: str
    #: E.164 digits without "+", as billing and the HSS store it.
    msisdn: str


def new_identities(count: int, run: str | None = None) -> list[Identity]:
    """``count`` identities no other run shares (a random block of IMSIs, a run tag)."""
    run = run or secrets.token_hex(4)
    base = secrets.randbelow(9 * 10**9 - count)
    return [
        Identity(
            external_id=f"chaos-{run}-{i:06d}",
            customer=f"CUST-{run}-{i:06d}",
            imsi=f"00101{base + i:010d}",
            msisdn=f"4366{base + i:010d}",
        )
        for i in range(count)
    ]


def order_body(identity: Identity, plan: str = "STANDARD-5G") -> dict[str, Any]:
    """A TMF641 ``add`` order of one 5G subscription for ``identity``."""
    characteristics = {
        "imsi": identity.imsi,
        "msisdn": f"+{identity.msisdn}",
        "ki": TS35208_K,
        "opc": TS35208_OPC,
        "plan": plan,
        "qci": 9,
        "ambrDownlink": 300_000_000,
        "ambrUplink": 50_000_000,
        "dataQuota": 0,
    }
    return {
        "externalId": identity.external_id,
        "description": "chaos order",
        "relatedParty": [{"id": identity.customer, "name": "Chaos Customer", "role": "customer"}],
        "serviceOrderItem": [
            {
                "id": "1",
                "action": "add",
                "service": {
                    "serviceSpecification": {"name": "mobile-4g5g"},
                    "serviceCharacteristic": [
                        {"name": name, "value": value} for name, value in characteristics.items()
                    ],
                },
            }
        ],
    }


class SubmitError(Exception):
    """An order the API did not accept before the deadline."""


async def submit(
    api: httpx.AsyncClient, identity: Identity, *, deadline: float, backoff_s: float = 0.5
) -> str:
    """POST one order until the API accepts it; answers the order id.

    A broken connection or a 503 (Temporal unreachable, e.g. while the dev server restarts)
    is retried until ``deadline`` (monotonic). That is safe: the same ``externalId`` again
    answers the order the hub already has.
    """
    last = ""
    while time.monotonic() < deadline:
        try:
            reply = await api.post(ORDERS_PATH, json=order_body(identity))
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if reply.status_code in (200, 201):
                return str(reply.json()["id"])
            if reply.status_code != 503:
                raise SubmitError(f"{identity.external_id}: {reply.status_code} {reply.text}")
            last = f"503 {reply.text[:200]}"
        await asyncio.sleep(backoff_s)  # back off before the next try, bounded by the deadline
    raise SubmitError(f"{identity.external_id} not accepted before the deadline: {last}")


async def submit_all(
    api: httpx.AsyncClient,
    identities: Sequence[Identity],
    *,
    concurrency: int = 20,
    timeout: float = 120.0,
) -> dict[Identity, str]:
    """POST every order, ``concurrency`` at a time; answers identity -> order id."""
    deadline = time.monotonic() + timeout
    gate = asyncio.Semaphore(concurrency)

    async def one(identity: Identity) -> tuple[Identity, str]:
        async with gate:
            return identity, await submit(api, identity, deadline=deadline)

    return dict(await asyncio.gather(*(one(i) for i in identities)))


# --- The hub database -------------------------------------------------------------------------


@dataclass(frozen=True)
class HubOrder:
    id: str
    external_id: str | None
    customer_id: str | None
    state: str
    #: Whether the order waits on a parked dead letter (a person must decide).
    parked: bool


def hub_orders(database: Path) -> list[HubOrder]:
    """Every order in a hub SQLite database, read-only (the API and worker keep writing)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
        parked = {
            row[0] for row in db.execute("SELECT order_id FROM dead_letter WHERE status = 'parked'")
        }
        rows = db.execute("SELECT id, external_id, customer_id, state FROM service_order")
        return [
            HubOrder(order_id, external_id, customer, state, parked=order_id in parked)
            for order_id, external_id, customer, state in rows
        ]


def settled(orders: Iterable[HubOrder]) -> int:
    """Orders that need nothing more from the hub: final, or parked for a person."""
    return sum(1 for order in orders if order.state in FINAL_STATES or order.parked)


# --- Simulator records ------------------------------------------------------------------------


async def simulator_states(http: httpx.AsyncClient, urls: Mapping[str, str]) -> dict[str, Any]:
    """``GET /_sim/state`` of every simulator, by system."""
    states = {}
    for system, url in urls.items():
        reply = await http.get(f"{url}/_sim/state", timeout=30)
        reply.raise_for_status()
        states[system] = reply.json()
    return states


#: The records one completed order leaves, and whether each is found by customer or IMSI.
RECORD_KINDS = {
    "credit check": "customer",
    "crm customer": "customer",
    "crm service": "imsi",
    "hss subscriber": "imsi",
    "billing account": "customer",
    "billing subscription": "imsi",
}


def records(states: Mapping[str, Any]) -> Counter[tuple[str, str]]:
    """How many records of each kind each customer id / IMSI has, over all simulators."""
    found: Counter[tuple[str, str]] = Counter()
    for check in states["credit"]["checks"]:
        found["credit check", check["customerId"]] += 1
    for customer in states["crm"]["customers"]:
        found["crm customer", customer["id"]] += 1
        for service in customer["services"]:
            found["crm service", service.get("imsi") or service["id"].removeprefix("svc-")] += 1
    for subscriber in states["hss"]["subscribers"]:
        found["hss subscriber", subscriber["imsi"]] += 1
    for account in states["billing"]["accounts"]:
        found["billing account", account["customerId"]] += 1
    for subscription in states["billing"]["subscriptions"]:
        found["billing subscription", subscription["imsi"]] += 1
    return found


@dataclass
class Ledger:
    """What a run left behind; ``ok`` when nothing is lost, doubled or left over."""

    #: Final (or last seen) hub state per order: completed, failed, cancelled, parked...
    states: Counter[str] = field(default_factory=Counter)
    #: Orders the hub database holds more than once (by externalId or customer).
    doubled_orders: list[str] = field(default_factory=list)
    #: Orders that were accepted but are not in the hub database.
    lost_orders: list[str] = field(default_factory=list)
    #: A simulator holds a record of an order more than once.
    duplicates: list[str] = field(default_factory=list)
    #: A simulator holds a record of an order that failed, was cancelled, is lost or stuck
    #: (neither final nor parked), or of no order at all.
    orphans: list[str] = field(default_factory=list)
    #: A completed order lacks a record it must have left.
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        problems = (self.doubled_orders, self.lost_orders, self.duplicates, self.orphans)
        return not any(problems) and not self.missing

    def summary(self, limit: int = 10) -> str:
        parts = [f"states {dict(self.states)}"]
        for name in ("doubled_orders", "lost_orders", "duplicates", "orphans", "missing"):
            found = getattr(self, name)
            if found:
                parts.append(f"{name} ({len(found)}): {found[:limit]}")
        return "; ".join(parts)


def audit(
    identities: Sequence[Identity],
    orders: Sequence[HubOrder],
    states: Mapping[str, Any],
    *,
    foreign_records_are_orphans: bool = False,
) -> Ledger:
    """Check the hub database and the simulators against the orders of one run.

    Records of customers and IMSIs that are not ``identities`` are someone else's, unless
    ``foreign_records_are_orphans`` (the simulators served this run alone).
    """
    ledger = Ledger()
    by_external = Counter(o.external_id for o in orders)
    by_customer = Counter(o.customer_id for o in orders)
    state_of: dict[Identity, str] = {}
    for identity in identities:
        mine = [o for o in orders if o.external_id == identity.external_id]
        if not mine:
            ledger.lost_orders.append(identity.external_id)
            continue
        if by_external[identity.external_id] > 1 or by_customer[identity.customer] > 1:
            ledger.doubled_orders.append(identity.external_id)
        order = mine[0]
        state_of[identity] = "parked" if order.parked else order.state
    ledger.states = Counter(state_of.values())

    owner: dict[tuple[str, str], Identity] = {}
    for identity in identities:
        for kind, key in RECORD_KINDS.items():
            owner[kind, identity.customer if key == "customer" else identity.imsi] = identity
    found = records(states)
    for (kind, key), count in sorted(found.items()):
        holder = owner.get((kind, key))
        if holder is None:
            if foreign_records_are_orphans:
                ledger.orphans.append(f"{kind} {key}: of no order of this run")
            continue
        if count > 1:
            ledger.duplicates.append(f"{kind} {key}: {count} records")
        # A parked order legitimately holds what it did so far: a person decides its fate.
        state = state_of.get(holder, "lost")
        if state not in ("completed", "parked"):
            ledger.orphans.append(f"{kind} {key}: order {holder.external_id} is {state}")
    for identity, state in state_of.items():
        if state != "completed":
            continue
        for kind, key in RECORD_KINDS.items():
            value = identity.customer if key == "customer" else identity.imsi
            if not found[kind, value]:
                ledger.missing.append(f"{kind} {value}: order {identity.external_id}")
    return ledger


# --- What the crashes interrupted ------------------------------------------------------------


@dataclass
class Interruptions:
    """Work a dead worker left half done, as the workflow histories show it."""

    #: Activities whose previous attempt timed out (started by a worker that then died).
    activity_attempts: int = 0
    #: Workflow tasks that timed out (held by a worker that then died).
    workflow_tasks: int = 0


async def interruptions(
    client: Client, workflow_ids: Iterable[str], concurrency: int = 16
) -> Interruptions:
    """Count, over the histories of ``workflow_ids``, what timed out and was done again."""
    found = Interruptions()
    gate = asyncio.Semaphore(concurrency)

    async def one(workflow_id: str) -> None:
        async with gate:
            history = await client.get_workflow_handle(workflow_id).fetch_history()
        for event in history.events:
            if event.HasField("activity_task_started_event_attributes"):
                started = event.activity_task_started_event_attributes
                if started.attempt > 1 and started.last_failure.HasField("timeout_failure_info"):
                    found.activity_attempts += 1
            elif event.HasField("workflow_task_timed_out_event_attributes"):
                found.workflow_tasks += 1

    await asyncio.gather(*(one(w) for w in workflow_ids))
    return found


@dataclass
class Stray:
    """A workflow whose order the hub database does not hold."""

    workflow_id: str
    status: str
    #: Outside activities (credit., crm., hss., billing.) it scheduled: should be none.
    outside_calls: int


async def stray_workflows(client: Client, known: set[str]) -> list[Stray]:
    """Service activations in Temporal whose workflow id is not one of ``known`` (the hub
    database's orders): what an API that died between start and commit leaves behind."""
    strays = []
    async for execution in client.list_workflows("WorkflowType = 'ServiceActivation'"):
        if execution.id in known:
            continue
        history = await client.get_workflow_handle(execution.id).fetch_history()
        calls = sum(
            1
            for event in history.events
            if event.HasField("activity_task_scheduled_event_attributes")
            and event.activity_task_scheduled_event_attributes.activity_type.name.split(".")[0]
            in SYSTEMS
        )
        status = execution.status.name if execution.status is not None else "UNKNOWN"
        strays.append(Stray(execution.id, status, calls))
    return strays
