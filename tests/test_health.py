"""``/health`` names what is down: the database, Temporal, a task queue no worker polls."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from api.main import create_app
from hub.settings import Settings
from tests.conftest import Hub, eventually, free_port


async def test_health_is_503_naming_temporal_when_it_is_down(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        temporal_address=f"127.0.0.1:{free_port()}",
        api_key=["k" * 30],
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub.test"
        ) as api,
    ):
        response = await api.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["temporal"].startswith("unreachable")
    assert "temporal" in body["status"]


async def test_orders_answer_503_not_500_when_temporal_is_down(tmp_path: Path) -> None:
    from tests.factories import new_identity, order

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        temporal_address=f"127.0.0.1:{free_port()}",
        api_key=["k" * 30],
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://hub.test",
            headers={"X-API-Key": "k" * 30},
        ) as api,
    ):
        body = order(new_identity())
        response = await api.post("/tmf-api/serviceOrdering/v4/serviceOrder", json=body)
        assert response.status_code == 503
        assert "Temporal" in response.json()["message"]
        listed = await api.get("/tmf-api/serviceOrdering/v4/serviceOrder")
        assert listed.headers["X-Total-Count"] == "0"


def test_production_refuses_missing_secrets() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="HUB_API_KEY"):
        Settings(_env_file=None, environment="production")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="24 characters"):
        Settings(
            _env_file=None,
            environment="production",
            api_key=["short"],  # type: ignore[call-arg]
            payload_keys=["k:x"],
        )


def test_api_key_and_nested_retry_come_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HUB_API_KEY", "a-key-of-some-length-here, second-key-of-some-length")
    monkeypatch.setenv("HUB_RETRY__BILLING__MAXIMUM_ATTEMPTS", "3")
    monkeypatch.setenv("HUB_RETRY__BILLING__INITIAL_INTERVAL", "0.5")
    monkeypatch.setenv("HUB_WORKER_SHUTDOWN_GRACE", "PT45S")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.api_key == ["a-key-of-some-length-here", "second-key-of-some-length"]
    assert settings.retry["billing"].maximum_attempts == 3
    assert settings.retry["billing"].initial_interval.total_seconds() == 0.5
    assert settings.worker_shutdown_grace.total_seconds() == 45
    assert settings.retry["hss"].maximum_attempts == 8  # the others keep their defaults


# --- workers: each task queue's pollers ------------------------------------------------------


async def test_health_lists_the_pollers_of_every_queue_the_worker_serves(hub: Hub) -> None:
    async def healthy() -> httpx.Response | None:
        # The workers have just started: their first polls may not have reached Temporal.
        response = await hub.api.get("/health", headers={"X-API-Key": ""})
        return response if response.status_code == 200 else None

    body = (await eventually(healthy, timeout=10)).json()
    assert body["checks"] == {"database": "ok", "temporal": "ok", "workers": "ok"}
    queue = hub.settings.task_queue
    listed = {(entry["name"], entry["type"]) for entry in body["taskQueues"]}
    assert (queue, "workflow") in listed and (queue, "activity") in listed
    for system in ("credit", "crm", "hss", "billing", "alarms", "reconciliation", "exports"):
        assert (f"{queue}.{system}", "activity") in listed, system
    for entry in body["taskQueues"]:
        assert entry["ok"] and entry["pollers"], entry
        assert any(poller["recent"] for poller in entry["pollers"])
        assert all(poller["identity"] and poller["lastAccessTime"] for poller in entry["pollers"])


async def test_the_worker_health_check_wants_this_hosts_pollers(hub: Hub) -> None:
    from hub.tools.worker_health import idle_queues

    async def polled() -> bool:
        return await idle_queues(hub.client, hub.settings) == []

    await eventually(polled, timeout=10)
    # Workers of another host do not make this one healthy.
    elsewhere = await idle_queues(hub.client, hub.settings, host="elsewhere")
    assert f"{hub.settings.task_queue} (workflow)" in elsewhere
    assert f"{hub.settings.task_queue}.hss (activity)" in elsewhere


async def test_the_queues_asked_are_those_the_worker_serves(hub_settings: Settings) -> None:
    from contextlib import AsyncExitStack

    from api.routes.health import SERVED_SYSTEMS
    from hub.db import create_engine, session_factory
    from worker import build_activities

    engine = create_engine(hub_settings.resolved_database_url)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        activities = await build_activities(hub_settings, session_factory(engine), stack)
    assert set(activities) == set(SERVED_SYSTEMS)


def app_on_fresh_queue(tmp_path: Path, client: Client, **settings: Any) -> Any:
    queue = f"no-worker-{uuid.uuid4()}"
    return create_app(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            environment="test",
            database_url=f"sqlite:///{tmp_path / 'hub.db'}",
            task_queue=queue,
            api_key=["k" * 30],
            **settings,
        ),
        temporal=client,
    )


async def health_of(app: Any) -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub.test"
    ) as api:
        return await api.get("/health")


async def test_health_is_503_naming_the_queues_no_worker_polls(
    tmp_path: Path, temporal_client: Client
) -> None:
    app = app_on_fresh_queue(tmp_path, temporal_client)
    queue = app.state.settings.task_queue
    async with app.router.lifespan_context(app):
        response = await health_of(app)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["checks"]["database"] == "ok" and body["checks"]["temporal"] == "ok"
    assert "workers" in body["status"]
    for name in (f"{queue} (workflow)", f"{queue} (activity)", f"{queue}.hss (activity)"):
        assert name in body["checks"]["workers"], name
    assert all(not entry["ok"] and not entry["pollers"] for entry in body["taskQueues"])


@workflow.defn(name="HealthProbe")
class HealthProbe:
    @workflow.run
    async def run(self) -> None:
        return None


async def test_health_notices_a_worker_that_stopped(
    tmp_path: Path, temporal_client: Client
) -> None:
    app = app_on_fresh_queue(tmp_path, temporal_client, health_poller_max_age=2)
    queue = app.state.settings.task_queue

    def named(body: dict[str, Any]) -> bool:
        return f"{queue} (workflow)" in body["checks"]["workers"]

    async with app.router.lifespan_context(app):
        async with Worker(
            temporal_client,
            task_queue=queue,
            workflows=[HealthProbe],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ):

            async def polled() -> bool:
                return not named((await health_of(app)).json())

            await eventually(polled, timeout=10)
        # The worker is gone; its last poll ages past the bound and the queue is named.

        async def noticed() -> bool:
            response = await health_of(app)
            return response.status_code == 503 and named(response.json())

        await eventually(noticed, timeout=30)
        [entry] = [
            e for e in (await health_of(app)).json()["taskQueues"] if e["type"] == "workflow"
        ]
        assert entry["pollers"] and not any(poller["recent"] for poller in entry["pollers"])
