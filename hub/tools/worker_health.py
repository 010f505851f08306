"""``python -m hub.tools.worker_health``: the worker container's health check.

Exits 0 when a worker of this host (Temporal identities are ``<pid>@<hostname>``) has polled
every task queue the worker serves within ``HUB_HEALTH_POLLER_MAX_AGE``; else 1, naming the
queues. A worker process that is up but stuck, or lost its connection, is unhealthy too.
"""

from __future__ import annotations

import asyncio
import socket
import sys

from temporalio.client import Client

from api.routes.health import served_queue_pollers
from hub.settings import Settings, get_settings
from hub.temporal import connect


async def idle_queues(client: Client, settings: Settings, host: str | None = None) -> list[str]:
    """The queues no worker of ``host`` (default: this one) polled recently."""
    suffix = f"@{host or socket.gethostname()}"
    queues = await served_queue_pollers(client, settings)
    return [
        f"{queue['name']} ({queue['type']})"
        for queue in queues
        if not any(p["recent"] and p["identity"].endswith(suffix) for p in queue["pollers"])
    ]


async def _check(settings: Settings) -> list[str]:
    return await idle_queues(await connect(settings), settings)


def main() -> None:
    try:
        idle = asyncio.run(asyncio.wait_for(_check(get_settings()), 10))
    except Exception as exc:
        print(f"unhealthy: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
    if idle:
        print(f"unhealthy: no worker of this host polls {', '.join(idle)}", file=sys.stderr)
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
