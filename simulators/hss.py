"""HSS simulator (REST, default port 8103), shaped like an Open5GS subscriber document.

Like a real HSS it never echoes the subscriber's keys: every answer carries ``"***"`` in
place of ``security.k`` and ``security.opc``. Only ``GET /_sim/state`` shows the stored keys,
so tests can check what the hub provisioned.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from simulators.base import (
    BusinessError,
    IdempotencyKey,
    Reply,
    Simulator,
    create_sim_app,
    parse_body,
    validation_message,
)

REDACTED = "***"
#: The largest page ``GET /subscribers`` answers.
MAX_PAGE = 5000
#: The top-level keys ``PATCH`` may change; keys and identity are not among them.
PATCHABLE = frozenset({"msisdn", "ambr", "slice", "subscriber_status", "data_quota"})


def _hex_of(*lengths: int) -> AfterValidator:
    allowed = " or ".join(str(n) for n in lengths)

    def check(value: str) -> str:
        if len(value) not in lengths or not re.fullmatch(r"[0-9a-fA-F]+", value):
            raise ValueError(f"must be {allowed} hexadecimal digits")
        return value

    return AfterValidator(check)


def _digits(minimum: int, maximum: int) -> AfterValidator:
    def check(value: str) -> str:
        if not re.fullmatch(rf"[0-9]{{{minimum},{maximum}}}", value):
            size = f"{minimum}" if minimum == maximum else f"{minimum} to {maximum}"
            raise ValueError(f"must be {size} digits")
        return value

    return AfterValidator(check)


class _Strict(BaseModel):
    # A typo in a provisioning document must fail loudly, not be dropped.
    model_config = ConfigDict(extra="forbid")


class Bitrate(_Strict):
    value: int = Field(ge=0)
    #: Open5GS units: 0 bps, 1 Kbps, 2 Mbps, 3 Gbps, 4 Tbps.
    unit: int = Field(ge=0, le=4)


class Ambr(_Strict):
    downlink: Bitrate
    uplink: Bitrate


class Arp(_Strict):
    priority_level: int = Field(ge=1, le=15)
    pre_emption_capability: int = Field(ge=0, le=1)
    pre_emption_vulnerability: int = Field(ge=0, le=1)


class Qos(_Strict):
    #: The 5QI (QCI in 4G).
    index: int = Field(ge=1, le=255)
    arp: Arp


class Session(_Strict):
    name: str = Field(min_length=1)
    #: Open5GS PDN type: 1 IPv4, 2 IPv6, 3 IPv4v6.
    type: int = Field(ge=1, le=3)
    qos: Qos
    ambr: Ambr


class Slice(_Strict):
    sst: int = Field(ge=0, le=255)
    sd: Annotated[str, _hex_of(6)] | None = None
    default_indicator: bool = False
    session: list[Session] = Field(min_length=1)


class Security(_Strict):
    k: Annotated[str, _hex_of(32, 64)]
    opc: Annotated[str, _hex_of(32)]
    amf: Annotated[str, _hex_of(4)] = "8000"
    sqn: int = Field(default=0, ge=0)


class SubscriberDocument(_Strict):
    imsi: Annotated[str, _digits(15, 15)]
    msisdn: list[Annotated[str, _digits(6, 15)]] = Field(default_factory=list)
    security: Security
    ambr: Ambr
    slice: list[Slice] = Field(min_length=1)
    subscriber_status: int = Field(default=0, ge=0, le=1)
    access_restriction_data: int = 32
    network_access_mode: int = 0
    subscribed_rau_tau_timer: int = 12
    #: Bytes; 0 means unlimited.
    data_quota: int = Field(default=0, ge=0)


#: A valid subscriber document, for tests and the demo (keys of the TS 35.208 test set 1).
EXAMPLE_SUBSCRIBER: dict[str, Any] = {
    "imsi": "001010000000001",
    "msisdn": ["33612345678"],
    "security": {
        "k": "465B5CE8B199B49FAA5F0A2EE238A6BC",
        "opc": "CD63CB71954A9F4E48A5994E37A02BAF",
        "amf": "8000",
        "sqn": 97,
    },
    "ambr": {"downlink": {"value": 1, "unit": 3}, "uplink": {"value": 100, "unit": 2}},
    "slice": [
        {
            "sst": 1,
            "sd": None,
            "default_indicator": True,
            "session": [
                {
                    "name": "internet",
                    "type": 3,
                    "qos": {
                        "index": 9,
                        "arp": {
                            "priority_level": 8,
                            "pre_emption_capability": 1,
                            "pre_emption_vulnerability": 1,
                        },
                    },
                    "ambr": {
                        "downlink": {"value": 1, "unit": 3},
                        "uplink": {"value": 100, "unit": 2},
                    },
                }
            ],
        }
    ],
    "subscriber_status": 0,
    "access_restriction_data": 32,
    "network_access_mode": 0,
    "subscribed_rau_tau_timer": 12,
    "data_quota": 0,
}


def example_subscriber(imsi: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A fresh copy of :data:`EXAMPLE_SUBSCRIBER`, with another IMSI and top-level overrides."""
    document = copy.deepcopy(EXAMPLE_SUBSCRIBER)
    if imsi is not None:
        document["imsi"] = imsi
    document.update(overrides)
    return document


