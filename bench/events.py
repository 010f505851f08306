"""Events benchmark: webhooks delivered per second, and the latency a state change adds.

    .venv/bin/python -m bench.events --orders 200 --rate 200 --burst 2000

Starts a private stack (``bench.stack``: Temporal dev server, simulators, ``python worker.py``,
the API), a subscriber on loopback (``bench.listener``) subscribed to every serviceOrdering
event, then:

1. **latency**: ``--orders`` TMF641 orders POSTed at ``--rate`` a minute; per event delivered,
   the time from its write (``eventTime``: stamped in the transaction of the state change) to
   its arrival at the subscriber; p50, p99, max;
2. **throughput**: ``--burst`` events written at once to the outbox (over 100 resources) and
   one poke; events delivered per second from the poke to the last arrival.

Prints a JSON summary; figures in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.chaos import new_identities, order_body
from bench.listener import Listener, start_listener
from bench.stack import BenchStack
from hub.db import create_engine, session_factory, session_scope
from hub.events.envelopes import Event, EventType
from hub.events.outbox import add_event
from hub.events.relay import RelayInput, poke

HUB = "/tmf-api/serviceOrdering/v4/hub"
ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _written_at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["eventTime"]).replace("Z", "+00:00")).timestamp()


async def _wait_for(listener: Listener, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(set(listener.ids())) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(set(listener.ids()))} of {count} events arrived")
        await asyncio.sleep(0.1)


async def _outbox_count(stack: BenchStack, order_ids: set[str]) -> int:
    import sqlite3

    with sqlite3.connect(stack.workdir / "hub.db") as db:
        rows = db.execute("SELECT resource_id FROM event_outbox").fetchall()
    return sum(1 for (resource_id,) in rows if resource_id in order_ids)


async def latency(
    stack: BenchStack, api: httpx.AsyncClient, listener: Listener, args: Any
) -> dict[str, Any]:
    identities = new_identities(args.orders)
    interval = 60.0 / args.rate
    order_ids: set[str] = set()
    started = time.monotonic()
    for index, identity in enumerate(identities):
        await asyncio.sleep(max(0.0, started + index * interval - time.monotonic()))
        response = await api.post(ORDERS, json=order_body(identity))
        response.raise_for_status()
        order_ids.add(response.json()["id"])
    # Every order ends completed: its last event is written then; wait for all of them.
    deadline = time.monotonic() + args.timeout
    while True:
        expected = await _outbox_count(stack, order_ids)
        heard = [
            r
            for r in list(listener.received)
            if r.event["event"]["serviceOrder"]["id"] in order_ids
        ]
        completed = sum(
            1
            for r in heard
            if r.event["eventType"] == "ServiceOrderStateChangeEvent"
            and r.event["event"]["serviceOrder"]["state"] in ("completed", "failed")
        )
        if (
            completed >= len(order_ids)
            and len({r.headers["webhook-id"] for r in heard}) >= expected
        ):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{completed} of {len(order_ids)} orders' last events arrived")
        await asyncio.sleep(0.25)
    first: dict[str, Any] = {}
    for r in heard:
        first.setdefault(r.headers["webhook-id"], r)
    lags = [r.at - _written_at(r.event) for r in first.values()]
    by_type: dict[str, list[float]] = {}
    for r in first.values():
        by_type.setdefault(r.event["eventType"], []).append(r.at - _written_at(r.event))
    return {
        **_stages(stack, set(first)),
        "latency_p50_by_type_s": {
            kind: round(percentile(values, 0.5), 3) for kind, values in sorted(by_type.items())
        },
        "orders": len(order_ids),
        "rate_per_minute": args.rate,
        "events": len(first),
        "latency_p50_s": round(percentile(lags, 0.50), 3),
        "latency_p99_s": round(percentile(lags, 0.99), 3),
        "latency_max_s": round(max(lags), 3),
    }


def _stages(stack: BenchStack, event_ids: set[str]) -> dict[str, Any]:
    """Where the time went, from the hub database: written -> fanned out (the relay's
    dispatch) -> delivered (the subscription's relay), p50 and p99 of each."""
    import sqlite3

    with sqlite3.connect(stack.workdir / "hub.db") as db:
        rows = db.execute(
            "SELECT o.event_id, o.created_at, o.dispatched_at, d.delivered_at FROM event_outbox o"
            " JOIN event_delivery d ON d.event_id = o.event_id WHERE d.status = 'delivered'"
        ).fetchall()
    fan_out, deliver = [], []
    for event_id, created, dispatched, delivered in rows:
        if event_id not in event_ids:
            continue
        created_at, dispatched_at, delivered_at = (
            datetime.fromisoformat(v).timestamp() for v in (created, dispatched, delivered)
        )
        fan_out.append(dispatched_at - created_at)
        deliver.append(delivered_at - dispatched_at)
    return {
        "written_to_fanned_out_p50_p99_s": [
            round(percentile(fan_out, 0.5), 3),
            round(percentile(fan_out, 0.99), 3),
        ],
        "fanned_out_to_delivered_p50_p99_s": [
            round(percentile(deliver, 0.5), 3),
            round(percentile(deliver, 0.99), 3),
        ],
    }


async def throughput(stack: BenchStack, listener: Listener, count: int) -> dict[str, Any]:
    engine = create_engine(f"sqlite:///{stack.workdir / 'hub.db'}")
    try:
        before = len(set(listener.ids()))
        async with session_scope(session_factory(engine)) as session:
            for index in range(count):
                await add_event(
                    session,
                    Event(
                        EventType.SERVICE_ORDER_STATE_CHANGE,
                        f"bench-{index % 100}",
                        {"id": f"bench-{index % 100}", "state": "inProgress"},
                        "bench",
                    ),
                )
        client = await stack.client()
        started = time.monotonic()
        await poke(client, RelayInput(task_queue=stack.task_queue))
        await _wait_for(listener, before + count, timeout=600)
        elapsed = time.monotonic() - started
    finally:
        await engine.dispose()
    return {"events": count, "seconds": round(elapsed, 2), "per_second": round(count / elapsed, 1)}


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-events-"))
    stack = BenchStack(
        workdir,
        latency_ms=args.latency_ms,
        extra_env={
            "HUB_PARTNERS_CALLBACK_ALLOW_HTTP": "true",
            "HUB_PARTNERS_CALLBACK_ALLOW_LOOPBACK": "true",
        },
    )
    listener = start_listener()
    try:
        await stack.start()
        async with httpx.AsyncClient(
            base_url=stack.api_url, headers={"X-API-Key": stack.api_key}, timeout=30
        ) as api:
            (await api.post(HUB, json={"callback": listener.url})).raise_for_status()
            result = {"latency": await latency(stack, api, listener, args)}
            if args.burst:
                result["throughput"] = await throughput(stack, listener, args.burst)
        return result
    finally:
        listener.server.shutdown()
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200.0, help="orders a minute")
    parser.add_argument("--burst", type=int, default=2000, help="events for the throughput run")
    parser.add_argument("--latency-ms", type=int, default=0, help="added per simulator call")
    parser.add_argument("--timeout", type=float, default=300.0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    result = asyncio.run(benchmark(parse_args(argv)))
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
