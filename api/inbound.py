"""What every request's text must be, checked in one place before any route sees it.

A NUL or a lone surrogate (``"\\ud800"``, legal in JSON text) can never be stored
(PostgreSQL refuses NUL, UTF-8 cannot encode a surrogate) nor sent on: left in, they fail
much later with a 500 or a parked step. :class:`CheckedRoute` refuses them in every query and
path parameter and, through :func:`parse_json`, in every string and key of a JSON body, with a
400 naming the field. So does a body nested deeper than any request needs, or one with
``NaN`` or ``Infinity`` (not JSON, and no response could carry them back).

Fields with stricter rules (ids, names) check them where they are read: :func:`unfit_name`.
"""

from __future__ import annotations

import email.message
import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from hub.errors import ValidationFailure

#: Deeper JSON than any hub request needs (an order is 6 levels) is refused.
MAX_DEPTH = 32


def unstorable(text: str) -> str | None:
    """Why no string field may hold ``text`` (a NUL, a lone surrogate), or None."""
    if "\x00" in text:
        return "must not contain a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain a lone surrogate (not Unicode text)"
    return None


def unfit_name(text: str) -> str | None:
    """Why ``text`` cannot be an id or a name, or None: it must be printable (no control,
    format, separator or unassigned characters; a plain space inside is fine, so is every
    letter and symbol), so every system can show and store it, XML 1.0 included."""
    if problem := unstorable(text):
        return problem
    if not text.isprintable():
        bad = next(c for c in text if not c.isprintable())
        return f"must be printable text (U+{ord(bad):04X} is not)"
    if text != text.strip():
        return "must not begin or end with a space"
    return None


def is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` names JSON (``application/json``, ``application/*+json``)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _path(parent: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{parent}[{part}]"
    return f"{parent}.{part}" if parent else part


def check_json(value: Any) -> None:
    """Raise a 400 naming the first string or key that cannot be stored, or a body too deep."""
    stack: list[tuple[str, Any, int]] = [("", value, 1)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, str):
            if problem := unstorable(item):
                raise HTTPException(400, f"{path or 'body'}: {problem}")
        elif isinstance(item, float) and not math.isfinite(item):  # 1e999 parses as inf
            raise HTTPException(400, f"{path or 'body'}: numbers must be finite")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise HTTPException(400, f"body: nested deeper than {MAX_DEPTH} levels")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and (problem := unstorable(key)):
                    raise HTTPException(400, f"{_path(path, '<key>')}: {problem}")
                stack.append((_path(path, key), child, depth + 1))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """``raw`` as JSON, checked with :func:`check_json`; a 400 for anything else."""
    try:
        value = json.loads(raw, parse_constant=_no_constants)
    except json.JSONDecodeError:
        raise  # FastAPI reports it as invalid JSON, with the position
    except (ValueError, RecursionError) as exc:  # not UTF-8, NaN, nested past Python's limit
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise HTTPException(400, f"body: not valid JSON ({reason})") from None
    check_json(value)
    return value


def _has_body(request: Request) -> bool:
    """Whether the request carries a body, told by its headers (reading it here would take
    it from the route)."""
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length != "0")


class CheckedRequest(Request):
    """A request whose JSON body is parsed by :func:`parse_json`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class CheckedRoute(APIRoute):
    """A route whose query and path parameters and JSON body pass :mod:`api.inbound`'s checks.

    A route that takes a JSON body answers a body of another ``Content-Type`` with 415 (FastAPI
    would pass the bytes on to validation, and a 400 would blame the body's fields).

    Every router of the API uses it (``APIRouter(route_class=CheckedRoute)``); a test holds
    every route to that.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_json = self.body_field is not None

        async def checked(request: Request) -> Response:
            for name, value in [*request.query_params.multi_items(), *request.path_params.items()]:
                if isinstance(value, str) and (problem := unstorable(value)):
                    raise ValidationFailure(name, problem)
            content_type = request.headers.get("content-type")
            if takes_json and not is_json(content_type) and _has_body(request):
                raise HTTPException(
                    415, f"Content-Type: send application/json, not {content_type or 'none'}"
                )
            return await handler(CheckedRequest(request.scope, request.receive))

        return checked
