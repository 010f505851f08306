"""The breaker interceptor's own knowledge of an open breaker (a unit test of
:class:`activities.breaker.BreakerInterceptor`; the Temporal client is a stand-in that records
the trips): once it tripped a system's breaker, the process refuses eager first attempts to
that system until it sees the system answer again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from activities.breaker import BreakerInterceptor
from hub.settings import Settings
from tests.conftest import eventually


class Trips:
    def __init__(self) -> None:
        self.started: list[str] = []

    async def start_workflow(self, *args: Any, **kwargs: Any) -> None:
        self.started.append(kwargs["id"])

    def get_workflow_handle(self, workflow_id: str) -> Any:
        client = self

        class Handle:
            async def signal(self, name: str) -> None:
                client.started.append(f"{name}:{workflow_id}")

        return Handle()


async def test_a_tripped_breaker_is_held_until_the_system_answers() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, breaker_min_calls=4, breaker_window=timedelta(seconds=60)
    )
    client = Trips()
    breakers = BreakerInterceptor(client, settings, "hub")  # type: ignore[arg-type]
    for _ in range(3):
        breakers.outcome("billing", True, "TransientError")
    assert not breakers.held("billing")  # under the minimum of calls: not tripped yet

    breakers.outcome("billing", True, "TransientError")

    async def tripped() -> bool:
        return client.started == ["breaker-billing"]

    await eventually(tripped)
    assert breakers.held("billing") and not breakers.held("crm")
    breakers.outcome("billing", False)  # a call answered (a probe, on billing's queue)
    assert not breakers.held("billing")
