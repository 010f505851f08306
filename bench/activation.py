"""Service-activation benchmark: N TMF641 orders through the real API, worker and Temporal.

    .venv/bin/python -m bench.activation --orders 500 --latency-ms 20 --concurrency 50

Starts a private stack on free loopback ports (Temporal dev server, simulators with a fixed
added latency per call, ``python worker.py``, the API under uvicorn; see :mod:`bench.stack`),
posts the orders with ``--concurrency`` in flight, waits for every workflow to close (with a
deadline), then reads every workflow history to say where the time went. Everything is torn
down at the end, also on Ctrl-C. See ``bench/README.md`` for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import random
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from bench import history
from bench.profile import Profiler, summarise
from bench.stack import (
    BenchStack,
    CommandStopped,
    CpuSample,
    StackError,
    cpu_between,
    run_command,
    wait_until_quiet,
)
from hub.settings import REPO_ROOT
from workflows.service_activation import (
    ORDER_CANCELLED,
    ORDER_FAILED,
    ServiceActivationResult,
    workflow_id_for,
)

logger = logging.getLogger("bench.activation")

ORDERS_PATH = "/tmf-api/serviceOrdering/v4/serviceOrder"
# 3GPP TS 35.208 test set 1 (as tests/factories.py): OPc given, so no Milenage per order.
TS35208_K = "465b5ce8b199b49faa5f0a2ee238a6bc"
TS35208_OPC = "cd63cb71954a9f4e48a5994e37a02baf"
#: Tries of one POST when the connection breaks (the API is idempotent by externalId).
POST_ATTEMPTS = 3
#: How long the warm-up may take: a worker that cannot run the workflow shows up here.
WARMUP_TIMEOUT = 180.0


# --- Orders ----------------------------------------------------------------------------------

_serial = itertools.count(random.randrange(10**6))


def new_order() -> dict[str, Any]:
    """A 5G ``add`` order with a fresh IMSI, MSISDN, customer and externalId."""
    n = next(_serial)
    characteristics = {
        "imsi": f"00101{n:010d}",
        "msisdn": f"+4366{n:09d}",
        "ki": TS35208_K,
        "opc": TS35208_OPC,
        "plan": "STANDARD-5G",
        "qci": 9,
        "ambrDownlink": 300_000_000,
        "ambrUplink": 50_000_000,
        "dataQuota": 0,
    }
    return {
        "externalId": f"bench-{uuid.uuid4().hex[:12]}",
        "description": "benchmark order",
        "relatedParty": [
            {
                "id": f"CUST-{uuid.uuid4().hex[:10]}",
                "name": "Bench Customer",
                "role": "customer",
                "@referredType": "Individual",
            }
        ],
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


# --- Driving the load ------------------------------------------------------------------------


@dataclass
class OrderOutcome:
    index: int
    #: Wall clock (time.time) just before the POST was handed to httpx.
    posted: float | None = None
    #: Wall clock when the POST's answer arrived.
    acked: float | None = None
    http_status: int | None = None
    workflow_id: str | None = None
    #: The order's final TMF641 state from the workflow's result; None if not final in time.
    state: str | None = None
    #: Wall clock when the benchmark saw the result (long poll), for the notification lag.
    observed: float | None = None
    error: str | None = None


class Driver:
    """Posts orders with a bound on how many are in flight, and waits for their workflows."""

    def __init__(
        self, http: httpx.AsyncClient, client: Client, *, concurrency: int, in_flight: str
    ) -> None:
        self.http, self.client = http, client
        self.concurrency, self.in_flight = concurrency, in_flight
        self.posted = self.finished = self.post_retries = 0

    async def run(self, count: int, timeout: float) -> list[OrderOutcome]:
        deadline = time.monotonic() + timeout
        gate = asyncio.Semaphore(self.concurrency)

        async def one(index: int) -> OrderOutcome:
            outcome = OrderOutcome(index)
            if self.in_flight == "orders":
                # Closed loop: an order holds its slot from the POST until its workflow closes.
                async with gate:
                    await self._submit(outcome, deadline)
                    await self._wait(outcome, deadline)
            else:
                # Only the POSTs are bounded: every order is submitted as fast as they go.
                async with gate:
                    await self._submit(outcome, deadline)
                await self._wait(outcome, deadline)
            self.finished += 1
            return outcome

        return list(await asyncio.gather(*(one(i) for i in range(count))))

    async def _submit(self, outcome: OrderOutcome, deadline: float) -> None:
        if time.monotonic() >= deadline:
            outcome.error = "not submitted before the deadline"
            return
        body = new_order()
        outcome.posted = time.time()
        reply: httpx.Response | None = None
        for attempt in range(1, POST_ATTEMPTS + 1):
            try:
                reply = await self.http.post(ORDERS_PATH, json=body)
                break
            except httpx.TransportError as exc:
                # A kept-alive connection the server closed just then, typically. The same
                # externalId again is safe: the API answers 200 with the order it already has.
                if attempt == POST_ATTEMPTS:
                    outcome.error = f"POST failed: {type(exc).__name__}: {exc}"
                    return
                self.post_retries += 1
            except httpx.HTTPError as exc:
                outcome.error = f"POST failed: {type(exc).__name__}: {exc}"
                return
        assert reply is not None
        outcome.acked = time.time()
        outcome.http_status = reply.status_code
        self.posted += 1
        if reply.status_code not in (200, 201):
            outcome.error = f"POST answered {reply.status_code}: {reply.text[:200]}"
            return
        outcome.workflow_id = workflow_id_for(reply.json()["id"])

    async def _wait(self, outcome: OrderOutcome, deadline: float) -> None:
        if outcome.workflow_id is None:
            return
        handle = self.client.get_workflow_handle(
            outcome.workflow_id, result_type=ServiceActivationResult
        )
        try:
            remaining = max(0.1, deadline - time.monotonic())
            result = await asyncio.wait_for(handle.result(), remaining)
        except TimeoutError:
            outcome.error = "workflow not closed before the deadline"
            return
        except WorkflowFailureError as exc:
            outcome.observed = time.time()
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type in (
                ORDER_FAILED,
                ORDER_CANCELLED,
            ):
                # A failed or cancelled order fails its workflow; the result is its detail.
                outcome.state = str(cause.details[0]["state"])
            else:  # the workflow itself failed (a bug, not an order failure)
                outcome.error = f"workflow failed: {type(cause).__name__}: {cause}"
            return
        except Exception as exc:  # not even a workflow failure
            outcome.error = f"workflow failed: {type(exc).__name__}: {exc}"
            outcome.observed = time.time()
            return
        outcome.observed = time.time()
        outcome.state = result.state


async def report_progress(driver: Driver, total: int, every: float = 5.0) -> None:
    """A progress line on stderr every few seconds; cancelled when the run ends."""
    started = time.monotonic()
    while driver.finished < total:
        await asyncio.sleep(every)
        print(
            f"  … {time.monotonic() - started:5.0f} s: {driver.posted}/{total} posted, "
            f"{driver.finished} closed",
            file=sys.stderr,
            flush=True,
        )


async def fetch_timelines(
    client: Client, outcomes: Sequence[OrderOutcome], concurrency: int = 16
) -> list[history.OrderTimeline]:
    gate = asyncio.Semaphore(concurrency)

    async def one(outcome: OrderOutcome) -> history.OrderTimeline:
        assert outcome.workflow_id is not None
        async with gate:
            fetched = await asyncio.wait_for(
                client.get_workflow_handle(outcome.workflow_id).fetch_history(), 60
            )
        return history.parse_history(outcome.workflow_id, fetched.events, outcome.posted)

    return list(await asyncio.gather(*(one(o) for o in outcomes if o.workflow_id)))


_ACCESS_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3})')


def simulator_requests(log: Path, start: int) -> Counter[str]:
    """Business requests the simulators served from byte ``start`` of their (access) log."""
    with log.open("rb") as handle:
        handle.seek(start)
        text = handle.read().decode(errors="replace")
    counts: Counter[str] = Counter()
    for method, path, status in _ACCESS_LINE.findall(text):
        if not path.startswith("/_sim"):
            # Ids (IMSIs, customer ids) out, so the counts group by endpoint.
            template = re.sub(r"/[^/?]*\d[^/?]*", "/{id}", path.split("?")[0])
            counts[f"{method} {template} {status}"] += 1
    return counts


# --- Figures ---------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.2f} s"


def compute(
    args: argparse.Namespace,
    outcomes: Sequence[OrderOutcome],
    timelines: Sequence[history.OrderTimeline],
    cpu: dict[str, Any],
    sim_requests: Counter[str],
) -> dict[str, Any]:
    by_id = {t.workflow_id: t for t in timelines}
    completed = [o for o in outcomes if o.state == "completed"]
    failed = [o for o in outcomes if o.state in ("failed", "cancelled")]
    unfinished = [o for o in outcomes if o.state is None]
    done = [by_id[o.workflow_id] for o in completed if o.workflow_id in by_id]
    latencies = [t.end_to_end for t in done if t.end_to_end is not None]
    first_post = min((o.posted for o in outcomes if o.posted is not None), default=0.0)
    last_close = max((t.closed for t in done if t.closed is not None), default=first_post)
    window = last_close - first_post
    calls = Counter(t.outside_calls for t in done)
    attempts = [t.outside_attempts for t in done]
    calls_per_order = history.median(t.outside_calls for t in done)
    simulated = calls_per_order * args.latency_ms / 1000
    p50 = history.percentile(latencies, 0.50)
    acks = [o.acked - o.posted for o in completed if o.acked and o.posted]
    lags = [
        o.observed - by_id[o.workflow_id].closed  # type: ignore[operator]
        for o in completed
        if o.observed and o.workflow_id in by_id and by_id[o.workflow_id].closed
    ]
    served = sum(sim_requests.values())
    breakdown = history.summarise(done)
    rep = history.representative(done)
    return {
        "config": {
            "orders": args.orders,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "in_flight": args.in_flight,
            "latency_ms": args.latency_ms,
            "temporal_db_file": args.temporal_db_file,
            "extra_env": dict(args.set),
            "source": str(args.source),
            "cpus": cpu.get("cpus"),
        },
        "outcome": {
            "completed": len(completed),
            "failed": len(failed),
            "unfinished": len(unfinished),
            "errors": Counter(o.error for o in outcomes if o.error).most_common(5),
        },
        "throughput_orders_per_s": len(completed) / window if window > 0 else 0.0,
        "window_s": window,
        "latency_s": {
            "p50": p50,
            "p95": history.percentile(latencies, 0.95),
            "p99": history.percentile(latencies, 0.99),
            "max": max(latencies, default=0.0),
            "min": min(latencies, default=0.0),
            "mean": sum(latencies) / len(latencies) if latencies else 0.0,
        },
        "post_latency_s": {
            "p50": history.percentile(acks, 0.5),
            "p95": history.percentile(acks, 0.95),
        },
        "result_notification_lag_s_p50": history.percentile(lags, 0.5),
        "outside_calls_per_order": {
            "median": calls_per_order,
            "distribution": dict(sorted(calls.items())),
            "attempts_mean": sum(attempts) / len(attempts) if attempts else 0.0,
            "simulator_requests_served": served,
            "simulator_requests_per_completed_order": served / len(completed) if completed else 0,
            "simulator_requests": dict(sim_requests.most_common()),
            "hub_activity_retries": sum(t.hub_retries for t in done),
        },
        "simulated_latency_per_order_s": simulated,
        "overhead_ratio_p50": p50 / simulated if simulated else None,
        "overhead_p50_minus_simulated_s": p50 - simulated,
        "breakdown": breakdown.as_dict(),
        "representative": _representative(rep),
        "cpu": cpu,
    }


def _representative(timeline: history.OrderTimeline | None) -> dict[str, Any] | None:
    if timeline is None:
        return None
    return {
        "workflow_id": timeline.workflow_id,
        "end_to_end_s": timeline.end_to_end,
        "api_s": timeline.breakdown()["api"],
        "steps": [
            {
                "activity": step.name,
                "gap_before_s": step.gap_before,
                "wft_queue_s": step.scheduled_by.queue if step.scheduled_by else None,
                "wft_run_s": step.scheduled_by.run if step.scheduled_by else None,
                "scheduled_to_started_s": step.queue,
                "started_to_completed_s": step.run,
                "attempts": step.attempts,
            }
            for step in timeline.steps
        ],
        "last_completed_to_closed_s": timeline.gap_after,
    }


def render(figures: dict[str, Any]) -> str:
    c, o, lat = figures["config"], figures["outcome"], figures["latency_s"]
    calls = figures["outside_calls_per_order"]
    in_flight = (
        "orders in flight (closed loop: an order counts from its POST until its workflow "
        "closes; a new one is posted when one closes)"
        if c["in_flight"] == "orders"
        else "POSTs in flight (open burst: all orders submitted as fast as the API accepts them)"
    )
    out = [
        f"service-activation benchmark: {c['orders']} orders (+{c['warmup']} warm-up, not "
        f"counted), simulator latency {c['latency_ms']} ms per call, {c['cpus']} CPUs",
        f"  {c['concurrency']} {in_flight}",
        "  stack on 127.0.0.1, free ports: Temporal dev server ("
        + ("SQLite file" if c["temporal_db_file"] else "in-memory")
        + "), simulators, `python worker.py`, API under uvicorn, hub DB SQLite"
        + (f"; extra settings {c['extra_env']}" if c["extra_env"] else "")
        + (f"; hub code from {c['source']}" if c["source"] != str(REPO_ROOT) else ""),
        "",
        f"outcome            {o['completed']} completed, {o['failed']} failed, "
        f"{o['unfinished']} unfinished"
        + (
            f" ({o['post_retries']} POSTs retried on a broken connection)"
            if o.get("post_retries")
            else ""
        ),
    ]
    out += [f"                   error x{n}: {text}" for text, n in o["errors"]]
    out += [
        f"throughput         {figures['throughput_orders_per_s']:.2f} orders/s "
        f"= {o['completed']} completed / {figures['window_s']:.2f} s "
        "(first POST sent -> last workflow close_time)",
        f"end-to-end latency p50 {ms(lat['p50'])}   p95 {ms(lat['p95'])}   "
        f"p99 {ms(lat['p99'])}   max {ms(lat['max'])}",
        "                   = WorkflowExecutionCompleted event time (Temporal server clock) - "
        "time the bench sent the POST (same host clock); completed orders, nearest rank",
        f"API POST           p50 {ms(figures['post_latency_s']['p50'])}   "
        f"p95 {ms(figures['post_latency_s']['p95'])}   (POST sent -> 201 received)",
        f"outside calls      {calls['median']:g} per order: ActivityTaskScheduled of "
        f"credit./crm./hss./billing.* in each history (per order: {calls['distribution']}; "
        f"attempts {calls['attempts_mean']:.2f}/order)",
        f"                   the simulators served {calls['simulator_requests_served']} business "
        f"requests = {calls['simulator_requests_per_completed_order']:.2f} per completed order "
        "(their access logs)",
        f"simulated latency  {ms(figures['simulated_latency_per_order_s'])} per order "
        f"= {calls['median']:g} calls x {c['latency_ms']} ms",
    ]
    ratio = figures["overhead_ratio_p50"]
    if ratio is not None:
        out.append(
            f"overhead           p50 / simulated latency = {ratio:.2f}x   "
            f"(p50 - simulated = {ms(figures['overhead_p50_minus_simulated_s'])})"
        )
    breakdown = figures["breakdown"]
    per_order = breakdown["per_order_median_s"]
    out += [
        "",
        f"where the time goes: median over {breakdown['orders']} histories, per order "
        "(summed over its steps); the medians need not add up to p50",
    ]
    for key, label in history.CATEGORIES.items():
        share = per_order[key] / lat["p50"] * 100 if lat["p50"] else 0
        out.append(f"  {label:<72} {ms(per_order[key]):>10} {share:5.1f}%")
    steps = breakdown["steps_per_order_median"]
    out.append(
        f"  per order: {steps['outside activities']:g} outside + {steps['hub.* activities']:g} "
        f"hub.* activities, {steps['workflow tasks']:g} workflow tasks; "
        f"hub.* activity retries in all: {calls['hub_activity_retries']}"
    )
    out += ["", "per single step: median over all steps of all histories"]
    out += [f"  {label:<72} {ms(v):>10}" for label, v in breakdown["per_step_median_s"].items()]
    rep = figures["representative"]
    if rep:
        out += [
            "",
            f"representative order (end-to-end closest to p50): {rep['workflow_id']}, "
            f"{ms(rep['end_to_end_s'])}; POST -> started {ms(rep['api_s'])}",
            f"  {'activity':<30}{'prev done->sched':>18}{'(wft queue':>12}{'wft run)':>10}"
            f"{'sched->start':>14}{'start->done':>13}",
        ]
        for step in rep["steps"]:
            queue = ms(step["wft_queue_s"]) if step["wft_queue_s"] is not None else "-"
            run = ms(step["wft_run_s"]) if step["wft_run_s"] is not None else "-"
            out.append(
                f"  {step['activity']:<30}{ms(step['gap_before_s']):>18}{queue:>12}{run:>10}"
                f"{ms(step['scheduled_to_started_s']):>14}{ms(step['started_to_completed_s']):>13}"
            )
        out.append(
            f"  {'last done -> workflow closed':<30}{ms(rep['last_completed_to_closed_s']):>18}"
        )
    cpu = figures["cpu"]
    out += [
        "",
        f"CPU in the measured window ({cpu['wall_s']:.1f} s wall, {cpu['cpus']} CPUs, machine "
        f"{cpu['machine_busy'] * 100:.0f}% busy)",
    ]
    total = o["completed"] or 1
    rows = sorted(cpu["cpu_s"].items(), key=lambda kv: -kv[1])
    rows.append(("other processes", cpu.get("others_cpu_s", 0.0)))
    for name, seconds in rows:
        out.append(
            f"  {name:<22} {seconds:7.1f} CPU-s  {seconds / total * 1000:6.1f} ms/order  "
            f"{seconds / cpu['wall_s'] * 100 if cpu['wall_s'] else 0:5.0f}% of one core"
        )
    if "profile" in figures:
        out += [
            "",
            f"profile of the {figures['profile']['target']} ({figures['profile']['file']}):",
        ]
        out.append(figures["profile"]["text"])
    return "\n".join(out)


# --- Main ------------------------------------------------------------------------------------


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    stack = BenchStack(
        workdir,
        latency_ms=args.latency_ms,
        temporal_db_file=args.temporal_db_file,
        extra_env=dict(args.set),
        source=args.source,
    )
    profiler: Profiler | None = None
    try:
        if args.wait_quiet:
            print("waiting for the machine to be idle …", file=sys.stderr, flush=True)
            load = await asyncio.to_thread(wait_until_quiet, args.wait_quiet)
            print(f"  load before start: {load:.2f} cores busy", file=sys.stderr, flush=True)
        print(f"starting the stack in {workdir} …", file=sys.stderr, flush=True)
        await stack.start()
        client = await stack.client()
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=stack.api_url,
            headers={"X-API-Key": stack.api_key},
            timeout=30,
            limits=limits,
        ) as http:
            driver = Driver(http, client, concurrency=args.concurrency, in_flight=args.in_flight)
            if args.warmup:
                print(f"warm-up: {args.warmup} orders …", file=sys.stderr, flush=True)
                warm = await driver.run(args.warmup, min(args.timeout, WARMUP_TIMEOUT))
                if not any(o.state == "completed" for o in warm):
                    errors = Counter(o.error or o.state for o in warm).most_common(3)
                    worker = stack.children["worker"].log_tail(40)
                    raise StackError(f"no warm-up order completed: {errors}\n{worker}")
            if args.profile:
                out = args.profile_out or workdir / f"profile-{args.profile}.txt"
                profiler = Profiler(
                    stack.pids[args.profile],
                    Path(out),
                    rate=args.profile_rate,
                    native=args.profile_native,
                    gil_only=not args.profile_all_threads,
                    log=stack.log_path("py-spy"),
                )
                profiler.start()
            sim_log = stack.log_path("simulators")
            sim_log_start = sim_log.stat().st_size
            print(
                f"measuring: {args.orders} orders, {args.concurrency} in flight …",
                file=sys.stderr,
                flush=True,
            )
            driver = Driver(http, client, concurrency=args.concurrency, in_flight=args.in_flight)
            before = CpuSample.take(stack.pids)
            progress = asyncio.create_task(report_progress(driver, args.orders))
            try:
                outcomes = await driver.run(args.orders, args.timeout)
            finally:
                progress.cancel()
            after = CpuSample.take(stack.pids)
            profile_ok = profiler.stop() if profiler else False
        print("reading the workflow histories …", file=sys.stderr, flush=True)
        timelines = await fetch_timelines(client, outcomes)
        figures = compute(
            args,
            outcomes,
            timelines,
            cpu_between(before, after),
            simulator_requests(sim_log, sim_log_start),
        )
        figures["outcome"]["post_retries"] = driver.post_retries
        if profiler is not None:
            summary = summarise(profiler.output) if profile_ok else None
            figures["profile"] = {
                "target": args.profile,
                "file": str(profiler.output) if args.profile_out else "(temporary)",
                "rate_hz": args.profile_rate,
                "text": summary.render(args.profile_rate) if summary else "py-spy wrote nothing",
                "summary": summary.as_dict() if summary else None,
            }
        return figures
    finally:
        if profiler is not None:
            profiler.stop()
        print("stopping the stack …", file=sys.stderr, flush=True)
        codes = stack.stop()
        logger.info("exit codes: %s", codes)
        if args.keep:
            print(f"kept {workdir} (logs in {stack.log_dir})", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.startswith("HUB_"):
        raise argparse.ArgumentTypeError("expected HUB_NAME=value")
    return key, value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.activation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--orders", type=int, default=500, help="orders measured (default 500)")
    parser.add_argument("--latency-ms", type=int, default=20, help="added per simulator call")
    parser.add_argument("--concurrency", type=int, default=50, help="in flight at once")
    parser.add_argument(
        "--in-flight",
        choices=["orders", "requests"],
        default="orders",
        help="what --concurrency bounds: whole orders, POST to workflow close (closed loop, "
        "default), or only the POSTs (open burst: the backlog waits inside Temporal)",
    )
    parser.add_argument(
        "--warmup", type=int, default=20, help="orders run first and not counted (default 20)"
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="deadline of each phase, seconds"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS for the machine to be idle (a shared box)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--temporal-db-file",
        action="store_true",
        help="Temporal keeps state in a SQLite file (as make run) instead of in memory",
    )
    parser.add_argument(
        "--set",
        type=_key_value,
        action="append",
        default=[],
        metavar="HUB_NAME=value",
        help="extra setting for the worker and the API, e.g. "
        "HUB_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS=200 (repeatable)",
    )
    parser.add_argument(
        "--source",
        type=lambda text: Path(text).resolve(),
        default=REPO_ROOT,
        help="run the worker, API and simulators from this copy of the hub (A/B experiments)",
    )
    parser.add_argument(
        "--profile",
        choices=["worker", "api", "simulators"],
        default=None,
        help="attach py-spy to this process for the measured window",
    )
    parser.add_argument("--profile-out", type=Path, default=None, help="keep py-spy's stacks here")
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s")
    parser.add_argument(
        "--profile-native", action="store_true", help="py-spy --native (C/Rust frames too)"
    )
    parser.add_argument(
        "--profile-all-threads",
        action="store_true",
        help="sample every thread py-spy thinks busy, not only the one holding the GIL",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, DB)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    for name in ("orders", "concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if not (args.source / "worker.py").exists():
        parser.error(f"--source {args.source}: no worker.py there")
    if args.latency_ms < 0 or args.warmup < 0:
        parser.error("--latency-ms and --warmup cannot be negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        figures = run_command(lambda: benchmark(args), verbose=args.verbose)
    except CommandStopped as stopped:
        return stopped.status
    print(render(figures))
    if args.json:
        document = {k: v for k, v in figures.items() if k != "profile"}
        if "profile" in figures:
            document["profile"] = {k: v for k, v in figures["profile"].items() if k != "text"}
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"\nfigures written to {args.json}", file=sys.stderr)
    outcome = figures["outcome"]
    return 0 if outcome["completed"] == args.orders else 2


if __name__ == "__main__":
    sys.exit(main())
