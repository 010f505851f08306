"""The chaos tests' stacks: every part a process of its own, so parts can crash.

A private :class:`~bench.stack.BenchStack` (Temporal dev server, simulators, ``python
worker.py``, the API under uvicorn, all on free loopback ports) shared by the package, with
Temporal in memory; a test that restarts Temporal gets a stack of its own whose dev server
keeps its state in a SQLite file, as ``make run`` does (in memory it is a third faster).
Retries are short, and a call gets :data:`ATTEMPTS` tries: with a fifth of all calls failing
at random, one call exhausts them with probability 0.2**12 = 4e-9, about 6e-6 for a run of
200 orders of 7 calls. (With the suite's usual 5 tries it would be 3e-4 per call: a run of
1,400 calls would park an order about a third of the time.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from bench import chaos
from bench.stack import BenchStack
from simulators import SYSTEMS as SIMULATED
from tests.conftest import eventually

ATTEMPTS = 12


@asynccontextmanager
async def running_stack(workdir: Path, *, temporal_db_file: bool) -> AsyncIterator[BenchStack]:
    stack = BenchStack(
        workdir,
        latency_ms=0,
        temporal_db_file=temporal_db_file,
        extra_env={
            **chaos.retry_env(ATTEMPTS),
            # Event subscribers are loopback listeners of the tests; a killed worker's
            # delivery is retried after the attempt timeout.
            "HUB_PARTNERS_CALLBACK_ALLOW_HTTP": "true",
            "HUB_PARTNERS_CALLBACK_ALLOW_LOOPBACK": "true",
            "HUB_EVENTS_SWEEP_INTERVAL": "1",
            "HUB_EVENTS_ATTEMPT_TIMEOUT": "4",
            "HUB_EVENTS_DELIVERY_TIMEOUT": "2",
        },
    )
    try:
        await stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="package")
async def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BenchStack]:
    async with running_stack(tmp_path_factory.mktemp("chaos"), temporal_db_file=False) as stack:
        yield stack


@dataclass
class Chaos:
    """One test's handle on the chaos stack."""

    stack: BenchStack
    api: httpx.AsyncClient
    http: httpx.AsyncClient
    client: Client

    @property
    def database(self) -> Path:
        return self.stack.workdir / "hub.db"

    @property
    def simulator_urls(self) -> dict[str, str]:
        return {system: self.stack.simulator_url(system) for system in SIMULATED}

    def orders(self, identities: list[chaos.Identity]) -> list[chaos.HubOrder]:
        mine = {identity.external_id for identity in identities}
        return [o for o in chaos.hub_orders(self.database) if o.external_id in mine]

    async def settled(self, identities: list[chaos.Identity], timeout: float) -> None:
        """Wait until every order is final or parked."""

        async def check() -> bool:
            return chaos.settled(self.orders(identities)) == len(identities)

        await eventually(check, timeout=timeout, interval=0.25)

    async def progress(self, identities: list[chaos.Identity], at_least: int) -> None:
        async def check() -> bool:
            return chaos.settled(self.orders(identities)) >= at_least

        await eventually(check, timeout=120, interval=0.05)

    async def audit(self, identities: list[chaos.Identity]) -> chaos.Ledger:
        states = await chaos.simulator_states(self.http, self.simulator_urls)
        return chaos.audit(identities, chaos.hub_orders(self.database), states)

    async def fault(self, system: str, **rule: Any) -> dict[str, Any]:
        reply = await self.http.post(f"{self.stack.simulator_url(system)}/_sim/faults", json=rule)
        reply.raise_for_status()
        return dict(reply.json())

    async def clear_faults(self) -> None:
        for url in self.simulator_urls.values():
            (await self.http.delete(f"{url}/_sim/faults")).raise_for_status()
        await self.stack.configure_simulators(error_rate=0.0)


@asynccontextmanager
async def chaos_handle(stack: BenchStack) -> AsyncIterator[Chaos]:
    # A test that failed half way may have left a part down: bring it back first.
    for name in ("temporal", "worker"):
        if not stack.children[name].running:
            await stack.restart(name)
    async with (
        httpx.AsyncClient(
            base_url=stack.api_url, headers={"X-API-Key": stack.api_key}, timeout=30
        ) as api,
        httpx.AsyncClient(timeout=30) as http,
    ):
        handle = Chaos(stack, api, http, await stack.client())
        await handle.clear_faults()
        try:
            yield handle
        finally:
            if stack.children["simulators"].running:
                await handle.clear_faults()


@pytest.fixture
async def chaos_hub(chaos_stack: BenchStack) -> AsyncIterator[Chaos]:
    async with chaos_handle(chaos_stack) as handle:
        yield handle


@pytest.fixture
async def durable_chaos_hub(tmp_path: Path) -> AsyncIterator[Chaos]:
    """A stack of its own whose Temporal dev server keeps its state in a SQLite file."""
    async with (
        running_stack(tmp_path, temporal_db_file=True) as stack,
        chaos_handle(stack) as handle,
    ):
        yield handle
