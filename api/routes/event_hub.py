"""TMF630 event subscriptions (``/hub``) of TMF641 Service Ordering and TMF669 Party Role.

``POST /hub`` registers a callback and a query (:mod:`hub.events.query`; one the hub cannot
evaluate is a 400). The signing secret is the caller's (``secret``), or one the hub makes and
answers this once; it is stored sealed (:mod:`hub.sealing`: the API holds only the public key),
and only the worker, where it signs, opens it. A partner's token subscribes to its own
resources' events only, and sees its own subscriptions only (another's is a 404).

Beyond TMF630: ``GET /hub/{id}/deliveries`` (the delivery log), ``POST
/hub/{id}/deliveries/{deliveryId}/replay`` (a dead-lettered delivery sent again, with its
``eventId``), ``POST /hub/{id}/rotateSecret`` (a new secret; the previous one keeps signing
beside it until the next rotation).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, Field
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities.events import ReplayInput, ReplayResult
from api.deps import Principal, SessionDep, SettingsDep, TemporalDep, require_scope
from api.errors import ApiError, temporal_unreachable
from api.inbound import CheckedRoute
from api.listing import Offset, one_of, page
from hub.errors import ValidationFailure
from hub.events.envelopes import Domain
from hub.events.models import (
    SECRET_FIELD,
    DeliveryStatus,
    EventDelivery,
    EventSubscription,
    SubscriptionStatus,
)
from hub.events.query import QueryError, parse_query
from hub.events.relay import POKE, subscription_workflow_id
from hub.models import utcnow
from hub.partners import webhooks
from hub.partners.callbacks import check_callback_url
from hub.permissions import Scope
from hub.service_orders import iso
from hub.settings import Settings
from workflows.events import EventSubscriptionRelay

Reader = Annotated[Principal, Depends(require_scope(Scope.EVENTS_READ))]
Writer = Annotated[Principal, Depends(require_scope(Scope.EVENTS_WRITE))]
#: Secrets a subscription signs with at once: the new and the previous, during a rotation.
MAX_SECRETS = 2


class EventSubscriptionInput(BaseModel):
    callback: str = Field(max_length=2000, description="Where events are POSTed")
    query: str | None = Field(
        default=None,
        max_length=2000,
        description="eventType=A,B and event.<resource>.<attribute>=value, joined with &",
    )
    secret: str | None = Field(
        default=None,
        max_length=200,
        description="whsec_ and base64 of 24 to 64 bytes; absent: the hub makes one and "
        "answers it once",
    )


class ReplayBody(BaseModel):
    reason: str | None = Field(default=None, max_length=1000)


def _check_secret(secret: str) -> str:
    try:
        key = base64.b64decode(secret.removeprefix(webhooks.SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailure("secret", "must be whsec_ followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ValidationFailure("secret", "must decode to 24 to 64 bytes")
    return secret


def _subscription_json(sub: EventSubscription) -> dict[str, Any]:
    return {"id": sub.id, "callback": sub.callback, "query": sub.query or None}


def _delivery_json(delivery: EventDelivery) -> dict[str, Any]:
    resource_type, _, resource_id = delivery.resource_key.partition("/")
    return {
        "id": delivery.id,
        "eventId": delivery.event_id,
        "eventType": delivery.event_type,
        "resourceType": resource_type,
        "resourceId": resource_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "lastResponseCode": delivery.last_status_code,
        "lastError": delivery.last_error,
        "nextAttemptAt": iso(delivery.next_attempt_at)
        if delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at
        else None,
        "createdAt": iso(delivery.created_at),
        "deliveredAt": iso(delivery.delivered_at) if delivery.delivered_at else None,
        "deadLetterId": delivery.dead_letter_id,
    }


def _seal(settings: Settings, secret: str, subscription_id: str) -> str:
    sealer = settings.sealer()
    if sealer is None:
        raise ApiError(
            503,
            "event subscriptions keep their secret sealed: HUB_SEAL_PUBLIC_KEY (or, outside "
            "production, HUB_SEAL_KEYS) is not set",
        )
    return sealer.seal(SECRET_FIELD, secret, context=subscription_id)


def hub_router(prefix: str, domain: Domain, tag: str) -> APIRouter:
    """The ``/hub`` routes of one API (``prefix``), for the events of ``domain``."""
    router = APIRouter(prefix=prefix, tags=[tag], route_class=CheckedRoute)

    async def visible(
        session: AsyncSession, subscription_id: str, caller: Principal
    ) -> EventSubscription:
        sub = await session.get(EventSubscription, subscription_id)
        if (
            sub is None
            or sub.api != domain
            or sub.status != SubscriptionStatus.ACTIVE
            or (caller.partner_id is not None and sub.partner_id != caller.partner_id)
        ):
            raise ApiError(404, f"no event subscription with id {subscription_id!r}")
        return sub

    @router.post(
        "/hub",
        status_code=status.HTTP_201_CREATED,
        summary="Subscribe to events (TMF630 hub)",
        name=f"subscribe_{domain}",
    )
    async def subscribe(
        caller: Writer,
        body: EventSubscriptionInput,
        request: Request,
        response: Response,
        session: SessionDep,
        settings: SettingsDep,
    ) -> dict[str, Any]:
        try:
            callback = check_callback_url(body.callback, settings.callback_policy)
        except ValueError as exc:
            raise ValidationFailure("callback", str(exc)) from None
        try:
            parse_query(body.query or "", domain)
        except QueryError as exc:
            raise ValidationFailure("query", str(exc).removeprefix("query: ")) from None
        generated = body.secret is None
        secret = webhooks.new_secret() if body.secret is None else _check_secret(body.secret)
        sub_id = uuid.uuid4().hex
        sub = EventSubscription(
            id=sub_id,
            api=domain.value,
            callback=callback,
            query=body.query or "",
            secrets_sealed=[_seal(settings, secret, sub_id)],
            partner_id=caller.partner_id,
            created_by=caller.subject,
        )
        session.add(sub)
        await session.commit()
        base = (settings.public_url or str(request.base_url)).rstrip("/") + prefix
        response.headers["Location"] = f"{base}/hub/{sub_id}"
        answer = _subscription_json(sub)
        if generated:
            answer["secret"] = secret  # this once: the hub keeps it sealed only
        return answer

    @router.get(
        "/hub/{subscription_id}", summary="Read an event subscription", name=f"get_hub_{domain}"
    )
    async def get_subscription(
        caller: Reader, subscription_id: str, session: SessionDep
    ) -> dict[str, Any]:
        return _subscription_json(await visible(session, subscription_id, caller))

    @router.delete(
        "/hub/{subscription_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary="End an event subscription",
        name=f"delete_hub_{domain}",
    )
    async def unsubscribe(
        caller: Writer, subscription_id: str, session: SessionDep, temporal: TemporalDep
    ) -> Response:
        sub = await visible(session, subscription_id, caller)
        sub.status = SubscriptionStatus.ENDED
        sub.ended_reason = f"deleted by {caller.subject}"
        sub.ended_at = utcnow()
        session.add(sub)
        await session.commit()
        # Its relay ends at its next turn; a poke makes that now.
        with contextlib.suppress(RPCError, RPCTimeoutOrCancelledError):
            await temporal.get_workflow_handle(subscription_workflow_id(sub.id)).signal(
                POKE, rpc_timeout=timedelta(seconds=5)
            )
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get(
        "/hub/{subscription_id}/deliveries",
        summary="The subscription's delivery log, newest first",
        name=f"deliveries_{domain}",
    )
    async def deliveries(
        caller: Reader,
        subscription_id: str,
        response: Response,
        session: SessionDep,
        status: str | None = Query(default=None, description="pending, delivered, dead, ..."),
        offset: Offset = 0,
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> list[dict[str, Any]]:
        sub = await visible(session, subscription_id, caller)
        one_of("status", status, DeliveryStatus)
        conditions: list[Any] = [EventDelivery.subscription_id == sub.id]
        if status is not None:
            conditions.append(EventDelivery.status == status)
        rows = await page(
            session,
            EventDelivery,
            conditions,
            [col(EventDelivery.id).desc()],
            offset=offset,
            limit=limit,
            response=response,
        )
        return [_delivery_json(row) for row in rows]

    @router.post(
        "/hub/{subscription_id}/deliveries/{delivery_id}/replay",
        summary="Send a dead-lettered delivery again (the same eventId)",
        name=f"replay_{domain}",
    )
    async def replay(
        caller: Writer,
        subscription_id: str,
        delivery_id: int,
        body: ReplayBody,
        session: SessionDep,
        temporal: TemporalDep,
    ) -> dict[str, Any]:
        sub = await visible(session, subscription_id, caller)
        delivery = await session.get(EventDelivery, delivery_id)
        if delivery is None or delivery.subscription_id != sub.id:
            raise ApiError(404, f"no delivery {delivery_id} of this subscription")
        if delivery.status != DeliveryStatus.DEAD:
            raise ApiError(409, f"delivery {delivery_id} is {delivery.status}, not dead")
        result = await replay_delivery(
            temporal, sub.id, delivery_id, decided_by=caller.subject, reason=body.reason
        )
        return {"accepted": True, "deliveryId": result.delivery_id, "eventId": result.event_id}

    @router.post(
        "/hub/{subscription_id}/rotateSecret",
        summary="A new signing secret (answered once); the previous one signs beside it",
        name=f"rotate_{domain}",
    )
    async def rotate(
        caller: Writer, subscription_id: str, session: SessionDep, settings: SettingsDep
    ) -> dict[str, Any]:
        sub = await visible(session, subscription_id, caller)
        secret = webhooks.new_secret()
        sub.secrets_sealed = [_seal(settings, secret, sub.id), *sub.secrets_sealed][:MAX_SECRETS]
        session.add(sub)
        await session.commit()
        return {**_subscription_json(sub), "secret": secret}

    return router


async def replay_delivery(
    temporal: Any, subscription_id: str, delivery_id: int, *, decided_by: str, reason: str | None
) -> ReplayResult:
    """Ask the subscription's relay to replay a dead delivery; 409 if it refuses."""
    handle = temporal.get_workflow_handle(subscription_workflow_id(subscription_id))
    try:
        result: ReplayResult = await handle.execute_update(
            EventSubscriptionRelay.replay,
            ReplayInput(subscription_id, delivery_id, decided_by=decided_by, reason=reason),
            rpc_timeout=timedelta(seconds=10),
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = getattr(getattr(cause, "cause", None), "message", None) or getattr(
            cause, "message", None
        )
        raise ApiError(409, f"replay refused: {message or exc}") from exc
    except (RPCError, RPCTimeoutOrCancelledError) as exc:
        if (unreachable := temporal_unreachable(exc)) is not None:
            raise unreachable from exc
        raise ApiError(409, "replay refused: the subscription's relay is not running") from exc
    return result


service_ordering_router = hub_router(
    "/tmf-api/serviceOrdering/v4", Domain.SERVICE_ORDERING, "TMF641 Service Ordering"
)
party_role_router = hub_router(
    "/tmf-api/partyRoleManagement/v4", Domain.PARTY_ROLE, "TMF669 Party Role Management"
)
regulatory_reporting_router = hub_router(
    "/regulatoryReports", Domain.REGULATORY_REPORTING, "Regulatory reports"
)
