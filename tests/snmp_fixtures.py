"""net-snmp daemons for the SNMP tests: ``snmptrapd`` as the NMS, ``snmpd`` as a network element.

Each runs in the foreground as a child process of the test, on a free UDP port on 127.0.0.1,
with its configuration and persistent state in the test's tmp_path (never /etc or /var/lib),
MIB loading off (``-m "" -M ""``) and numeric OIDs (``-On``). A missing binary fails the test
with the Debian package to install: these tests are the proof that a real NMS accepts the
hub's notifications, so they must not quietly skip.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: What the tests need, as Debian packages (``snmp``, the command-line tools, is handy for
#: poking at things by hand but the tests do not use it).
DEBIAN_PACKAGES = ("snmptrapd", "snmpd")
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def daemon_binary(name: str, package: str) -> str:
    """The daemon's path; fails (does not skip) with the package to install."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN))
    if not found:
        pytest.fail(
            f"`{name}` is missing: install the Debian package with "
            f"`apt-get install -y {package}` (the SNMP tests need {', '.join(DEBIAN_PACKAGES)})",
            pytrace=False,
        )
    return found


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _udp_port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@dataclass
class Daemon:
    """A net-snmp daemon running in the foreground, logging to ``log``."""

    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]
    workdir: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.output()[-2000:]}")
            if _udp_port_taken(self.port):
                return
            time.sleep(0.02)  # start-up poll of another process, bounded by the deadline
        raise RuntimeError(f"{self.name} not listening on {self.port}: {self.output()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_daemon(name: str, package: str, workdir: Path, config: str, *args: str) -> Daemon:
    binary = daemon_binary(name, package)
    port = free_udp_port()
    conf = workdir / f"{name}.conf"
    conf.write_text(config)
    log = workdir / f"{name}.log"
    state = workdir / "state"
    state.mkdir(exist_ok=True)
    # Persistent state (engine boots, localized keys) in tmp_path, and no snmp.conf from home.
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(state), "SNMPCONFPATH": str(workdir)}
    command = [binary, "-f", "-C", "-c", str(conf), "-Lf", str(log), "-m", "", "-M", "", *args]
    command.append(f"udp:127.0.0.1:{port}")
    errors = (workdir / f"{name}.stderr").open("wb")
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=errors, env=env, cwd=workdir
    )
    errors.close()
    daemon = Daemon(name, port, log, process, workdir)
    try:
        daemon.wait_listening()
    except BaseException:
        daemon.stop()
        raise
    return daemon


# --- snmptrapd ---------------------------------------------------------------------------------

_VARBIND = re.compile(r"^(\.[\d.]+) = (?:([\w-]+): )?(.*)$")


@dataclass
class Notification:
    """One notification as snmptrapd logged it: numeric OID -> value without its type tag."""

    header: str
    varbinds: dict[str, str] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)

    @property
    def trap_oid(self) -> str:
        return self.varbinds.get(".1.3.6.1.6.3.1.1.4.1.0", "").lstrip(".")

    def value(self, oid: str) -> str:
        return self.varbinds["." + oid.lstrip(".")]


@dataclass
class TrapReceiver:
    """snmptrapd standing in for the operator's NMS."""

    daemon: Daemon
    community: str
    user: str
    auth_key: str
    priv_key: str
    sender_engine_id: str

    @property
    def port(self) -> int:
        return self.daemon.port

    def notifications(self) -> list[Notification]:
        """Every notification logged so far (a header line, then a line of tab-separated
        varbinds, as snmptrapd's default format with ``-On`` prints them)."""
        found: list[Notification] = []
        header = ""
        for line in self.daemon.output().splitlines():
            if not line.startswith("."):
                header = line
                continue
            notification = Notification(header)
            for item in line.split("\t"):
                match = _VARBIND.match(item.strip())
                if match:
                    oid, kind, value = match.groups()
                    if kind in ("STRING", "Hex-STRING") and value.startswith('"'):
                        value = value[1:-1]
                    notification.varbinds[oid] = value
                    notification.types[oid] = kind or ""
            found.append(notification)
        return found

    def with_id(self, notification_id: int) -> list[Notification]:
        from adapters.snmp import NOTIFICATION_ID_OID

        key = "." + NOTIFICATION_ID_OID
        return [n for n in self.notifications() if n.varbinds.get(key) == str(notification_id)]


def start_trap_receiver(
    workdir: Path,
    *,
    community: str,
    user: str,
    auth_key: str,
    priv_key: str,
    sender_engine_id: str,
) -> TrapReceiver:
    # v2c: any notification with the community is logged. v3: the user must come with
    # authPriv ("priv"). A v3 *trap* is authenticated with keys localized to the sender's
    # engine id, hence "createUser -e <the hub's engine id>"; an *inform* with keys localized
    # to snmptrapd's own engine id, hence the second createUser without -e.
    config = "\n".join(
        [
            f"authCommunity log {community}",
            f"createUser -e 0x{sender_engine_id} {user} SHA {auth_key} AES {priv_key}",
            f"createUser {user} SHA {auth_key} AES {priv_key}",
            f"authUser log {user} priv",
            "",
        ]
    )
    daemon = start_daemon("snmptrapd", "snmptrapd", workdir, config, "-n", "-On")
    return TrapReceiver(daemon, community, user, auth_key, priv_key, sender_engine_id)


# --- snmpd -------------------------------------------------------------------------------------


@dataclass
class Agent:
    """snmpd standing in for a network element the hub reads before provisioning."""

    daemon: Daemon
    community: str
    sys_descr: str
    user: str
    auth_key: str
    priv_key: str

    @property
    def port(self) -> int:
        return self.daemon.port


def start_agent(
    workdir: Path, *, community: str, sys_descr: str, user: str, auth_key: str, priv_key: str
) -> Agent:
    config = "\n".join(
        [
            f"rocommunity {community} 127.0.0.1",
            f"createUser {user} SHA {auth_key} AES {priv_key}",
            f"rouser {user} priv",
            f"sysDescr {sys_descr}",
            "sysName hub-test-ne",
            "",
        ]
    )
    daemon = start_daemon("snmpd", "snmpd", workdir, config)
    return Agent(daemon, community, sys_descr, user, auth_key, priv_key)
