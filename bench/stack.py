"""A private hub stack for a benchmark: every process on free loopback ports, state in a temp dir.

Started in the order of ``make run`` (Temporal dev server and simulators, then the worker,
which migrates the hub database, then the API), as separate processes as in production, and
stopped in reverse order. Nothing touches the fixed development ports (7233, 8000, 810x), the
developer's ``data/`` or ``.env``: the children run in the temp dir with only the ``HUB_*``
variables set here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from hub import search_attributes
from hub.codec import data_converter, generate_key_spec
from hub.sealing import generate_seal_key
from hub.settings import REPO_ROOT, SYSTEMS
from hub.tools.devstack import temporal_binary
from simulators import SYSTEMS as SIMULATED

logger = logging.getLogger("bench.stack")

HOST = "127.0.0.1"
T = TypeVar("T")
#: How long one process gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 15.0


class StackError(Exception):
    """A part of the stack did not come up; the message says which and shows its log."""


#: Ports below Linux's ephemeral range (32768-60999 by default), one block per pytest-xdist
#: worker: a port the kernel picks for ``bind(0)`` is in the ephemeral range, where an outgoing
#: connection of another process may take it before the server that was given it binds it
#: (seen with three test processes at once: "address already in use").
PORT_BLOCK = 3000
PORT_BASE = 20000


def _worker_block() -> range | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not worker[2:].isdigit():
        return None
    start = PORT_BASE + int(worker[2:]) % 4 * PORT_BLOCK
    return range(start, start + PORT_BLOCK)


#: Ports this process handed out from its block: never twice (the first taker may not have
#: bound it yet).
_handed_out: set[int] = set()


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on loopback right now: the kernel's pick, or, in a
    pytest-xdist worker, free ones from that worker's own block below the ephemeral range."""
    block = _worker_block()
    sockets: list[socket.socket] = []
    try:
        candidates = (
            [p for p in random.sample(block, len(block)) if p not in _handed_out]
            if block is not None
            else None
        )
        while len(sockets) < count:
            sock = socket.socket()
            try:
                if candidates is None:
                    sock.bind((HOST, 0))
                else:
                    if not candidates:
                        raise StackError(f"no free port left in {block}")
                    sock.bind((HOST, candidates.pop()))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
        ports = [int(sock.getsockname()[1]) for sock in sockets]
        if block is not None:
            _handed_out.update(ports)
        return ports
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Child:
    """One process of the stack, in a session of its own so its whole group can be stopped."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    #: Its own environment and working directory (a second worker's), kept for a restart;
    #: None: the stack's.
    env: dict[str, str] | None = None
    cwd: Path | None = None

    def start(self, env: dict[str, str], cwd: Path) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"--- {shlex.join(self.argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    def stop(self, timeout: float) -> None:
        """SIGTERM to the process group, SIGKILL if it has not exited after ``timeout``."""
        if self.process is None or not self.running:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.0f s: killing it", self.name, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])


@dataclass
class Ports:
    temporal: int
    temporal_ui: int
    temporal_http: int
    temporal_metrics: int
    api: int
    simulators: dict[str, int]

    @classmethod
    def pick(cls) -> Ports:
        ports = free_ports(5 + len(SIMULATED))
        temporal, ui, http, metrics, api = ports[:5]
        simulators = dict(zip(SIMULATED, ports[5:], strict=True))
        return cls(temporal, ui, http, metrics, api, simulators=simulators)


@dataclass
class BenchStack:
    """The processes of one benchmark run. Use :meth:`start`, then always :meth:`stop`."""

    workdir: Path
    latency_ms: int
    #: Keep Temporal's state in a SQLite file (as ``make run`` does) instead of in memory.
    temporal_db_file: bool = False
    startup_timeout: float = 90.0
    #: Extra ``HUB_*`` settings for the worker and the API (e.g. worker concurrency).
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Extra arguments of ``python -m simulators`` (``--billing-export-dir DIR``).
    simulator_args: list[str] = field(default_factory=list)
    #: The hub's source tree the processes run: this repo, or a patched copy for an A/B
    #: experiment (it goes first on PYTHONPATH, before the editable install).
    source: Path = REPO_ROOT
    ports: Ports = field(default_factory=Ports.pick)
    api_key: str = field(default_factory=lambda: "bench-" + secrets.token_urlsafe(24))
    payload_keys: list[str] = field(default_factory=lambda: [generate_key_spec("bench")])
    #: The worker unseals with it; the API (not production) seals to its public half.
    seal_key: str = field(default_factory=lambda: generate_seal_key("bench"))
    task_queue: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    children: dict[str, Child] = field(default_factory=dict)

    # -- addresses -------------------------------------------------------------------------

    @property
    def temporal_address(self) -> str:
        return f"{HOST}:{self.ports.temporal}"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.ports.api}"

    def simulator_url(self, system: str) -> str:
        return f"http://{HOST}:{self.ports.simulators[system]}"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    @property
    def pids(self) -> dict[str, int]:
        return {name: child.pid for name, child in self.children.items() if child.pid}

    def environment(self) -> dict[str, str]:
        """The children's environment: the caller's, without any ``HUB_*``, plus ours."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.update(
            {
                "HUB_ENVIRONMENT": "test",
                "HUB_DATA_DIR": str(self.workdir),
                "HUB_DATABASE_URL": f"sqlite:///{self.workdir / 'hub.db'}",
                "HUB_TEMPORAL_ADDRESS": self.temporal_address,
                "HUB_TASK_QUEUE": self.task_queue,
                "HUB_API_KEY": self.api_key,
                "HUB_PAYLOAD_KEYS": ",".join(self.payload_keys),
                "HUB_SEAL_KEYS": self.seal_key,
                "HUB_CREDIT_URL": self.simulator_url("credit"),
                "HUB_CRM_URL": self.simulator_url("crm"),
                "HUB_HSS_URL": self.simulator_url("hss"),
                "HUB_BILLING_URL": self.simulator_url("billing") + "/billing",
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(
                    [str(self.source), *filter(None, [os.environ.get("PYTHONPATH")])]
                ),
                **self.extra_env,
            }
        )
        return env

    async def client(self) -> Client:
        """A Temporal client that can read the hub's (encrypted) payloads."""
        return await Client.connect(
            self.temporal_address, data_converter=data_converter(self.payload_keys)
        )

    # -- start -----------------------------------------------------------------------------

    async def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        python = sys.executable
        temporal = [
            temporal_binary(), "server", "start-dev",
            "--ip", HOST,
            "--port", str(self.ports.temporal),
            "--ui-port", str(self.ports.temporal_ui),
            "--http-port", str(self.ports.temporal_http),
            "--metrics-port", str(self.ports.temporal_metrics),
            "--headless",
            "--log-level", "warn",
            *search_attributes.dev_server_flags(),
        ]  # fmt: skip
        if self.temporal_db_file:
            temporal += ["--db-filename", str(self.workdir / "temporal.db")]
        self._spawn("temporal", temporal, env)
        # In memory (no --state-dir): the simulated systems' own disk writes are not the hub's
        # cost. Access logs on (info), so the calls they served can be counted.
        simulator_ports = [
            arg
            for system, port in self.ports.simulators.items()
            for arg in (f"--{system}-port", str(port))
        ]
        self._spawn(
            "simulators",
            [
                *(python, "-m", "simulators", "--host", HOST, *simulator_ports),
                *("--log-level", "info", *self.simulator_args),
            ],
            env,
        )
        await self._wait_until("Temporal", self._temporal_up)
        await self._wait_until("the simulators", self._simulators_up)
        await self.configure_latency(self.latency_ms)

        # The worker migrates the hub database; the API starts once it polls (as make run).
        self._spawn("worker", [python, str(self.source / "worker.py")], env)
        await self._wait_until("the worker", self._worker_polling)
        self._spawn(
            "api",
            [python, "-m", "uvicorn", "--factory", "api.main:create_app",
             "--host", HOST, "--port", str(self.ports.api)],
            env,
        )  # fmt: skip
        await self._wait_until("the API", self._api_up)

    async def configure_latency(self, latency_ms: int) -> None:
        await self.configure_simulators(latency_ms=latency_ms)

    async def configure_simulators(
        self, *, latency_ms: int | None = None, error_rate: float = 0.0, seed: int | None = None
    ) -> None:
        """Every simulator's latency (default: the stack's) and random transient failure rate."""
        config = {
            "latency_ms": self.latency_ms if latency_ms is None else latency_ms,
            "error_rate": error_rate,
            "seed": seed,
        }
        async with httpx.AsyncClient(timeout=5) as http:
            for system in SIMULATED:
                url = f"{self.simulator_url(system)}/_sim/config"
                reply = await http.put(url, json=config)
                reply.raise_for_status()
                answered = reply.json()
                if any(answered.get(key) != value for key, value in config.items()):
                    raise StackError(f"{system} simulator refused {config}: {answered}")

    async def add_worker(self, name: str, *, cwd: Path, env: dict[str, str]) -> None:
        """Another ``python worker.py``, in ``cwd`` with ``env`` over the stack's environment
        (another host's worker: its own disk), once the stack runs; waits until it polls."""
        child = Child(
            name,
            [sys.executable, str(self.source / "worker.py")],
            self.log_path(name),
            env={**self.environment(), **env},
            cwd=cwd,
        )
        child.start(child.env or {}, cwd=cwd)
        self.children[name] = child
        await self._wait_until(name, lambda: self._worker_polling(child.pid))

    def spawn(self, name: str, argv: list[str], **env: str) -> None:
        """Start one more process beside the stack (its environment updated with ``env``, its
        temp dir, its logs); :meth:`stop` stops it first."""
        self._spawn(name, argv, {**self.environment(), **env})

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        child = Child(name, argv, self.log_path(name))
        # The children work in the temp dir, so no .env of the developer is read.
        child.start(env, cwd=self.workdir)
        self.children[name] = child

    async def _wait_until(self, what: str, ready: Callable[[], Awaitable[bool]]) -> None:
        started = time.monotonic()
        deadline = started + self.startup_timeout
        while time.monotonic() < deadline:
            for child in self.children.values():
                if not child.running:
                    raise StackError(
                        f"{child.name} exited with code {child.returncode} while waiting for "
                        f"{what}:\n{child.log_tail()}"
                    )
            try:
                if await asyncio.wait_for(ready(), 5):
                    logger.info("%s up in %.1f s", what, time.monotonic() - started)
                    return
            except Exception as exc:  # not up yet, whatever the reason
                logger.debug("%s not up yet: %r", what, exc)
            await asyncio.sleep(0.2)  # poll of other processes, bounded by the deadline
        tails = "\n".join(f"--- {c.name}\n{c.log_tail(10)}" for c in self.children.values())
        raise StackError(f"{what} did not come up within {self.startup_timeout:.0f} s\n{tails}")

    async def _temporal_up(self) -> bool:
        client = await Client.connect(self.temporal_address)
        return await client.service_client.check_health()

    async def _simulators_up(self) -> bool:
        async with httpx.AsyncClient(timeout=2) as http:
            for system in SIMULATED:
                if (await http.get(f"{self.simulator_url(system)}/_sim/health")).status_code != 200:
                    return False
        return True

    async def _worker_polling(self, pid: int | None = None) -> bool:
        """Every queue of the worker has a poller: the workflows' and each system's; with
        ``pid``, a poller of that process (the server still lists a killed worker's pollers
        for a while)."""
        client = await Client.connect(self.temporal_address)
        queues = [(self.task_queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)] + [
            (f"{self.task_queue}.{system}", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
            for system in SYSTEMS
        ]
        for name, kind in queues:
            reply = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default", task_queue=TaskQueue(name=name), task_queue_type=kind
                )
            )
            # The SDK's default identity is "<pid>@<host>".
            if not any(pid is None or p.identity.startswith(f"{pid}@") for p in reply.pollers):
                return False
        return True

    async def _api_up(self) -> bool:
        async with httpx.AsyncClient(timeout=2) as http:
            return (await http.get(f"{self.api_url}/health")).status_code == 200

    # -- crash and restart (chaos tests, soak) ----------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL one process and its group at once: a crash, no shutdown code runs."""
        child = self.children[name]
        if child.process is None or not child.running:
            raise StackError(f"{name} is not running (exit code {child.returncode})")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.process.pid, signal.SIGKILL)
        child.process.wait(STOP_TIMEOUT)
        logger.info("killed %s (pid %d)", name, child.process.pid)

    def stop_one(self, name: str) -> int | None:
        """Stop one process as an operator would (SIGTERM, then SIGKILL); its exit code."""
        child = self.children[name]
        child.stop(STOP_TIMEOUT)
        return child.returncode

    async def restart(self, name: str) -> None:
        """Start a stopped or killed process again with the same command line (so the dev
        server reopens its SQLite file on the same ports), and wait until it serves."""
        child = self.children[name]
        if child.running:
            raise StackError(f"{name} is still running: stop or kill it first")
        child.start(child.env or self.environment(), cwd=child.cwd or self.workdir)
        ready: dict[str, Callable[[], Awaitable[bool]]] = {
            "temporal": self._temporal_up,
            "simulators": self._simulators_up,
            "api": self._api_up,
        }
        await self._wait_until(
            f"{name} (restarted)", ready.get(name, lambda: self._worker_polling(child.pid))
        )

    # -- stop ------------------------------------------------------------------------------

    def stop(self) -> dict[str, int | None]:
        """SIGTERM each process group, API first and Temporal last; answers the exit codes."""
        codes: dict[str, int | None] = {}
        for name, child in reversed(list(self.children.items())):
            child.stop(STOP_TIMEOUT)
            codes[name] = child.returncode
        return codes


