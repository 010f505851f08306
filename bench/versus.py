"""The hub against a hand-written Temporal workflow, side by side in one run.

    .venv/bin/python -m bench.versus --orders 100 --in-flight 5 20 --repeat 3

Starts the private stack of :mod:`bench.stack` (Temporal dev server in memory, simulators
with ``--latency-ms`` per call, the hub's worker and API) and beside it the baseline's worker
(:mod:`bench.baseline`: the same 7 outside calls, nothing else), on the same server and
simulators. After a warm-up of each, for every ``--in-flight`` value it runs ``--orders``
orders through the hub (TMF641 POSTs to the API, as :mod:`bench.activation`) and as many
baseline workflows (started by the client), alternately, ``--repeat`` times (the hub first in
odd rounds, the baseline first in even ones), so both see the same machine. Each run is a
closed loop: a new order starts when one closes. It prints every run, the medians and the
hub / baseline ratios of throughput, p50 and p99. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from adapters.hss import QosProfile
from bench import history
from bench.activation import TS35208_K, TS35208_OPC, Driver, OrderOutcome, fetch_timelines
from bench.baseline import WORKFLOW_NAME, BaselineOrder
from bench.stack import (
    BenchStack,
    CommandStopped,
    CpuSample,
    StackError,
    cpu_between,
    machine_cpu,
    run_command,
)
from hub.settings import REPO_ROOT

CONTENDERS = ("hub", "baseline")
#: The CPU figures a run reports, by process (the stack's names).
CPU_OF = {"hub": ("worker", "temporal", "api"), "baseline": ("baseline", "temporal")}

_serial = itertools.count(10**9 + random.randrange(10**6))


def new_baseline_order() -> BaselineOrder:
    """A fresh customer, IMSI and MSISDN, in a range apart from the hub's orders."""
    n = next(_serial)
    return BaselineOrder(
        customer_id=f"CUST-{uuid.uuid4().hex[:10]}",
        customer_name="Bench Customer",
        imsi=f"00101{n:010d}",
        msisdn=f"+4366{n:010d}",
        ki=TS35208_K,
        opc=TS35208_OPC,
        plan="STANDARD-5G",
        qos=QosProfile(qci=9, ambr_downlink=300_000_000, ambr_uplink=50_000_000),
    )


class BaselineDriver(Driver):
    """:class:`Driver`'s closed loop, but each order a baseline workflow the client starts."""

    def __init__(self, client: Client, task_queue: str, *, concurrency: int) -> None:
        super().__init__(None, client, concurrency=concurrency, in_flight="orders")  # type: ignore[arg-type]
        self.task_queue = task_queue

    async def _submit(self, outcome: OrderOutcome, deadline: float) -> None:
        order = new_baseline_order()
        workflow_id = f"baseline-{uuid.uuid4().hex[:16]}"
        outcome.posted = time.time()
        try:
            await self.client.start_workflow(
                WORKFLOW_NAME, order, id=workflow_id, task_queue=self.task_queue
            )
        except Exception as exc:
            outcome.error = f"start failed: {type(exc).__name__}: {exc}"
            return
        outcome.acked = time.time()
        self.posted += 1
        outcome.workflow_id = workflow_id

    async def _wait(self, outcome: OrderOutcome, deadline: float) -> None:
        if outcome.workflow_id is None:
            return
        handle = self.client.get_workflow_handle(outcome.workflow_id, result_type=str)
        try:
            remaining = max(0.1, deadline - time.monotonic())
            outcome.state = await asyncio.wait_for(handle.result(), remaining)
        except Exception as exc:
            outcome.error = f"workflow failed: {type(exc).__name__}: {exc}"
        outcome.observed = time.time()


async def _polled(client: Client, task_queue: str) -> bool:
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        reply = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace="default", task_queue=TaskQueue(name=task_queue), task_queue_type=kind
            )
        )
        if not reply.pollers:
            return False
    return True


