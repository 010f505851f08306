"""``/health`` names what is down."""

from __future__ import annotations

from pathlib import Path

import httpx

from api.main import create_app
from hub.settings import Settings
from tests.conftest import free_port


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
