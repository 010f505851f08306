"""Fixtures for the simulator tests."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI


@pytest.fixture
def asgi_client() -> Callable[[FastAPI], httpx.AsyncClient]:
    """Build an in-process client for an app (use it as an async context manager)."""

    def make(app: FastAPI) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")

    return make
