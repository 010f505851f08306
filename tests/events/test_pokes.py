"""The writers' pokes of the relay: at most one in flight per relay, the rest folded into one
that follows it (a unit test of :func:`hub.events.relay.poke_soon`; the client is a stand-in
that holds each start until the test lets it go)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hub.events.relay import RelayInput, poke_soon
from tests.conftest import eventually


class HeldClient:
    """Counts ``start_workflow`` calls (pokes); each waits until the test lets one go."""

    def __init__(self) -> None:
        self.starts: list[str] = []
        self.gate = asyncio.Semaphore(0)

    async def start_workflow(self, *args: Any, **kwargs: Any) -> None:
        self.starts.append(kwargs["id"])
        await self.gate.acquire()

    def started(self, count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return len(self.starts) == count

        return check


async def test_pokes_while_one_is_under_way_fold_into_one_more() -> None:
    client = HeldClient()
    relay = RelayInput(task_queue="pokes")
    for _ in range(20):
        poke_soon(client, relay)  # type: ignore[arg-type]
    await eventually(client.started(1))
    for _ in range(20):
        poke_soon(client, relay)  # type: ignore[arg-type]
    poke_soon(client, RelayInput(task_queue="other-hub"))  # type: ignore[arg-type]
    await eventually(client.started(2))  # the other relay's own poke
    client.gate.release()  # one of the two ends
    client.gate.release()
    # Forty writers asked while the first poke was under way: one more poke for them all.
    await eventually(client.started(3))
    client.gate.release()
    assert sorted(client.starts) == [
        "events-relay-other-hub",
        "events-relay-pokes",
        "events-relay-pokes",
    ]
    assert client.starts[0] == "events-relay-pokes"