def figures_of(
    outcomes: Sequence[OrderOutcome], timelines: Sequence[history.OrderTimeline]
) -> dict[str, Any]:
    """Throughput, p50 and p99 of one run, as :mod:`bench.activation` computes them."""
    by_id = {t.workflow_id: t for t in timelines}
    done = [by_id[o.workflow_id] for o in outcomes if o.state == "completed" and o.workflow_id]
    done = [t for t in done if t.end_to_end is not None]
    latencies = [t.end_to_end for t in done if t.end_to_end is not None]
    first = min((o.posted for o in outcomes if o.posted is not None), default=0.0)
    last = max((t.closed for t in done if t.closed is not None), default=first)
    summary = history.summarise(done)
    steps = summary.steps_per_order
    return {
        "completed": len(done),
        "failed": len(outcomes) - len(done),
        "errors": sorted({o.error for o in outcomes if o.error})[:3],
        "throughput": len(done) / (last - first) if last > first else 0.0,
        "p50": history.percentile(latencies, 0.50),
        "p99": history.percentile(latencies, 0.99),
        "workflow_tasks": steps["workflow tasks"],
        "activities": steps["outside activities"] + steps["hub.* activities"],
        # Eager dispatch shows here: an activity started by the worker that completed the
        # workflow task waits for no poller.
        "activity_queue": summary.per_step["activity scheduled -> started"],
        "wft_queue": summary.per_step["  of which workflow task scheduled -> started"],
    }


