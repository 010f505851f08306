"""Wholesale partner simulator (REST, default port 8108): the partner's callback endpoint.

Anything POSTed under ``/hooks/{name}`` is a notification to the partner ``name``: recorded
with its Standard Webhooks headers (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``) and body, and answered ``204``. When the partner's signing secret is
known (``PUT /_sim/secrets/{name}``), a notification whose signature does not verify is
answered ``401``, as a partner that checks signatures would. An endpoint that is down or slow
is the shared fault injection (``/_sim/faults``, operation ``notify``) and latency
(``/_sim/config``); ``GET /_sim/state`` shows what arrived.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from hub.partners import webhooks
from simulators.base import Reply, Simulator, create_sim_app


class SecretIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str = Field(min_length=7, max_length=200)


class PartnerSimulator(Simulator):
    name = "partner"

    def clear_records(self) -> None:
        self.deliveries: list[dict[str, Any]] = []
        self.secrets: dict[str, str] = {}

    def dump_records(self) -> dict[str, Any]:
        # The secrets are the partner's: never shown, only whether one is set.
        return {"deliveries": self.deliveries, "verifying": sorted(self.secrets)}

    def load_records(self, data: dict[str, Any]) -> None:
        self.deliveries = list(data["deliveries"])
        self.secrets = {}

    def receive(self, name: str, headers: dict[str, str], raw: bytes) -> Reply:
        secret = self.secrets.get(name)
        verified = None
        if secret is not None:
            verified = webhooks.verify(
                secret,
                headers.get("webhook-id", ""),
                headers.get("webhook-timestamp", ""),
                headers.get("webhook-signature", ""),
                raw,
                now=time.time(),
            )
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = raw.decode(errors="replace")
        self.deliveries.append(
            {
                "partner": name,
                "webhookId": headers.get("webhook-id"),
                "webhookTimestamp": headers.get("webhook-timestamp"),
                "webhookSignature": headers.get("webhook-signature"),
                "verified": verified,
                "body": body,
                "receivedAt": datetime.now(UTC).isoformat(),
            }
        )
        if verified is False:
            return Reply.json(401, {"error": "the signature does not verify"})
        return Reply.empty(204)


def create_app(state_file: Path | None = None) -> FastAPI:
    """The partner simulator app; ``state_file`` persists what it received."""
    sim = PartnerSimulator(state_file)
    app = create_sim_app(sim, title="Wholesale partner simulator (callback endpoint)")

    @app.post("/hooks/{name}", tags=["callbacks"], status_code=204)
    async def notify(request: Request, name: str) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        raw = await request.body()
        return await sim.call(request, "notify", lambda _: sim.receive(name, headers, raw))

    @app.put("/_sim/secrets/{name}", tags=["simulator control"], status_code=204)
    async def put_secret(name: str, body: SecretIn) -> Response:
        async with sim.lock:
            sim.secrets[name] = body.secret
        return Response(status_code=204)

    return app