# --- CPU accounting (Linux /proc) ------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process, 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rpartition(")")[2].split()
    # After "pid (comm)": state=0, ppid=1 ... utime=11, stime=12 (0-based).
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _children_of() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds of each named process and its descendants (live ones)."""
    tree = _children_of()
    result = {}
    for name, root in pids.items():
        total, pending, seen = 0.0, [root], set()
        while pending:
            pid = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            total += _process_cpu(pid)
            pending.extend(tree.get(pid, []))
        result[name] = total
    return result


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return float(total - idle), float(total)


@dataclass
class CpuSample:
    at: float
    processes: dict[str, float]
    machine_busy: float
    machine_total: float

    @classmethod
    def take(cls, pids: dict[str, int]) -> CpuSample:
        processes = tree_cpu(pids)
        processes["bench (this process)"] = sum(os.times()[:2])
        busy, total = machine_cpu()
        return cls(time.monotonic(), processes, busy, total)


def cpu_between(before: CpuSample, after: CpuSample) -> dict[str, Any]:
    """CPU seconds per process over an interval, and how busy the whole machine was."""
    spent = {
        name: after.processes[name] - before.processes.get(name, 0.0) for name in after.processes
    }
    total = after.machine_total - before.machine_total
    busy = after.machine_busy - before.machine_busy
    busy_s = busy / _CLOCK_TICKS
    return {
        "wall_s": after.at - before.at,
        "cpu_s": spent,
        "machine_busy": busy / total if total else 0.0,
        "machine_busy_cpu_s": busy_s,
        # Whatever else ran on the machine meanwhile (other people's tests, the kernel).
        "others_cpu_s": max(0.0, busy_s - sum(spent.values())),
        "cpus": os.cpu_count() or 1,
    }


def wait_until_quiet(limit_s: float, busy_cores: float = 0.25, window_s: float = 2.0) -> float:
    """Wait (at most ``limit_s``) until the machine's CPUs are nearly idle; answers the load
    seen last, in cores. Other people's test runs on a shared box distort a benchmark."""
    deadline = time.monotonic() + limit_s
    load = 0.0
    while True:
        busy0, total0 = machine_cpu()
        time.sleep(window_s)  # a measuring window, not a wait for a condition
        busy1, total1 = machine_cpu()
        cpus = os.cpu_count() or 1
        load = (busy1 - busy0) / (total1 - total0) * cpus if total1 > total0 else 0.0
        if load <= busy_cores or time.monotonic() >= deadline:
            return load


# --- Running a benchmark as a command -------------------------------------------------------


class CommandStopped(Exception):
    """The command ended without a result; ``status`` is its exit status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_command(work: Callable[[], Coroutine[Any, Any, T]], *, verbose: bool) -> T:
    """Run a benchmark's coroutine as a command: logging set up, SIGTERM stopping it (and the
    stack it started) as Ctrl-C does. Raises :class:`CommandStopped` with the exit status (1
    when the stack failed, 130 when interrupted), the reason printed."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return asyncio.run(work())
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise CommandStopped(1) from exc
    except KeyboardInterrupt as exc:
        print("interrupted", file=sys.stderr)
        raise CommandStopped(130) from exc
