"""``python -m simulators``: every simulator in one process, state across restarts, clean exit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from bench.stack import free_ports
from simulators import SYSTEMS

REPO_ROOT = Path(__file__).resolve().parents[2]


async def start(ports: dict[str, int], *extra: str) -> asyncio.subprocess.Process:
    arguments = [f"--{system}-port={port}" for system, port in ports.items()]
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators", *arguments, *extra,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


async def wait_healthy(process: asyncio.subprocess.Process, ports: dict[str, int]) -> None:
    async with httpx.AsyncClient(timeout=1) as client, asyncio.timeout(20):
        for port in ports.values():
            while True:
                assert process.returncode is None, "simulators exited during startup"
                with contextlib.suppress(httpx.TransportError):
                    response = await client.get(f"http://127.0.0.1:{port}/_sim/health")
                    if response.status_code == 200:
                        break
                await asyncio.sleep(0.05)


async def stop(process: asyncio.subprocess.Process, signum: int) -> tuple[int, str]:
    process.send_signal(signum)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=15)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest.fixture
def ports() -> dict[str, int]:
    return dict(zip(SYSTEMS, free_ports(len(SYSTEMS)), strict=True))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_all_answer_and_stop_cleanly(ports: dict[str, int], signum: int) -> None:
    process = await start(ports)
    try:
        await wait_healthy(process, ports)
        async with httpx.AsyncClient() as client:
            responses = [
                await client.get(f"http://127.0.0.1:{port}/_sim/health") for port in ports.values()
            ]
            wsdl = await client.get(f"http://127.0.0.1:{ports['billing']}/billing?wsdl")
            portal = await client.get(f"http://127.0.0.1:{ports['regulator']}/regulator?wsdl")
    finally:
        returncode, output = await stop(process, signum)
    assert [r.json() for r in responses] == [{"status": "ok"}] * len(SYSTEMS)
    assert f"127.0.0.1:{ports['billing']}/billing" in wsdl.text
    assert f"127.0.0.1:{ports['regulator']}/regulator" in portal.text
    assert returncode == 0, output
    assert "Traceback" not in output


async def test_state_dir_keeps_records_across_restarts(
    ports: dict[str, int], tmp_path: Path
) -> None:
    crm_url = f"http://127.0.0.1:{ports['crm']}"
    process = await start(ports, f"--state-dir={tmp_path}")
    try:
        await wait_healthy(process, ports)
        async with httpx.AsyncClient() as client:
            created = await client.put(f"{crm_url}/customers/c1", json={"name": "Ada"})
    finally:
        await stop(process, signal.SIGTERM)

    process = await start(ports, f"--state-dir={tmp_path}")
    try:
        await wait_healthy(process, ports)
        async with httpx.AsyncClient() as client:
            got = await client.get(f"{crm_url}/customers/c1")
    finally:
        await stop(process, signal.SIGTERM)
    assert created.status_code == 201
    assert got.status_code == 200
    assert got.json()["name"] == "Ada"
    assert (tmp_path / "crm.json").is_file()


async def test_a_busy_port_fails_the_start(ports: dict[str, int]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports["hss"]))
        busy.listen()
        process = await start(ports)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 1
    assert b"simulator failed to start" in output
