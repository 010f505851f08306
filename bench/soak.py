"""Soak: many orders while the simulators fail at random and the worker keeps getting killed.

    .venv/bin/python -m bench.soak --orders 2000 --fault-rate 0.3 --crashes 5

Starts a private stack (see :mod:`bench.stack`; Temporal keeps its state in a SQLite file),
makes every simulator fail ``--fault-rate`` of its calls with a transient error, and keeps
``--concurrency`` orders in flight through the real API. As the run progresses it kills the
worker process with SIGKILL ``--crashes`` times (restarting it each time), stops and restarts
the Temporal dev server ``--server-restarts`` times, and kills the API ``--api-crashes`` times,
spread evenly over the run. When every
order is final or parked (or at ``--timeout``) it audits the hub database and every simulator
(see :mod:`bench.chaos`) and prints: orders in, completed, failed, parked, duplicates, orphans,
wall time, orders/s. Exit status 0 when every order completed once and nothing is left over.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import chaos
from bench.activation import simulator_requests
from bench.stack import BenchStack, CommandStopped, run_command
from simulators import SYSTEMS as SIMULATED
from workflows.service_activation import workflow_id_for

logger = logging.getLogger("bench.soak")

#: How often the driver reads the hub database to see which orders have settled.
POLL_S = 0.5


@dataclass
class ChaosEvent:
    kind: str  # "worker kill" | "server restart" | "api kill"
    #: Orders settled when it struck, as a share of all orders.
    at_progress: float
    at_s: float = 0.0
    #: From the kill (or stop) until the process served again.
    down_s: float = 0.0


@dataclass
class SoakResult:
    orders: int
    fault_rate: float
    attempts: int
    accepted: int = 0
    refused: list[str] = field(default_factory=list)
    ledger: chaos.Ledger = field(default_factory=chaos.Ledger)
    events: list[ChaosEvent] = field(default_factory=list)
    wall_s: float = 0.0
    interrupted: chaos.Interruptions | None = None
    requests: int = 0
    failed_requests: int = 0
    #: Workflows whose order the hub database does not hold (an API killed mid-POST).
    strays: list[chaos.Stray] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return self.ledger.states.get("completed", 0)

    @property
    def ok(self) -> bool:
        harmful = [stray for stray in self.strays if stray.outside_calls]
        return self.ledger.ok and self.completed == self.orders and not harmful


class Soak:
    """Drives the orders, strikes the chaos events, and watches the hub database."""

    def __init__(self, stack: BenchStack, args: argparse.Namespace, attempts: int) -> None:
        self.stack, self.args = stack, args
        self.identities = chaos.new_identities(args.orders)
        self.result = SoakResult(args.orders, args.fault_rate, attempts)
        self.settled: set[str] = set()
        self._waiting: dict[str, asyncio.Event] = {}
        self._started = 0.0

    @property
    def database(self) -> Path:
        return self.stack.workdir / "hub.db"

    async def run(self) -> SoakResult:
        deadline = time.monotonic() + self.args.timeout
        sim_log = self.stack.log_path("simulators")
        log_start = sim_log.stat().st_size
        await self.stack.configure_simulators(error_rate=self.args.fault_rate, seed=self.args.seed)
        self._started = time.monotonic()
        watcher = asyncio.create_task(self._watch())
        striker = asyncio.create_task(self._strike(deadline))
        progress = asyncio.create_task(self._report())
        try:
            async with httpx.AsyncClient(
                base_url=self.stack.api_url,
                headers={"X-API-Key": self.stack.api_key},
                timeout=60,
                limits=httpx.Limits(max_connections=self.args.concurrency),
            ) as api:
                await self._drive(api, deadline)
            await striker  # every event strikes before the end (or the deadline passes)
        finally:
            for task in (watcher, striker, progress):
                task.cancel()
        self.result.wall_s = time.monotonic() - self._started
        await self.stack.configure_simulators(error_rate=0.0)
        async with httpx.AsyncClient(timeout=60) as http:
            urls = {system: self.stack.simulator_url(system) for system in SIMULATED}
            states = await chaos.simulator_states(http, urls)
        self.result.ledger = chaos.audit(
            self.identities,
            chaos.hub_orders(self.database),
            states,
            foreign_records_are_orphans=True,
        )
        served = simulator_requests(sim_log, log_start)
        self.result.requests = sum(served.values())
        self.result.failed_requests = sum(n for key, n in served.items() if key.endswith(" 503"))
        client = await self.stack.client()
        orders = chaos.hub_orders(self.database)
        self.result.strays = await chaos.stray_workflows(
            client, {workflow_id_for(order.id) for order in orders}
        )
        if self.args.histories:
            print("reading the workflow histories …", file=sys.stderr, flush=True)
            self.result.interrupted = await chaos.interruptions(
                client, [workflow_id_for(order.id) for order in orders]
            )
        return self.result

    # --- the load -------------------------------------------------------------------------

    async def _drive(self, api: httpx.AsyncClient, deadline: float) -> None:
        """Closed loop: an order holds one of ``--concurrency`` slots until it settles."""
        slots = asyncio.Semaphore(self.args.concurrency)

        async def one(identity: chaos.Identity) -> None:
            try:
                try:
                    await chaos.submit(api, identity, deadline=deadline)
                except chaos.SubmitError as exc:
                    self.result.refused.append(str(exc))
                    return
                self.result.accepted += 1
                event = self._waiting.setdefault(identity.external_id, asyncio.Event())
                if identity.external_id in self.settled:
                    event.set()
                remaining = max(0.0, deadline - time.monotonic())
                try:
                    await asyncio.wait_for(event.wait(), remaining)
                except TimeoutError:
                    logger.warning("%s not settled before the deadline", identity.external_id)
            finally:
                slots.release()

        tasks = []
        for identity in self.identities:
            await slots.acquire()
            tasks.append(asyncio.create_task(one(identity)))
        await asyncio.gather(*tasks)

    async def _watch(self) -> None:
        """Read the hub database every :data:`POLL_S` and wake the orders that settled."""
        while True:
            try:
                orders = await asyncio.to_thread(chaos.hub_orders, self.database)
            except Exception as exc:  # the database may be busy; read again next time
                logger.debug("hub database not readable: %r", exc)
            else:
                for order in orders:
                    if order.external_id and (order.state in chaos.FINAL_STATES or order.parked):
                        self.settled.add(order.external_id)
                        if event := self._waiting.get(order.external_id):
                            event.set()
            await asyncio.sleep(POLL_S)  # a polling interval, not a wait for a condition

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(10)
            print(
                f"  … {time.monotonic() - self._started:6.0f} s: {self.result.accepted} accepted, "
                f"{len(self.settled)} settled, {len(self.result.events)} chaos events",
                file=sys.stderr,
                flush=True,
            )

    # --- the chaos ------------------------------------------------------------------------

    def schedule(self) -> list[ChaosEvent]:
        """Every event evenly over the run: worker kills, server restarts and API kills
        spread among them."""
        kinds = ["worker kill"] * self.args.crashes
        for kind, count in (("server restart", self.args.server_restarts),
                            ("api kill", self.args.api_crashes)):  # fmt: skip
            for n in range(count):
                kinds.insert((n + 1) * len(kinds) // (count + 1) + n, kind)
        return [ChaosEvent(kind, (i + 1) / (len(kinds) + 1)) for i, kind in enumerate(kinds)]

    async def _strike(self, deadline: float) -> None:
        for event in self.schedule():
            while len(self.settled) < event.at_progress * self.args.orders:
                if time.monotonic() > deadline:
                    return
                await asyncio.sleep(POLL_S)  # progress poll, bounded by the deadline
            event.at_s = time.monotonic() - self._started
            name = {"worker kill": "worker", "server restart": "temporal", "api kill": "api"}[
                event.kind
            ]
            if name != "temporal" or self.args.server_kill:
                self.stack.kill(name)
            else:
                self.stack.stop_one(name)
            # The part stays down a while, as a real crash does until a supervisor notices.
            await asyncio.sleep(self.args.down_s)
            await self.stack.restart(name)
            event.down_s = time.monotonic() - self._started - event.at_s
            self.result.events.append(event)
            print(
                f"  {event.kind} at {event.at_progress:.0%} of the orders settled, "
                f"serving again after {event.down_s:.1f} s",
                file=sys.stderr,
                flush=True,
            )


# --- Output ----------------------------------------------------------------------------------


def render(result: SoakResult, args: argparse.Namespace) -> str:
    ledger = result.ledger
    states = ledger.states
    failed = states.get("failed", 0) + states.get("cancelled", 0)
    unfinished = result.accepted - result.completed - failed - states.get("parked", 0)
    events = ", ".join(
        f"{e.kind} at {e.at_progress:.0%} ({e.down_s:.1f} s down)" for e in result.events
    )
    how = "SIGKILL" if args.server_kill else "SIGTERM"
    lines = [
        f"soak: {result.orders} orders, {result.fault_rate:.0%} of simulator calls failing "
        f"(transient), {args.crashes} worker kills (SIGKILL), {args.server_restarts} dev-server "
        f"restart(s) ({how}, same SQLite file), {args.api_crashes} API kills (SIGKILL); "
        f"{args.concurrency} orders in flight; {result.attempts} attempts per outside call",
        "",
        f"orders in          {result.accepted} accepted by the API"
        + (f", {len(result.refused)} never accepted" if result.refused else ""),
        f"completed          {result.completed}",
        f"failed             {failed}",
        f"parked             {states.get('parked', 0)}",
        f"unfinished         {unfinished}   (neither final nor parked at the end)",
        f"duplicates found   {len(ledger.duplicates) + len(ledger.doubled_orders)}   "
        f"(simulator records per order > 1: {len(ledger.duplicates)}; "
        f"orders twice in the hub DB: {len(ledger.doubled_orders)})",
        f"orphans found      {len(ledger.orphans)}   (simulator records with no completed "
        "or parked order)",
        f"missing            {len(ledger.missing) + len(ledger.lost_orders)}   (records a "
        f"completed order lacks: {len(ledger.missing)}; accepted orders not in the hub DB: "
        f"{len(ledger.lost_orders)})",
        f"wall time          {result.wall_s:.1f} s   (first POST -> every order settled)",
        f"orders/s           {result.completed / result.wall_s if result.wall_s else 0:.2f}   "
        "(completed / wall time)",
        f"chaos              {events or 'none struck'}",
        f"faults             {result.failed_requests:,} of {result.requests:,} simulator "
        "requests answered 503"
        + (f" ({result.failed_requests / result.requests:.1%})" if result.requests else ""),
    ]
    if result.strays or args.api_crashes:
        harmful = sum(1 for stray in result.strays if stray.outside_calls)
        lines.append(
            f"stray workflows    {len(result.strays)}   (started, but the API died before "
            f"committing the order; {harmful} called an outside system)"
        )
    if result.interrupted is not None:
        lines.append(
            f"re-run after crash {result.interrupted.activity_attempts} activity attempts and "
            f"{result.interrupted.workflow_tasks} workflow tasks timed out and ran again"
        )
    for name in ("duplicates", "orphans", "missing", "lost_orders", "doubled_orders"):
        for line in getattr(ledger, name)[:10]:
            lines.append(f"  {name}: {line}")
    lines += [f"  never accepted: {line}" for line in result.refused[:10]]
    lines += [f"  stray: {stray}" for stray in result.strays[:10]]
    return "\n".join(lines)


def figures(result: SoakResult) -> dict[str, Any]:
    ledger = result.ledger
    return {
        "orders": result.orders,
        "fault_rate": result.fault_rate,
        "attempts": result.attempts,
        "accepted": result.accepted,
        "refused": result.refused,
        "states": dict(ledger.states),
        "duplicates": ledger.duplicates,
        "doubled_orders": ledger.doubled_orders,
        "orphans": ledger.orphans,
        "missing": ledger.missing,
        "lost_orders": ledger.lost_orders,
        "wall_s": result.wall_s,
        "orders_per_s": result.completed / result.wall_s if result.wall_s else 0.0,
        "events": [asdict(e) for e in result.events],
        "interrupted": asdict(result.interrupted) if result.interrupted else None,
        "simulator_requests": result.requests,
        "simulator_503": result.failed_requests,
        "strays": [asdict(stray) for stray in result.strays],
    }


# --- Main ------------------------------------------------------------------------------------


async def soak(args: argparse.Namespace) -> SoakResult:
    attempts = args.attempts or chaos.attempts_for(
        args.fault_rate, args.orders * chaos.CALLS_PER_ORDER
    )
    workdir = Path(tempfile.mkdtemp(prefix="hub-soak-"))
    stack = BenchStack(
        workdir,
        latency_ms=args.latency_ms,
        temporal_db_file=True,
        extra_env=chaos.retry_env(attempts),
    )
    try:
        print(f"starting the stack in {workdir} …", file=sys.stderr, flush=True)
        await stack.start()
        return await Soak(stack, args, attempts).run()
    finally:
        print("stopping the stack …", file=sys.stderr, flush=True)
        stack.stop()
        if args.keep:
            print(f"kept {workdir} (logs in {stack.log_dir})", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--orders", type=int, default=2000, help="orders (default 2000)")
    parser.add_argument(
        "--fault-rate", type=float, default=0.3, help="share of simulator calls failing (0.3)"
    )
    parser.add_argument("--crashes", type=int, default=5, help="worker kills (default 5)")
    parser.add_argument(
        "--server-restarts", type=int, default=1, help="dev-server restarts (default 1)"
    )
    parser.add_argument(
        "--server-kill", action="store_true", help="kill the dev server (SIGKILL), not SIGTERM"
    )
    parser.add_argument("--api-crashes", type=int, default=0, help="API kills (default 0)")
    parser.add_argument(
        "--down-s", type=float, default=2.0, help="how long a crashed part stays down (2 s)"
    )
    parser.add_argument("--concurrency", type=int, default=50, help="orders in flight (50)")
    parser.add_argument(
        "--attempts",
        type=int,
        default=0,
        help="attempts per outside call; default: enough that the random faults exhaust "
        "them with probability < 0.1%% over the whole run",
    )
    parser.add_argument("--latency-ms", type=int, default=0, help="added per simulator call")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random faults")
    parser.add_argument("--timeout", type=float, default=3600.0, help="deadline, seconds")
    parser.add_argument(
        "--no-histories",
        dest="histories",
        action="store_false",
        help="skip reading every history to count what the crashes interrupted",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, DBs)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.orders < 1 or args.concurrency < 1:
        parser.error("--orders and --concurrency must be at least 1")
    if not 0 <= args.fault_rate < 1:
        parser.error("--fault-rate must be in [0, 1)")
    if min(args.crashes, args.server_restarts, args.api_crashes, args.down_s) < 0:
        parser.error("--crashes, --server-restarts, --api-crashes, --down-s cannot be negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run_command(lambda: soak(args), verbose=args.verbose)
    except CommandStopped as stopped:
        return stopped.status
    print(render(result, args))
    if args.json:
        args.json.write_text(json.dumps(figures(result), indent=2) + "\n")
        print(f"\nfigures written to {args.json}", file=sys.stderr)
    return 0 if result.ok else 2


if __name__ == "__main__":
    sys.exit(main())
