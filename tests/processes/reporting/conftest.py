"""Fixtures of the regulatory reporting process tests: people with their own API keys, a
quarter of generated usage, and the regulator portal simulator."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from hub.settings import REPO_ROOT, ApiClient, Settings
from tests.conftest import FAST_RETRY

ENGINE_MERGED = (
    importlib.util.find_spec("hub.reporting") is not None
    and (REPO_ROOT / "contracts" / "kev-mobile-quarterly.xsd").is_file()
)
#: TEMPORARY, until the report engine is merged: a stand-in for it and its XSD.
STUB_XSD_DIR: Path | None = None
if not ENGINE_MERGED:
    import tempfile

    from tests.processes.reporting.engine_stub import install

    STUB_XSD_DIR = Path(tempfile.mkdtemp(prefix="kev-stub-"))
    install(STUB_XSD_DIR)

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
async def regulator_url(simulator_process: dict[str, str]) -> AsyncIterator[str]:
    """The regulator simulator's base URL: the suite's, or (until the engine's XSD is merged)
    one serving the stand-in's XSD, in this process."""
    if STUB_XSD_DIR is None:
        yield simulator_process["regulator"]
        return
    from simulators import regulator
    from simulators.serving import serve_in_background

    async with serve_in_background(regulator.create_app(schemas_dir=STUB_XSD_DIR)) as url:
        yield url


@pytest.fixture
def hub_settings(hub_settings: Settings, regulator_url: str) -> Settings:
    hub_settings.api_clients = [
        ApiClient(name=name, key=SecretStr(key_of(name)), scopes=SCOPES, groups=groups)
        for name, groups in PEOPLE.items()
    ]
    hub_settings.regulator_url = regulator_url + "/regulator"
    # An outage parks after two tries; the verdict is asked for every 200 ms.
    hub_settings.retry["regulator"] = FAST_RETRY.model_copy(update={"maximum_attempts": 2})
    hub_settings.reporting_verdict_poll = timedelta(milliseconds=200)
    hub_settings.reporting_verdict_timeout = timedelta(seconds=60)
    return hub_settings
