"""Machinery shared by the four simulators: state, faults, latency, idempotency, persistence.

A simulator is a :class:`Simulator` subclass that owns its records and knows how to render
an error in its protocol (JSON for REST, a SOAP fault for billing). Every business endpoint
funnels through :meth:`Simulator.call`, which applies, in this order:

1. the configured latency (the simulated system is slow);
2. the fault rules, then the random ``error_rate`` (the system is down: nothing happens,
   not even an idempotent replay);
3. the idempotency replay of a stored successful answer;
4. the handler itself, under the app's lock, then persistence of the new state.

:func:`create_sim_app` builds the FastAPI app with the ``/_sim/*`` control endpoints that
tests and the demo use to inspect state, reset it, configure latency and inject faults.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

#: The ``Idempotency-Key`` header of a mutating REST request, None when absent.
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


class BusinessError(Exception):
    """A handler's refusal: the simulated system answered, and the answer is an error.

    ``code`` is the machine-readable reason where the protocol has one (billing fault codes).
    """

    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass
class Reply:
    """A finished HTTP answer, storable for idempotent replay and persistable as JSON."""

    status: int
    content: str = ""
    media_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any) -> Reply:
        return cls(status, json.dumps(payload, separators=(",", ":")), "application/json")

    @classmethod
    def empty(cls, status: int = 204) -> Reply:
        return cls(status)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def to_response(self) -> Response:
        return Response(
            content=self.content or None,
            status_code=self.status,
            media_type=self.media_type,
            headers=self.headers,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "content": self.content,
            "media_type": self.media_type,
            "headers": self.headers,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        return cls(data["status"], data["content"], data["media_type"], data.get("headers", {}))


class SimConfig(BaseModel):
    """Body of ``PUT /_sim/config``: how slow and how flaky the system is."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(default=0, ge=0, le=600_000)
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    seed: int | None = None


class FaultRuleIn(BaseModel):
    """Body of ``POST /_sim/faults``."""

    model_config = ConfigDict(extra="forbid")

    operation: str = Field(default="*", min_length=1)
    match: str | None = None
    kind: Literal["transient", "permanent"] = "transient"
    #: How many requests the rule hits; None means until it is deleted.
    times: int | None = Field(default=None, ge=1)
    status: int | None = Field(default=None, ge=400, le=599)
    message: str | None = None


class FaultRule(FaultRuleIn):
    """A stored fault rule, with what is left of it."""

    id: str
    remaining: int | None
    #: How many requests it has failed so far (handy to assert a rule fired).
    applied: int = 0

    def applies_to(self, operation: str, haystack: str) -> bool:
        if self.remaining == 0:
            return False
        if self.operation not in ("*", operation):
            return False
        return self.match is None or self.match in haystack


def validation_message(exc: ValidationError | RequestValidationError) -> str:
    """``"<field>: <why>"`` for each error, joined by ``"; "``."""
    parts = []
    for error in exc.errors():
        # FastAPI prefixes the location with where it looked ("body", "path").
        location = [p for p in error["loc"] if p not in ("body", "path", "query", "header")]
        path = ""
        for part in location:
            path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
        why = error["msg"].removeprefix("Value error, ")  # pydantic's prefix for ValueError
        parts.append(f"{path or 'body'}: {why}")
    return "; ".join(parts)


