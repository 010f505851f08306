"""Credit agency simulator (REST, default port 8101).

A credit check reserves an amount of the customer's exposure; deleting the check releases it.
A check is declined when the customer is on the declined list, or when the reservation would
take the customer's exposure (sum of its approved checks) over the credit limit. A check of
amount 0 reserves nothing: it asks for the score alone (a company's, before onboarding it).
Scores are stable per customer; ``PUT /_sim/scores/{customerId}`` sets one.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from simulators.base import (
    BusinessError,
    IdempotencyKey,
    Reply,
    Simulator,
    create_sim_app,
    new_id,
    parse_body,
)

DEFAULT_CREDIT_LIMIT = 500.0


class CreditCheckCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customerId: str = Field(min_length=1)
    name: str = Field(min_length=1)
    amount: float = Field(ge=0)
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")


class Score(BaseModel):
    score: int = Field(ge=300, le=850)


class CreditLimit(BaseModel):
    limit: float = Field(ge=0)


def score_for(customer_id: str) -> int:
    """A stable pseudo-score in 300..850, so the same customer always scores the same."""
    digest = hashlib.sha256(customer_id.encode()).digest()
    return 300 + int.from_bytes(digest[:4], "big") % 551


class CreditSimulator(Simulator):
    name = "credit"

    def clear_records(self) -> None:
        self.checks: dict[str, dict[str, Any]] = {}
        self.declined: set[str] = set()
        self.limit = DEFAULT_CREDIT_LIMIT
        self.scores: dict[str, int] = {}

    def dump_records(self) -> dict[str, Any]:
        return {
            "checks": list(self.checks.values()),
            "declined": sorted(self.declined),
            "creditLimit": self.limit,
            "scores": self.scores,
        }

    def load_records(self, data: dict[str, Any]) -> None:
        self.checks = {check["id"]: check for check in data["checks"]}
        self.declined = set(data["declined"])
        self.limit = float(data.get("creditLimit", DEFAULT_CREDIT_LIMIT))
        self.scores = dict(data.get("scores", {}))

    def exposure(self, customer_id: str) -> float:
        return sum(
            check["amount"]
            for check in self.checks.values()
            if check["customerId"] == customer_id and check["decision"] == "approved"
        )

    def create_check(self, raw: bytes) -> Reply:
        body = parse_body(CreditCheckCreate, raw)
        reason: str | None = None
        if body.customerId in self.declined:
            reason = "customer on declined list"
        elif self.exposure(body.customerId) + body.amount > self.limit:
            reason = "amount exceeds credit limit"
        check: dict[str, Any] = {
            "id": new_id("chk"),
            "customerId": body.customerId,
            "name": body.name,
            "amount": body.amount,
            "currency": body.currency,
            "decision": "declined" if reason else "approved",
            "score": self.scores.get(body.customerId, score_for(body.customerId)),
            "reason": reason,
            "createdAt": datetime.now(UTC).isoformat(),
        }
        self.checks[check["id"]] = check
        return Reply.json(201, check)

    def get_check(self, check_id: str) -> Reply:
        check = self.checks.get(check_id)
        if check is None:
            raise BusinessError(404, "credit check not found")
        return Reply.json(200, check)

    def delete_check(self, check_id: str) -> Reply:
        # Releasing an unknown reservation succeeds: the goal (nothing reserved) holds.
        self.checks.pop(check_id, None)
        return Reply.empty()


def create_app(state_file: Path | None = None) -> FastAPI:
    """The credit agency simulator app; ``state_file`` persists records across restarts."""
    sim = CreditSimulator(state_file)
    app = create_sim_app(sim, title="Credit agency simulator")

    @app.post("/credit-checks", status_code=201, tags=["credit checks"])
    async def create_check(request: Request, key: IdempotencyKey = None) -> Response:
        return await sim.call(request, "createCheck", sim.create_check, idempotency_key=key)

    @app.get("/credit-checks/{check_id}", tags=["credit checks"])
    async def get_check(request: Request, check_id: str) -> Response:
        return await sim.call(
            request, "getCheck", lambda _: sim.get_check(check_id), mutating=False
        )

    @app.delete("/credit-checks/{check_id}", status_code=204, tags=["credit checks"])
    async def delete_check(request: Request, check_id: str, key: IdempotencyKey = None) -> Response:
        return await sim.call(
            request, "deleteCheck", lambda _: sim.delete_check(check_id), idempotency_key=key
        )

    @app.put("/_sim/declined/{customer_id}", status_code=204, tags=["simulator control"])
    async def decline_customer(customer_id: str) -> Response:
        async with sim.lock:
            sim.declined.add(customer_id)
            await sim.persist()
        return Response(status_code=204)

    @app.delete("/_sim/declined/{customer_id}", status_code=204, tags=["simulator control"])
    async def undecline_customer(customer_id: str) -> Response:
        async with sim.lock:
            sim.declined.discard(customer_id)
            await sim.persist()
        return Response(status_code=204)

    @app.put("/_sim/scores/{customer_id}", tags=["simulator control"])
    async def put_score(customer_id: str, body: Score) -> Score:
        async with sim.lock:
            sim.scores[customer_id] = body.score
            await sim.persist()
        return body

    @app.get("/_sim/credit-limit", tags=["simulator control"])
    async def get_limit() -> CreditLimit:
        return CreditLimit(limit=sim.limit)

    @app.put("/_sim/credit-limit", tags=["simulator control"])
    async def put_limit(body: CreditLimit) -> CreditLimit:
        async with sim.lock:
            sim.limit = body.limit
            await sim.persist()
        return body

    return app
