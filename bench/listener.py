"""A webhook subscriber for the tests and the events bench: a real HTTP server on loopback.

It records every request (headers, body, when) and answers from a script: the next scripted
answer (status, headers) if there is one, else 204. ``hold`` makes it keep the next request
open until released (a delivery in flight).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Listener:
    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    held: threading.Event | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/events"

    def answer(self, *answers: tuple[int, dict[str, str]]) -> None:
        with self.lock:
            self.script.extend(answers)

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.event for r in self.received]

    def ids(self) -> list[str]:
        with self.lock:
            return [r.headers["webhook-id"] for r in self.received]


def start_listener() -> Listener:
    listener: Listener

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as receivers usually do

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with listener.lock:
                listener.received.append(
                    Received({k.lower(): v for k, v in self.headers.items()}, body, time.time())
                )
                status, headers = listener.script.pop(0) if listener.script else (204, {})
                held = listener.held
            if held is not None:
                held.wait(timeout=30)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    listener = Listener(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return listener
