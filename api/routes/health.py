"""``GET /health``: 200 when the database, Temporal and a worker on every task queue answer;
503 naming what does not.

A worker that died leaves its task queues without pollers: orders are accepted and then wait
for ever. So each queue the worker serves (the workflows' and one per system, see
:func:`activities.definitions.task_queue_for`) is asked for its pollers, and a queue whose last
poll is older than ``HUB_HEALTH_POLLER_MAX_AGE`` is named.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from activities.definitions import HUB, task_queue_for
from hub.events.relay import SYSTEM as EVENTS
from hub.settings import ALARMS, RECONCILIATION, SYSTEMS, Settings

router = APIRouter(tags=["Operations"])

#: The systems whose activities the worker serves, each on its queue (``worker.by_system``;
#: tests/test_health.py holds the two equal). ``exports``: the export files' bulk writes;
#: ``events``: the outbox relay's fan-out, webhook deliveries and broker publishing.
SERVED_SYSTEMS = (HUB, *SYSTEMS, ALARMS, RECONCILIATION, "exports", EVENTS)
CHECK_TIMEOUT = 3.0


async def _database(request: Request) -> str:
    try:
        async with request.app.state.sessions() as session:
            connection = await session.connection()
            await asyncio.wait_for(connection.execute(text("SELECT 1")), CHECK_TIMEOUT)
        return "ok"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


async def _temporal(request: Request) -> Client | str:
    try:
        client: Client = await request.app.state.temporal.get(timeout=CHECK_TIMEOUT)
        await asyncio.wait_for(client.service_client.check_health(), CHECK_TIMEOUT)
        return client
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


def served_queues(settings: Settings) -> list[tuple[str, str, str]]:
    """``(queue, type, system)`` of every queue the worker polls: the main queue for the
    workflows and the hub's own activities, and each system's activity queue."""
    queues = [(settings.task_queue, "workflow", HUB)]
    queues += [
        (task_queue_for(settings.task_queue, system), "activity", system)
        for system in SERVED_SYSTEMS
    ]
    return queues


_TYPES = {
    "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
}


async def queue_pollers(
    client: Client, queue: str, kind: str, system: str, max_age: timedelta
) -> dict[str, Any]:
    """One queue's pollers, each with whether it polled within ``max_age``."""
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=_TYPES[kind],
        ),
        timeout=timedelta(seconds=CHECK_TIMEOUT),
    )
    now = datetime.now(UTC)
    pollers = [
        {
            "identity": poller.identity,
            "lastAccessTime": poller.last_access_time.ToDatetime(UTC)
            .isoformat()
            .replace("+00:00", "Z"),
            "recent": now - poller.last_access_time.ToDatetime(UTC) <= max_age,
        }
        for poller in described.pollers
    ]
    return {
        "name": queue,
        "type": kind,
        "system": system,
        "ok": any(poller["recent"] for poller in pollers),
        "pollers": pollers,
    }


async def served_queue_pollers(client: Client, settings: Settings) -> list[dict[str, Any]]:
    """:func:`queue_pollers` of every queue of :func:`served_queues`."""
    return list(
        await asyncio.gather(
            *(
                queue_pollers(client, queue, kind, system, settings.health_poller_max_age)
                for queue, kind, system in served_queues(settings)
            )
        )
    )


async def _workers(client: Client, settings: Settings) -> tuple[str, list[dict[str, Any]]]:
    try:
        queues = await served_queue_pollers(client, settings)
    except Exception as exc:
        return f"unknown: {type(exc).__name__}", []
    idle = [f"{queue['name']} ({queue['type']})" for queue in queues if not queue["ok"]]
    if idle:
        return "no worker polls " + ", ".join(idle), queues
    return "ok", queues


@router.get(
    "/health",
    summary="Liveness of the hub and what it depends on, workers included",
    responses={503: {"description": "Something is down: `status` and `checks` name it"}},
)
async def health(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    database, temporal = await asyncio.gather(_database(request), _temporal(request))
    checks = {"database": database, "temporal": "ok" if isinstance(temporal, Client) else temporal}
    queues: list[dict[str, Any]] = []
    if isinstance(temporal, Client):
        checks["workers"], queues = await _workers(temporal, settings)
    else:
        checks["workers"] = "unknown: Temporal is unreachable"
    down = [name for name, result in checks.items() if result != "ok"]
    if isinstance(temporal, str):
        down.remove("workers")  # not known to be down: Temporal is, and is named
    body = {
        "status": "ok" if not down else f"unavailable: {', '.join(down)}",
        "checks": checks,
        "taskQueues": queues,
    }
    return JSONResponse(body, status_code=503 if down else 200)