async def one_run(
    contender: str,
    count: int,
    concurrency: int,
    stack: BenchStack,
    clients: dict[str, Client],
    http: httpx.AsyncClient,
    baseline_queue: str,
    timeout: float,
) -> dict[str, Any]:
    client = clients[contender]
    driver: Driver = (
        Driver(http, client, concurrency=concurrency, in_flight="orders")
        if contender == "hub"
        else BaselineDriver(client, baseline_queue, concurrency=concurrency)
    )
    before = CpuSample.take(stack.pids)
    outcomes = await driver.run(count, timeout)
    after = CpuSample.take(stack.pids)
    figures = figures_of(outcomes, await fetch_timelines(client, outcomes))
    cpu = cpu_between(before, after)
    per_order = max(1, figures["completed"])
    figures["cpu_ms_per_order"] = {
        name: cpu["cpu_s"].get(name, 0.0) / per_order * 1000 for name in CPU_OF[contender]
    }
    figures["machine_busy"] = cpu["machine_busy"]
    figures["others_cores"] = cpu["others_cpu_s"] / cpu["wall_s"] if cpu["wall_s"] else 0.0
    return figures


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per contender and in-flight value, and the hub / baseline ratios."""
    out: dict[str, Any] = {}
    for concurrency in sorted({run["in_flight"] for run in runs}):
        medians = {}
        for contender in CONTENDERS:
            mine = [
                r for r in runs if r["in_flight"] == concurrency and r["contender"] == contender
            ]
            medians[contender] = {
                key: statistics.median(r[key] for r in mine)
                for key in (
                    "throughput",
                    "p50",
                    "p99",
                    "workflow_tasks",
                    "activities",
                    "activity_queue",
                    "wft_queue",
                )
            }
            medians[contender]["cpu_ms_per_order"] = {
                name: statistics.median(r["cpu_ms_per_order"][name] for r in mine)
                for name in CPU_OF[contender]
            }
        hub, base = medians["hub"], medians["baseline"]
        out[str(concurrency)] = {
            **medians,
            "ratio": {
                "throughput": hub["throughput"] / base["throughput"] if base["throughput"] else 0,
                "p50": hub["p50"] / base["p50"] if base["p50"] else 0,
                "p99": hub["p99"] / base["p99"] if base["p99"] else 0,
            },
        }
    return out


def render(args: argparse.Namespace, runs: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    lines = [
        f"hub vs hand-written baseline: {args.orders} orders per run, simulator latency "
        f"{args.latency_ms} ms per call, medians of {args.repeat} alternating runs",
        "",
        f"{'in flight':>9} {'run':>3} {'contender':<9} {'orders/s':>9} {'p50':>8} {'p99':>8} "
        f"{'WFTs':>5} {'acts':>5} {'act q':>6} {'wft q':>6}  CPU ms/order"
        "                     load (others, cores)",
    ]
    for r in runs:
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_ms_per_order"].items())
        lines.append(
            f"{r['in_flight']:>9} {r['round']:>3} {r['contender']:<9} {r['throughput']:>9.2f} "
            f"{r['p50'] * 1000:>6.0f}ms {r['p99'] * 1000:>6.0f}ms {r['workflow_tasks']:>5g} "
            f"{r['activities']:>5g} {r['activity_queue'] * 1000:>4.0f}ms "
            f"{r['wft_queue'] * 1000:>4.0f}ms  {cpu:<32} {r['others_cores']:.2f}"
            + (f"  {r['failed']} not completed: {r['errors']}" if r["failed"] else "")
        )
    lines += [
        "",
        f"{'in flight':>9} {'':<9} {'orders/s':>9} {'p50':>8} {'p99':>8}",
    ]
    for concurrency, s in summary.items():
        for contender in CONTENDERS:
            m = s[contender]
            lines.append(
                f"{concurrency:>9} {contender:<9} {m['throughput']:>9.2f} "
                f"{m['p50'] * 1000:>6.0f}ms {m['p99'] * 1000:>6.0f}ms"
            )
        ratio = s["ratio"]
        lines.append(
            f"{concurrency:>9} {'hub/base':<9} {ratio['throughput']:>8.2f}x "
            f"{ratio['p50']:>7.2f}x {ratio['p99']:>7.2f}x"
        )
    return "\n".join(lines)


async def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="hub-versus-"))
    stack = BenchStack(
        workdir, latency_ms=args.latency_ms, extra_env=dict(args.set), source=args.source
    )
    baseline_queue = f"{stack.task_queue}-baseline"
    runs: list[dict[str, Any]] = []
    try:
        print(f"starting the stack in {workdir} …", file=sys.stderr, flush=True)
        await stack.start()
        # The baseline is this copy's, whatever hub --source runs.
        stack.spawn(
            "baseline",
            [sys.executable, "-m", "bench.baseline", "--task-queue", baseline_queue],
            PYTHONPATH=str(REPO_ROOT),
        )
        plain = await Client.connect(stack.temporal_address)
        await stack._wait_until("the baseline worker", lambda: _polled(plain, baseline_queue))
        clients = {"hub": await stack.client(), "baseline": plain}
        limits = httpx.Limits(max_connections=max(args.in_flight), max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=stack.api_url, headers={"X-API-Key": stack.api_key}, timeout=30, limits=limits
        ) as http:
            print(f"warm-up: {args.warmup} orders each …", file=sys.stderr, flush=True)
            for contender in CONTENDERS:
                warm = await one_run(
                    contender, args.warmup, 5, stack, clients, http, baseline_queue, args.timeout
                )
                if not warm["completed"]:
                    raise StackError(f"no {contender} warm-up order completed: {warm['errors']}")
            busy0, total0 = machine_cpu()
            for concurrency in args.in_flight:
                for round_ in range(1, args.repeat + 1):
                    order = CONTENDERS if round_ % 2 else tuple(reversed(CONTENDERS))
                    for contender in order:
                        print(
                            f"  {concurrency} in flight, round {round_}: {contender} …",
                            file=sys.stderr,
                            flush=True,
                        )
                        figures = await one_run(
                            contender,
                            args.orders,
                            concurrency,
                            stack,
                            clients,
                            http,
                            baseline_queue,
                            args.timeout,
                        )
                        runs.append(
                            {
                                "contender": contender,
                                "in_flight": concurrency,
                                "round": round_,
                                **figures,
                            }
                        )
            busy1, total1 = machine_cpu()
    finally:
        print("stopping the stack …", file=sys.stderr, flush=True)
        stack.stop()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return {
        "config": {
            "orders": args.orders,
            "latency_ms": args.latency_ms,
            "repeat": args.repeat,
            "in_flight": args.in_flight,
            "extra_env": dict(args.set),
            "source": str(args.source),
        },
        "runs": runs,
        "summary": summarise(runs),
        "machine_busy": (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from bench.activation import _key_value

    parser = argparse.ArgumentParser(
        prog="python -m bench.versus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--orders", type=int, default=100, help="orders per run (default 100)")
    parser.add_argument(
        "--in-flight", type=int, nargs="+", default=[5, 20], help="orders in flight (5 20)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--latency-ms", type=int, default=20, help="added per simulator call")
    parser.add_argument("--warmup", type=int, default=20, help="orders of each first, not counted")
    parser.add_argument("--timeout", type=float, default=600.0, help="deadline of a run, s")
    parser.add_argument(
        "--set",
        type=_key_value,
        action="append",
        default=[],
        metavar="HUB_NAME=value",
        help="extra setting for the hub's worker and API (repeatable)",
    )
    parser.add_argument(
        "--source",
        type=lambda text: Path(text).resolve(),
        default=REPO_ROOT,
        help="run the hub's worker, API and simulators from this copy (A/B experiments)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not (args.source / "worker.py").exists():
        parser.error(f"--source {args.source}: no worker.py there")
    if args.orders < 1 or args.repeat < 1 or min(args.in_flight) < 1 or args.warmup < 1:
        parser.error("--orders, --repeat, --in-flight and --warmup must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run_command(lambda: benchmark(args), verbose=args.verbose)
    except CommandStopped as stopped:
        return stopped.status
    print(render(args, result["runs"], result["summary"]))
    print(f"\nmachine {result['machine_busy'] * 100:.0f}% busy over the measured runs")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    complete = all(r["failed"] == 0 for r in result["runs"])
    return 0 if complete else 2


if __name__ == "__main__":
    sys.exit(main())
