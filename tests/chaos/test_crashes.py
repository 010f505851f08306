"""Crashes: the worker killed with SIGKILL mid-run, the Temporal dev server restarted.

Every order still ends completed, once: no second subscriber, account, subscription or credit
check anywhere, each order once in the hub database. Temporal re-runs what a dead worker had
in hand (after its attempt or workflow task timed out), and the idempotency keys turn each
re-run outside call into a replay of the first answer.
"""

from __future__ import annotations

import asyncio

from bench import chaos
from bench.chaos import order_body
from tests.chaos.conftest import Chaos
from tests.conftest import eventually
from workflows.service_activation import workflow_id_for

#: How long the client keeps re-posting until every order is accepted: the orders are posted
#: while workers die, and in the whole suite beside two other test processes' chaos stacks.
SUBMIT_DEADLINE = 300.0

ORDERS = 200
KILLS = 3


async def test_the_worker_killed_three_times_loses_and_doubles_nothing(chaos_hub: Chaos) -> None:
    identities = chaos.new_identities(ORDERS)
    # A little latency, so that every kill finds outside calls in flight.
    await chaos_hub.stack.configure_simulators(latency_ms=20)
    worker = chaos_hub.stack.children["worker"]
    order_ids = await chaos.submit_all(chaos_hub.api, identities, timeout=SUBMIT_DEADLINE)

    pids = []
    for kill in range(1, KILLS + 1):
        await chaos_hub.progress(identities, at_least=ORDERS * kill // (KILLS + 2))
        pids.append(worker.pid)
        chaos_hub.stack.kill("worker")
        assert worker.returncode == -9
        await chaos_hub.stack.restart("worker")
    assert len({*pids, worker.pid}) == KILLS + 1, "each restart is a new process"

    await chaos_hub.settled(identities, timeout=180)
    ledger = await chaos_hub.audit(identities)
    assert ledger.states == {"completed": ORDERS}, ledger.summary()
    assert ledger.ok, ledger.summary()
    # The kills did interrupt work in flight, and it was done again.
    interrupted = await chaos.interruptions(
        chaos_hub.client, [workflow_id_for(order_id) for order_id in order_ids.values()]
    )
    assert interrupted.activity_attempts + interrupted.workflow_tasks >= KILLS, interrupted


async def test_a_dev_server_restart_mid_run_loses_and_doubles_nothing(
    durable_chaos_hub: Chaos,
) -> None:
    """Temporal stops and starts again on the same SQLite file while orders run and new ones
    arrive; a parked order stays parked through it and completes on an operator's retry."""
    hub = durable_chaos_hub
    orders = 60
    identities = chaos.new_identities(orders)
    first, second = identities[: orders // 2], identities[orders // 2 :]

    parked_identity = chaos.new_identities(1)[0]
    outage = await hub.fault(
        "billing", operation="CreateSubscription", match=parked_identity.imsi, kind="transient"
    )
    accepted = await hub.api.post(chaos.ORDERS_PATH, json=order_body(parked_identity))
    assert accepted.status_code == 201, accepted.text
    parked_order = accepted.json()["id"]

    async def parked() -> bool:
        return any(o.parked for o in hub.orders([parked_identity]))

    await eventually(parked, timeout=60)
    await chaos.submit_all(hub.api, first)
    await hub.progress(first, at_least=len(first) // 3)

    assert hub.stack.stop_one("temporal") == 0
    # While Temporal is down the API refuses new orders (503), and the client tries again.
    refused = await hub.api.post(chaos.ORDERS_PATH, json=order_body(second[0]))
    assert refused.status_code == 503, refused.text
    arriving = asyncio.create_task(chaos.submit_all(hub.api, second))
    await hub.stack.restart("temporal")
    await arriving

    await hub.settled(identities, timeout=180)
    ledger = await hub.audit(identities)
    assert ledger.states == {"completed": orders}, ledger.summary()
    assert ledger.ok, ledger.summary()

    # The parked order survived the restart, parked; billing is back, the operator retries.
    letters = await hub.api.get("/deadLetters", params={"orderId": parked_order})
    [letter] = letters.json()
    assert letter["status"] == "parked" and letter["step"] == "1/billing.create_subscription"
    billing = hub.stack.simulator_url("billing")
    await hub.http.delete(f"{billing}/_sim/faults/{outage['id']}")
    retry = await hub.api.post(f"/deadLetters/{letter['id']}/retry", json={})
    assert retry.status_code == 200, retry.text

    async def completed() -> bool:
        return [o.state for o in hub.orders([parked_identity])] == ["completed"]

    await eventually(completed, timeout=60)
    assert (await hub.audit([parked_identity])).ok
