"""Running simulator apps as real servers inside an existing asyncio loop.

:class:`SimulatorServer` is the uvicorn server ``python -m simulators`` runs four of;
:func:`serve_in_background` starts one on a free loopback port for a test and stops it after::

    async with serve_in_background(billing.create_app()) as base_url:
        ...  # talk to f"{base_url}/billing"
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from fastapi import FastAPI


class SimulatorServer(uvicorn.Server):
    """A uvicorn server that leaves signals to whoever runs it.

    uvicorn installs its handlers per server: with several in one process, only the last one
    installed would hear Ctrl-C, and it re-raises the signal once shut down, killing the others
    mid-way. Inside a test, it would also take over the test runner's Ctrl-C.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_in_background(
    app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, startup_within: float = 10.0
) -> AsyncIterator[str]:
    """Serve ``app`` in the running loop; yield its base URL (``http://host:port``)."""
    # Say IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says
    # TCP, and without it Nagle plus delayed ACKs add about 40 ms to every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((host, port))
    server = SimulatorServer(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(startup_within):
            while not server.started:
                if task.done():
                    await task  # surfaces the startup error
                    raise RuntimeError("server stopped during startup")
                await asyncio.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()
