"""Request body limits: a pure ASGI middleware, so nothing reads a body past its bound.

A ``Content-Length`` over the bound is answered 413 at once, before the body is read or the
caller authenticated; a body without one (chunked) is counted as it streams in, and the
first chunk past the bound ends the request with 413. The answer has the TMF error body.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import tmf_error


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: an HTTPException, so FastAPI's body parsing lets it through
    to the error handlers rather than calling it a parsing error."""

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(413, f"body: larger than {limit} bytes (the bound {setting})")


class BodyLimit:
    """Bound request bodies to ``limit`` bytes, or to the bound of the longest prefix of
    ``by_prefix`` (``{"/codec/": (8 MiB, "HUB_CODEC_MAX_BODY_BYTES")}``) the path starts with.
    Bounds are ``(bytes, name of the setting)``; the name goes into the 413's message."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: tuple[int, str],
        by_prefix: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.by_prefix = sorted((by_prefix or {}).items(), key=lambda item: -len(item[0]))

    def _bound(self, scope: Scope) -> tuple[int, str]:
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        for prefix, bound in self.by_prefix:
            if path.startswith(prefix):
                return bound
        return self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self._bound(scope)
        too_large = BodyTooLarge(limit, setting)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await tmf_error(413, too_large.detail)(scope, receive, send)
            return

        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            # Normally the app's error handlers answer it; this is for a body read where
            # they do not reach (a middleware, a streaming response).
            if started:
                raise
            await tmf_error(413, too_large.detail)(scope, receive, send)