def parse_body(model: type[ModelT], raw: bytes) -> ModelT:
    """Validate a JSON body inside a handler, so faults and replays come before validation."""
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise BusinessError(422, validation_message(exc)) from exc


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader never sees half a file (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Simulator:
    """One simulated outside system: its records plus the shared test-double behaviour.

    Subclasses set ``name``, implement :meth:`clear_records`, :meth:`dump_records` and
    :meth:`load_records`, and may override :meth:`error_reply` and :meth:`fault_reply` to speak
    their protocol.
    """

    name = "sim"

    def __init__(self, state_file: Path | None = None) -> None:
        self.state_file = state_file
        self.lock = asyncio.Lock()
        self.config = SimConfig()
        self.random = random.Random()
        self.faults: dict[str, FaultRule] = {}
        #: Successful answers by ``"<operation>\x00<key>"``.
        self.idempotency: dict[str, Reply] = {}
        self.clear_records()
        if state_file is not None and state_file.exists():
            self._load(state_file)

    # -- to implement ---------------------------------------------------------------------

    def clear_records(self) -> None:
        raise NotImplementedError

    def dump_records(self) -> dict[str, Any]:
        """All records as JSON-able data; also the body of ``GET /_sim/state``."""
        raise NotImplementedError

    def load_records(self, data: dict[str, Any]) -> None:
        raise NotImplementedError

    def error_reply(self, error: BusinessError) -> Reply:
        return Reply.json(error.status, {"error": error.message})

    def fault_reply(
        self, kind: Literal["transient", "permanent"], status: int | None, message: str | None
    ) -> Reply:
        if kind == "transient":
            return Reply(
                status or 503,
                json.dumps({"error": message or "injected transient fault", "injected": True}),
                "application/json",
                {"Retry-After": "0"},
            )
        return Reply.json(
            status or 422, {"error": message or "injected permanent fault", "injected": True}
        )

    # -- the request pipeline -------------------------------------------------------------

    async def call(
        self,
        request: Request,
        operation: str,
        handler: Callable[[bytes], Reply],
        *,
        idempotency_key: str | None = None,
        mutating: bool = True,
    ) -> Response:
        """Run one business request through latency, faults, replay, handler and persistence.

        ``handler`` gets the raw body. It is synchronous on purpose: it runs whole under the
        lock, so two interleaved requests can never both see "not there yet" and both create.
        """
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)

        raw = await request.body()
        haystack = request.url.path + raw.decode(errors="replace")
        injected = self._injected_failure(operation, haystack)
        if injected is not None:
            return injected.to_response()

        if not mutating:
            return self._run(handler, raw).to_response()

        async with self.lock:
            memory_key = f"{operation}\x00{idempotency_key}" if idempotency_key else None
            if memory_key is not None and memory_key in self.idempotency:
                logger.debug(
                    "%s: idempotent replay of %s", self.name, operation,
                    extra={"sim": self.name, "op": operation, "key": idempotency_key},
                )  # fmt: skip
                return self.idempotency[memory_key].to_response()
            reply = self._run(handler, raw)
            if reply.ok:
                if memory_key is not None:
                    self.idempotency[memory_key] = reply
                await self.persist()
            return reply.to_response()

    def _run(self, handler: Callable[[bytes], Reply], raw: bytes) -> Reply:
        try:
            return handler(raw)
        except BusinessError as error:
            return self.error_reply(error)

    async def gate(self, operation: str, haystack: str) -> Response | None:
        """Latency and fault injection for a call that answers outside :meth:`call` (a file
        streamed from disk): the injected failure to answer, or None to go on."""
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)
        injected = self._injected_failure(operation, haystack)
        return injected.to_response() if injected is not None else None

    def _injected_failure(self, operation: str, haystack: str) -> Reply | None:
        for rule in self.faults.values():
            if rule.applies_to(operation, haystack):
                if rule.remaining is not None:
                    rule.remaining -= 1
                rule.applied += 1
                logger.info(
                    "%s: injected %s fault on %s (rule %s)",
                    self.name, rule.kind, operation or "<unparsed>", rule.id,
                    extra={"sim": self.name, "op": operation, "rule": rule.id, "kind": rule.kind},
                )  # fmt: skip
                return self.fault_reply(rule.kind, rule.status, rule.message)
        if self.config.error_rate and self.random.random() < self.config.error_rate:
            return self.fault_reply("transient", None, "random failure (error_rate)")
        return None

    # -- control ---------------------------------------------------------------------------

    async def reset(self) -> None:
        async with self.lock:
            self.clear_records()
            self.idempotency.clear()
            self.faults.clear()
            self.configure(SimConfig())
            await self.persist()

    def configure(self, config: SimConfig) -> None:
        self.config = config
        self.random = random.Random(config.seed)

    def add_fault(self, rule: FaultRuleIn) -> FaultRule:
        stored = FaultRule(**rule.model_dump(), id=new_id("fault"), remaining=rule.times)
        self.faults[stored.id] = stored
        return stored

    # -- persistence -----------------------------------------------------------------------

    async def persist(self) -> None:
        """Rewrite the state file, if any; call with the lock held so writes stay in order."""
        if self.state_file is None:
            return
        snapshot = {
            "records": self.dump_records(),
            "idempotency": {key: reply.to_dict() for key, reply in self.idempotency.items()},
        }
        text = json.dumps(snapshot, indent=1, sort_keys=True)
        await asyncio.to_thread(write_atomically, self.state_file, text)

    def _load(self, path: Path) -> None:
        try:
            snapshot = json.loads(path.read_text(encoding="utf-8"))
            self.load_records(snapshot["records"])
            self.idempotency = {
                key: Reply.from_dict(value) for key, value in snapshot["idempotency"].items()
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Refuse to start on a state we cannot read rather than silently drop it.
            raise RuntimeError(f"{self.name}: cannot load state file {path}: {exc}") from exc
        logger.info("state loaded", extra={"sim": self.name, "path": str(path)})


def create_sim_app(sim: Simulator, *, title: str, description: str = "") -> FastAPI:
    """A FastAPI app for ``sim`` with the ``/_sim/*`` control endpoints already mounted."""
    app = FastAPI(title=title, description=description)
    app.state.simulator = sim

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Same error shape as the business endpoints, instead of FastAPI's {"detail": [...]}.
        return JSONResponse({"error": validation_message(exc)}, status_code=422)

    router = APIRouter(prefix="/_sim", tags=["simulator control"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/state")
    async def state() -> dict[str, Any]:
        return sim.dump_records()

    @router.post("/reset", status_code=204)
    async def reset() -> Response:
        await sim.reset()
        return Response(status_code=204)

    @router.get("/config")
    async def get_config() -> SimConfig:
        return sim.config

    @router.put("/config")
    async def put_config(config: SimConfig) -> SimConfig:
        sim.configure(config)
        return sim.config

    @router.post("/faults", status_code=201)
    async def add_fault(rule: FaultRuleIn) -> FaultRule:
        return sim.add_fault(rule)

    @router.get("/faults")
    async def list_faults() -> list[FaultRule]:
        return list(sim.faults.values())

    @router.delete("/faults", status_code=204)
    async def clear_faults() -> Response:
        sim.faults.clear()
        return Response(status_code=204)

    @router.delete("/faults/{fault_id}", status_code=204)
    async def delete_fault(fault_id: str) -> Response:
        if sim.faults.pop(fault_id, None) is None:
            return JSONResponse({"error": "fault rule not found"}, status_code=404)
        return Response(status_code=204)

    app.include_router(router)
    return app
