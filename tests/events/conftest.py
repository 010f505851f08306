"""A hub whose callbacks may be on loopback, with retries and sweeps short enough for tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from temporalio.client import Client

from bench.listener import Listener, start_listener
from hub.settings import Settings
from tests.conftest import Hub, running_hub

EVENT_SETTINGS = {
    "partners_callback_allow_http": True,
    "partners_callback_allow_loopback": True,
    # Three attempts: the first, then two 200 ms apart.
    "events_retry_schedule": [timedelta(milliseconds=200)] * 2,
    "events_sweep_interval": timedelta(seconds=1),
    "events_attempt_timeout": timedelta(seconds=10),
    "events_delivery_timeout": timedelta(seconds=3),
}


@pytest.fixture
async def events_hub(hub_settings: Settings, temporal_client: Client) -> AsyncIterator[Hub]:
    settings = hub_settings.model_copy(update=EVENT_SETTINGS)
    async with running_hub(settings, temporal_client) as hub:
        yield hub


@pytest.fixture
def listener() -> AsyncIterator[Listener] | object:
    started = start_listener()
    yield started
    started.server.shutdown()
