"""Which of Temporal's and the database's failures the API answers with a 503 (try again)
rather than a 500."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import BUSY_MESSAGE, install, temporal_unreachable


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (RPCStatusCode.UNAVAILABLE, "connection refused"),
        (RPCStatusCode.DEADLINE_EXCEEDED, "context deadline exceeded"),
        (RPCStatusCode.RESOURCE_EXHAUSTED, "namespace rate limit exceeded"),
        # The SDK's own deadline passing, as an overloaded dev server made it happen.
        (RPCStatusCode.CANCELLED, "Timeout expired"),
    ],
)
def test_temporal_that_does_not_answer_is_a_503_with_retry_after(
    status: RPCStatusCode, message: str
) -> None:
    error = temporal_unreachable(RPCError(message, status, b""))
    assert error is not None
    assert error.status == 503
    assert error.headers == {"Retry-After": "5"}


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (RPCStatusCode.NOT_FOUND, "schedule not found"),
        (RPCStatusCode.CANCELLED, "the request was cancelled"),
        (RPCStatusCode.INVALID_ARGUMENT, "bad cron"),
    ],
)
def test_an_answer_from_temporal_is_left_to_the_route(status: RPCStatusCode, message: str) -> None:
    assert temporal_unreachable(RPCError(message, status, b"")) is None


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return app


def locked(message: str) -> OperationalError:
    return OperationalError("INSERT INTO service_order ...", {}, sqlite3.OperationalError(message))


@pytest.mark.parametrize("message", ["database is locked", "database is busy"])
async def test_a_busy_sqlite_database_is_a_503_with_retry_after(message: str) -> None:
    transport = httpx.ASGITransport(app=app_raising(locked(message)))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        response = await client.get("/boom")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["message"] == BUSY_MESSAGE
    assert response.json()["code"] == "503"


async def test_another_database_failure_stays_a_500() -> None:
    transport = httpx.ASGITransport(app=app_raising(locked("disk I/O error")))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert "database" not in response.json()["message"]
