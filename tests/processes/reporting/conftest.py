"""Fixtures of the regulatory reporting process tests: people with their own API keys, and
settings that make the regulator's outage park fast and its verdict come quickly."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pydantic import SecretStr

from hub.settings import ApiClient, Settings
from tests.conftest import FAST_RETRY

#: Who does what: the preparer starts reports, the approver approves them (four-eyes).
PEOPLE = {
    "preparer": ["regulatory"],
    "approver": ["regulatory"],
    "outsider": ["wholesale"],
}
SCOPES = ["reports:read", "reports:write", "tasks:read", "tasks:decide", "deadletters:read",
          "deadletters:decide"]  # fmt: skip


def key_of(name: str) -> str:
    return f"{name}-key-" + "q" * 24


def as_(name: str) -> dict[str, str]:
    return {"X-API-Key": key_of(name)}


@pytest.fixture
def hub_settings(hub_settings: Settings) -> Settings:
    hub_settings.api_clients = [
        ApiClient(name=name, key=SecretStr(key_of(name)), scopes=SCOPES, groups=groups)
        for name, groups in PEOPLE.items()
    ]
    # An outage parks after two tries; the verdict is asked for every 200 ms.
    hub_settings.retry["regulator"] = FAST_RETRY.model_copy(update={"maximum_attempts": 2})
    hub_settings.reporting_operator_id = f"AT-TEST-{uuid.uuid4().hex[:8]}"
    hub_settings.reporting_verdict_poll = timedelta(milliseconds=200)
    hub_settings.reporting_verdict_timeout = timedelta(seconds=60)
    return hub_settings
