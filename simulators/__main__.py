"""Run the simulators in one process and one asyncio loop: ``python -m simulators``.

Each system gets its own uvicorn server on its own port. SIGINT or SIGTERM stops them all
gracefully; the exit status is 1 if any of them could not start (a port in use, say).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from simulators import DEFAULT_PORTS, SYSTEMS
from simulators.serving import SimulatorServer

logger = logging.getLogger("simulators")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    for system in SYSTEMS:
        parser.add_argument(f"--{system}-port", type=int, default=DEFAULT_PORTS[system])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="keep each system's records in DIR/<system>.json across restarts",
    )
    parser.add_argument(
        "--billing-export-dir",
        type=Path,
        default=None,
        help="billing's usage export (rated usage, subscriptions) served at /exports/usage",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["critical", "error", "warning", "info", "debug"],
    )
    return parser.parse_args(argv)


def build_servers(args: argparse.Namespace) -> dict[str, SimulatorServer]:
    servers = {}
    for system in SYSTEMS:
        module = importlib.import_module(f"simulators.{system}")
        state_file = args.state_dir / f"{system}.json" if args.state_dir else None
        app = (
            module.create_app(state_file, args.billing_export_dir)
            if system == "billing"
            else module.create_app(state_file)
        )
        config = uvicorn.Config(
            app,
            host=args.host,
            port=getattr(args, f"{system}_port"),
            log_level=args.log_level,
            lifespan="off",
        )
        servers[system] = SimulatorServer(config)
    return servers


async def serve(servers: dict[str, SimulatorServer]) -> int:
    """Serve until a signal (status 0) or until one server fails to start (status 1)."""
    loop = asyncio.get_running_loop()

    def stop_all() -> None:
        for server in servers.values():
            server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no loop signal handlers on Windows
            loop.add_signal_handler(signum, stop_all)

    async def run(system: str, server: SimulatorServer) -> bool:
        try:
            await server.serve()
        except SystemExit:
            # uvicorn calls sys.exit() when it cannot bind; the others must not linger.
            logger.error("simulator failed to start", extra={"system": system})
            stop_all()
            return False
        return True

    async def announce() -> None:
        while not all(server.started for server in servers.values()):
            if any(server.should_exit for server in servers.values()):
                return
            await asyncio.sleep(0.05)
        logger.info(
            "simulators ready: %s",
            ", ".join(f"{name}=:{server.config.port}" for name, server in servers.items()),
        )

    announcer = asyncio.create_task(announce())
    results = await asyncio.gather(*(run(name, server) for name, server in servers.items()))
    announcer.cancel()
    return 0 if all(results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    return asyncio.run(serve(build_servers(args)))


if __name__ == "__main__":
    sys.exit(main())
