"""Every error the API returns has the TMF error body ``{code, reason, message, status}``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from hub.errors import ValidationFailure

logger = logging.getLogger(__name__)


class TmfError(BaseModel):
    """The TMF630 error body every error answer has (documented in the OpenAPI)."""

    model_config = ConfigDict(populate_by_name=True)

    type: str = Field(default="Error", alias="@type", examples=["Error"])
    code: str = Field(description="The HTTP status, as text", examples=["404"])
    reason: str = Field(description="The status's phrase", examples=["Not Found"])
    message: str = Field(
        description="What is wrong, naming the field where one is at fault",
        examples=["no service order with id 'x'"],
    )
    status: str = Field(description="The HTTP status, as text", examples=["404"])


class ApiError(Exception):
    """An error answer: raise it from a handler or dependency."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


#: What an RPC fails with when Temporal is down, overloaded or too slow, rather than refusing.
TEMPORAL_UNREACHABLE = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)


def temporal_unreachable(exc: BaseException) -> ApiError | None:
    """A 503 when ``exc`` says Temporal could not be reached or did not answer in time; None
    when Temporal answered (NOT_FOUND, FAILED_PRECONDITION...: the caller says what it means).
    """
    if isinstance(exc, RPCError) and exc.status in TEMPORAL_UNREACHABLE:
        status = exc.status.name
    elif isinstance(exc, RPCTimeoutOrCancelledError) or (
        isinstance(exc, RPCError) and _client_timeout(exc)
    ):
        status = "no answer in time"
    else:
        return None
    return ApiError(503, f"Temporal is not reachable ({status}); try again", headers=_RETRY_LATER)


_RETRY_LATER = {"Retry-After": "5"}


def _client_timeout(exc: RPCError) -> bool:
    """The SDK's own RPC deadline passing: the client gives up and reports CANCELLED with
    "Timeout expired" (seen with an overloaded server), not DEADLINE_EXCEEDED."""
    return exc.status == RPCStatusCode.CANCELLED and "timeout" in exc.message.lower()


#: SQLite has one writer at a time: a transaction that read before it wrote fails at once when
#: another committed in between (its snapshot is stale; waiting cannot help), and any writer
#: fails after ``busy_timeout``. Nothing was written: the client may send it again.
BUSY_MESSAGE = (
    "the hub database is busy (another writer holds it): the request was not carried out; "
    "send it again"
)


def database_busy(exc: OperationalError) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" / "busy": a 503, not a 500."""
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


def tmf_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    """pydantic's ``('body', 'serviceOrderItem', 0, 'id')`` as ``serviceOrderItem[0].id``."""
    path = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def validation_message(errors: Sequence[Any]) -> str:
    """pydantic's errors (the first five) as one message naming each field."""
    problems = []
    for error in list(errors)[:5]:
        if error.get("type") == "json_invalid":
            problems.append("body: not valid JSON")
        else:
            problems.append(f"{_location(tuple(error.get('loc', ())))}: {error.get('msg')}")
    return "; ".join(problems) or "invalid request"


def error_body(status: int, message: str) -> dict[str, Any]:
    """The TMF error body, as a dict (what :func:`tmf_error` answers)."""
    body = TmfError(
        code=str(status), reason=HTTPStatus(status).phrase, message=message, status=str(status)
    )
    return body.model_dump(by_alias=True)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return tmf_error(exc.status, exc.message, exc.headers)

    @app.exception_handler(ValidationFailure)
    async def _validation_failure(_: Request, exc: ValidationFailure) -> JSONResponse:
        return tmf_error(400, f"{exc.field}: {exc.message}")

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return tmf_error(400, validation_message(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_exception(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return tmf_error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    async def _rpc_error(request: Request, exc: Exception) -> JSONResponse:
        # A route that does not say what Temporal's answer means: unreachable is still a 503.
        if (unreachable := temporal_unreachable(exc)) is not None:
            return tmf_error(503, unreachable.message, unreachable.headers)
        return await _unexpected(request, exc)

    app.add_exception_handler(RPCError, _rpc_error)
    app.add_exception_handler(RPCTimeoutOrCancelledError, _rpc_error)

    @app.exception_handler(OperationalError)
    async def _database_error(request: Request, exc: OperationalError) -> JSONResponse:
        if database_busy(exc):
            return tmf_error(503, BUSY_MESSAGE, {"Retry-After": "1"})
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error", exc_info=exc)
        return tmf_error(500, "internal error; the request was not carried out")
