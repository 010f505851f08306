"""Fixtures of the console's tests: people with keys of their own, and a real browser.

The browser is Debian's ``chromium`` (``.ci/run`` installs it) driven by Playwright; nothing
is downloaded (never ``playwright install``). One browser per test session; each person gets
a fresh context (their own cookies), as two people at two machines would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from hub.settings import ApiClient, Settings
from tests.conftest import FAST_RETRY, Hub, IdentityProvider, free_port, served_api
from tests.processes.reporting.conftest import key_of

#: Who does what: the NOC repairs orders, the preparer starts reports, the approver approves.
PEOPLE: dict[str, tuple[list[str], list[str]]] = {
    "noc": (
        ["ops"],
        ["orders:read", "orders:write", "deadletters:read", "deadletters:decide", "tasks:read",
         "tasks:decide"],
    ),
    "preparer": (["regulatory"], ["reports:read", "reports:write", "tasks:read", "tasks:decide"]),
    "approver": (["regulatory"], ["reports:read", "reports:write", "tasks:read", "tasks:decide"]),
    "reader": (["regulatory"], ["reports:read"]),
}  # fmt: skip
CHROMIUM = os.environ.get("HUB_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def hub_settings(hub_settings: Settings) -> Settings:
    hub_settings.api_clients = [
        ApiClient(name=name, key=SecretStr(key_of(name)), scopes=scopes, groups=groups)
        for name, (groups, scopes) in PEOPLE.items()
    ]
    # The tests seal a session of their own (an expired one) with the console's key.
    hub_settings.console_session_key = SecretStr(Fernet.generate_key().decode())
    hub_settings.retry["regulator"] = FAST_RETRY.model_copy(update={"maximum_attempts": 2})
    hub_settings.reporting_operator_id = f"AT-TEST-{uuid.uuid4().hex[:8]}"
    hub_settings.reporting_verdict_poll = timedelta(milliseconds=200)
    hub_settings.reporting_verdict_timeout = timedelta(seconds=60)
    return hub_settings


def chromium() -> str:
    found = shutil.which(CHROMIUM)
    if found is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    return found


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    executable = chromium()

    async with async_playwright() as playwright:
        # launch() gives the browser a fresh temporary profile (user-data dir) of its own.
        browser = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def console_url(hub: Hub) -> Iterator[str]:
    """The hub API, served over HTTP for the browser, and its console's address."""
    with served_api(hub) as base:
        yield f"{base}/console"


@dataclass
class ConsoleProvider:
    """An OpenID provider with the console's client: its redirect URI is on ``console_port``,
    where the test serves the console that signs in with it."""

    provider: IdentityProvider
    console_port: int
    client_id: str
    client_secret: str
    #: username → password of the people in the provider's console file.
    passwords: dict[str, str]

    def hub_settings(self) -> dict[str, Any]:
        return {
            **self.provider.hub_settings(),
            "console_oidc_client_id": self.client_id,
            "console_oidc_client_secret": SecretStr(self.client_secret),
        }


@pytest.fixture(scope="session")
def console_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProvider]:
    """The provider of the OIDC sign-in test (one of its own: its console client's redirect
    URI names the port the test's console will listen on)."""
    from hub.tools import idp as provider

    folder = tmp_path_factory.mktemp("console-idp")
    keys_file, log, people_file = folder / "jwks.json", folder / "idp.log", folder / "console.json"
    provider.write_keys(keys_file, [provider.generate_signing_key()])
    issuer, console_port = f"http://127.0.0.1:{free_port()}", free_port()
    passwords = {name: f"{name}-pw-{uuid.uuid4().hex[:8]}" for name in PEOPLE}
    client_secret = uuid.uuid4().hex
    provider.write_console_file(
        people_file,
        client_id="hub-console",
        client_secret=client_secret,
        redirect_uris=[f"http://127.0.0.1:{console_port}/console/oidc/callback"],
        people=[
            {"username": name, "password": passwords[name], "name": name.title(),
             "groups": groups, "scopes": scopes}
            for name, (groups, scopes) in PEOPLE.items()
        ],
    )  # fmt: skip
    token = "iat-" + uuid.uuid4().hex
    env = provider.environment(
        issuer=issuer,
        keys_file=keys_file,
        initial_access_token=token,
        audience="urn:telecom-hub:api",
        console_file=people_file,
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            provider.command(), stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        provider.wait_until_ready(issuer, process, log=log)
        found = IdentityProvider(issuer, token, "urn:telecom-hub:api", keys_file, process, log)
        yield ConsoleProvider(found, console_port, "hub-console", client_secret, passwords)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
