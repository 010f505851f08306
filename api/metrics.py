"""The API's HTTP metrics: requests per route, method and status, and their latency.

A pure ASGI middleware (no buffering of bodies), recording into the app's own
:class:`prometheus_client.CollectorRegistry` (``app.state.metrics``), so two apps in one process
(the tests) never share counters. The route label is the route's path template
(``/tmf-api/serviceOrdering/v4/serviceOrder/{id}``), never the path itself: a caller cannot
grow the series by calling made-up paths (those are ``unmatched``) or methods (``other``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Latency buckets (seconds) of API calls: a TMF POST takes milliseconds, a page of a big list
#: a second or more.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"
#: Methods counted by name; any other (a client may send any token) is ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# No ``*_created`` series beside every counter: they double what Prometheus stores and no rule
# reads them.
disable_created_metrics()


@dataclass
class HttpMetrics:
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        self.requests = Counter(
            "hub_http_requests",
            "HTTP requests the API answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "hub_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method",
            ["route", "method"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )


class HttpMetricsMiddleware:
    """Counts and times every HTTP request by the route that served it."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = scope.get("method", "GET")
            method = method if method in METHODS else "other"
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.duration.labels(template, method).observe(time.perf_counter() - started)
