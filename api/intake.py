"""Orders that arrive on a broker instead of ``POST /serviceOrder``: the API's other door.

A message's payload is a TMF641 ``ServiceOrderCreate`` body, and it goes the way a POST's body
goes: the same JSON checks (:func:`api.inbound.parse_json`), the same size limit
(``HUB_MAX_BODY_BYTES``), the same model and validation, and the same function that records
the order and starts its workflow (:func:`api.routes.service_orders.place_service_order`),
so a second message with the same ``externalId`` answers the first order and places none.

:meth:`OrderIntake.handle` answers None once the order is recorded (or was already), or the
TMF error body a POST would have been refused with (a 4xx): the consumer then puts that on
the rejects topic. A failure that a retry may cure (the database or Temporal unreachable, a
503) raises, and the consumer neither commits nor acknowledges the message: it is delivered
again. Who places these orders is a configured identity (``HUB_INTAKE_CALLER``, optionally a
partner's, ``HUB_INTAKE_PARTNER_ID``), never an anonymous one.

The consumers (:mod:`adapters.intake`) run in the ``hub intake`` process
(:mod:`hub.tools.intake`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.exceptions import HTTPException
from temporalio.client import Client

from api.deps import Principal
from api.errors import ApiError, error_body, validation_message
from api.inbound import parse_json
from api.routes.service_orders import PREFIX, place_service_order
from api.tmf641 import ServiceOrderCreate
from hub.errors import ValidationFailure
from hub.permissions import Scope
from hub.settings import Settings

logger = logging.getLogger("hub.intake")


class IntakeUnavailable(Exception):
    """The order could not be recorded now (a 5xx): the message must be delivered again."""


def intake_caller(settings: Settings) -> Principal:
    """The identity orders from a broker are placed by: it may write orders, nothing else."""
    return Principal(
        subject=f"broker:{settings.intake_caller}",
        scopes=frozenset({Scope.ORDERS_WRITE.value}),
        partner_id=settings.intake_partner_id or None,
    )


def _base_url(settings: Settings) -> str:
    public = settings.public_url or f"http://{settings.api_host}:{settings.api_port}"
    return public.rstrip("/") + PREFIX


class OrderIntake:
    """Places the orders of broker messages through the API's own code path."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        temporal: Callable[[], Awaitable[Client]],
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.temporal = temporal
        self.caller = intake_caller(settings)

    def _refused(self, status: int, message: str, source: str) -> dict[str, Any]:
        logger.info("order refused from %s (%s): %s", source, status, message)
        return error_body(status, message)

    def parse(self, payload: bytes, source: str) -> ServiceOrderCreate | dict[str, Any]:
        """The payload as a validated body, or the TMF error body that refuses it."""
        if len(payload) > self.settings.max_body_bytes:
            return self._refused(
                413,
                f"body: larger than {self.settings.max_body_bytes} bytes (HUB_MAX_BODY_BYTES)",
                source,
            )
        try:
            document = parse_json(payload)
        except json.JSONDecodeError:
            return self._refused(400, "body: not valid JSON", source)
        except HTTPException as exc:
            return self._refused(exc.status_code, str(exc.detail), source)
        try:
            return ServiceOrderCreate.model_validate(document)
        except ValidationError as exc:
            return self._refused(400, validation_message(exc.errors()), source)

    async def handle(self, payload: bytes, source: str) -> dict[str, Any] | None:
        """Record the order ``payload`` holds; None when it is recorded (now or before), the
        TMF error body when it is refused. Raises when it cannot be recorded now."""
        body = self.parse(payload, source)
        if isinstance(body, dict):
            return body
        try:
            temporal = await self.temporal()
        except Exception as exc:
            raise IntakeUnavailable(f"Temporal is not reachable: {type(exc).__name__}") from exc
        async with self.sessions() as session:
            try:
                placed = await place_service_order(
                    self.caller, body, session, temporal, self.settings, _base_url(self.settings)
                )
            except ValidationFailure as exc:
                return self._refused(400, f"{exc.field}: {exc.message}", source)
            except ApiError as exc:
                if exc.status >= 500:
                    raise IntakeUnavailable(exc.message) from exc
                return self._refused(exc.status, exc.message, source)
        order = placed.order
        logger.info(
            "order %s %s from %s by %s",
            order["id"],
            "recorded" if placed.created else "already recorded (same externalId)",
            source,
            self.caller.subject,
            extra={"orderId": order["id"], "externalId": order.get("externalId")},
        )
        return None
