"""The circuit breaker of an outside system, on the real dev server, worker and simulators: a
billing outage with orders in flight makes far fewer calls to billing with the breaker than
without it (their calls are held in Temporal, not retried against a system that is down), and
every order completes once billing is back."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest

from hub.settings import RetrySettings, Settings
from tests.conftest import Hub, Simulators, eventually
from tests.factories import new_identity, order
from workflows.breaker import CircuitBreaker

ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
IN_FLIGHT = 40
#: Long enough that the calls without a breaker (which grow with the outage) outnumber those
#: with it clearly, even on a loaded machine where retries come slower. With it: the calls of
#: the orders' retries before it opens (40 orders reach billing at once: about three each),
#: then a probe a second; a quiet run saw 595 against 142, a loaded one at 5 s 414 against 96.
OUTAGE = 10.0


@pytest.fixture
def hub_settings(hub_settings: Settings) -> Settings:
    # Billing retried every 50-300 ms for two minutes: an outage shorter than that parks nothing.
    hub_settings.retry["billing"] = RetrySettings(
        initial_interval=timedelta(milliseconds=50),
        backoff_coefficient=1.5,
        maximum_interval=timedelta(milliseconds=300),
        maximum_attempts=0,
        attempt_timeout=timedelta(seconds=5),
        schedule_to_close=timedelta(minutes=2),
    )
    hub_settings.breaker_min_calls = 10
    hub_settings.breaker_window = timedelta(seconds=10)
    hub_settings.breaker_probe_interval = timedelta(seconds=1)
    return hub_settings


async def outage(hub: Hub, sims: Simulators) -> tuple[int, list[str]]:
    """``IN_FLIGHT`` orders placed while billing refuses every CreateSubscription for
    ``OUTAGE`` seconds; answers the calls billing refused and the orders' ids."""
    rule = await sims.fault("billing", operation="CreateSubscription", kind="transient")
    ids = []
    for _ in range(IN_FLIGHT):
        created = await hub.api.post(ORDERS, json=order(new_identity()))
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    started = time.monotonic()
    # The outage lasts its time, the same in both runs (no condition to wait for).
    while time.monotonic() - started < OUTAGE:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    refused = next(r for r in await faults(sims) if r["id"] == rule["id"])["applied"]
    await sims.clear_faults()
    return int(refused), ids


async def faults(sims: Simulators) -> list[dict[str, Any]]:
    response = await sims.http.get(f"{sims.urls['billing']}/_sim/faults")
    return list(response.json())


async def all_completed(hub: Hub, ids: list[str]) -> None:
    async def done() -> bool:
        states = [(await hub.api.get(f"{ORDERS}/{i}")).json()["state"] for i in ids]
        assert not set(states) & {"failed", "cancelled"}, states
        return all(state == "completed" for state in states)

    try:
        await eventually(done, timeout=120, interval=0.5)
    except AssertionError:
        states = [(await hub.api.get(f"{ORDERS}/{i}")).json()["state"] for i in ids]
        letters = (await hub.api.get("/deadLetters", params={"status": "parked"})).json()
        raise AssertionError(
            f"states {sorted(set(states))}, parked: "
            + "; ".join(f"{d['step']}: {d['lastError']}" for d in letters[:5])
        ) from None


async def test_a_billing_outage_is_held_by_the_breaker_and_every_order_completes(
    hub: Hub, sims: Simulators
) -> None:
    hub.settings.breaker_enabled = False
    without, first = await outage(hub, sims)
    await all_completed(hub, first)

    hub.settings.breaker_enabled = True
    with_breaker, second = await outage(hub, sims)
    breaker = hub.client.get_workflow_handle_for(CircuitBreaker.run, "breaker-billing")
    assert (await breaker.describe()).status is not None  # it was tripped
    await all_completed(hub, second)
    # Closed again once billing answered: the run ended, the queue's limit lifted.
    result = await breaker.result()
    assert result.system == "billing" and result.probes >= 1

    print(
        f"billing calls refused in {OUTAGE:g} s: {without} without, {with_breaker} with a breaker"
    )
    assert without > 5 * IN_FLIGHT, without  # every order kept retrying
    assert with_breaker < without / 3, (with_breaker, without)