def redacted(document: dict[str, Any]) -> dict[str, Any]:
    public = copy.deepcopy(document)
    public["security"]["k"] = REDACTED
    public["security"]["opc"] = REDACTED
    return public


class HssSimulator(Simulator):
    name = "hss"

    def clear_records(self) -> None:
        self.subscribers: dict[str, dict[str, Any]] = {}

    def dump_records(self) -> dict[str, Any]:
        return {"subscribers": list(self.subscribers.values())}

    def load_records(self, data: dict[str, Any]) -> None:
        self.subscribers = {doc["imsi"]: doc for doc in data["subscribers"]}

    def _subscriber(self, imsi: str) -> dict[str, Any]:
        document = self.subscribers.get(imsi)
        if document is None:
            raise BusinessError(404, "subscriber not found")
        return document

    def create(self, raw: bytes) -> Reply:
        document = parse_body(SubscriberDocument, raw).model_dump(mode="json")
        if document["imsi"] in self.subscribers:
            # A retry under the same key never gets here: the stored 201 is replayed first.
            raise BusinessError(409, "subscriber exists")
        self.subscribers[document["imsi"]] = document
        return Reply.json(201, redacted(document))

    def page(self, offset: int, limit: int) -> Reply:
        """Subscribers in IMSI order, ``limit`` from ``offset`` (an inventory read in pages)."""
        imsis = sorted(self.subscribers)[offset : offset + limit]
        items = [redacted(self.subscribers[imsi]) for imsi in imsis]
        return Reply.json(
            200, {"items": items, "offset": offset, "limit": limit, "total": len(self.subscribers)}
        )

    def get(self, imsi: str) -> Reply:
        return Reply.json(200, redacted(self._subscriber(imsi)))

    def update(self, imsi: str, raw: bytes) -> Reply:
        current = self._subscriber(imsi)
        try:
            patch = json.loads(raw or b"{}")
        except ValueError as exc:
            raise BusinessError(422, f"body: invalid JSON ({exc})") from exc
        if not isinstance(patch, dict):
            raise BusinessError(422, "body: must be a JSON object")
        refused = sorted(set(patch) - PATCHABLE)
        if refused:
            allowed = ", ".join(sorted(PATCHABLE))
            raise BusinessError(422, f"{refused[0]}: cannot be changed (allowed: {allowed})")
        try:
            # Validate the merged document, so a patch cannot leave an invalid subscriber.
            merged = SubscriberDocument.model_validate({**current, **patch})
        except ValidationError as exc:
            raise BusinessError(422, validation_message(exc)) from exc
        document = merged.model_dump(mode="json")
        self.subscribers[imsi] = document
        return Reply.json(200, redacted(document))

    def delete(self, imsi: str) -> Reply:
        self._subscriber(imsi)
        del self.subscribers[imsi]
        return Reply.empty()


def create_app(state_file: Path | None = None) -> FastAPI:
    """The HSS simulator app; ``state_file`` persists records across restarts."""
    sim = HssSimulator(state_file)
    app = create_sim_app(sim, title="HSS simulator (Open5GS-shaped)")

    @app.post("/subscribers", status_code=201, tags=["subscribers"])
    async def create_subscriber(request: Request, key: IdempotencyKey = None) -> Response:
        return await sim.call(request, "createSubscriber", sim.create, idempotency_key=key)

    @app.get("/subscribers", tags=["subscribers"])
    async def list_subscribers(
        request: Request,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> Response:
        return await sim.call(
            request, "listSubscribers", lambda _: sim.page(offset, limit), mutating=False
        )

    @app.get("/subscribers/{imsi}", tags=["subscribers"])
    async def get_subscriber(request: Request, imsi: str) -> Response:
        return await sim.call(request, "getSubscriber", lambda _: sim.get(imsi), mutating=False)

    @app.patch("/subscribers/{imsi}", tags=["subscribers"])
    async def update_subscriber(
        request: Request, imsi: str, key: IdempotencyKey = None
    ) -> Response:
        return await sim.call(
            request, "updateSubscriber", lambda raw: sim.update(imsi, raw), idempotency_key=key
        )

    @app.delete("/subscribers/{imsi}", status_code=204, tags=["subscribers"])
    async def delete_subscriber(
        request: Request, imsi: str, key: IdempotencyKey = None
    ) -> Response:
        return await sim.call(
            request, "deleteSubscriber", lambda _: sim.delete(imsi), idempotency_key=key
        )

    return app
