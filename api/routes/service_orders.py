"""TMF641 Service Ordering: ``/tmf-api/serviceOrdering/v4``.

A wholesale partner's token (a :class:`~api.deps.Principal` with a ``partner_id``) sees only
the orders it placed: another's order, or one the operator placed, is a 404 wherever it is
named (read, cancel, a cancellation), and lists hold its own only. The partner is recorded on
the order (``partner_id``) and in it, as the ``wholesalePartner`` related party. API keys and
operators' tokens see every order.

Answers hold to TMF641 v4.0.0 (``contracts/tmf641/``, the README's conformance table): an
attribute without a value is left out, never ``null``; ``fields=`` selects first-level
attributes (``id`` and ``href`` always come); related parties carry ``@type`` and
``@referredType``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy import Text, cast, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.deps import Principal, SessionDep, SettingsDep, TemporalDep, require_scope
from api.errors import ApiError, temporal_unreachable
from api.inbound import CheckedRoute
from api.listing import Offset, one_of, page
from api.tmf641 import (
    CANCEL_SERVICE_ORDER_ATTRIBUTES,
    SERVICE_ORDER_ATTRIBUTES,
    CancelServiceOrderCreate,
    ServiceOrderCreate,
    body_digest,
    customer_of,
    order_items,
    redacted,
    same_body,
    select_attributes,
    selected_fields,
    with_partner,
)
from hub.errors import ValidationFailure
from hub.events import relay
from hub.events.envelopes import Event, EventType
from hub.events.outbox import add_event, add_order_event
from hub.models import (
    CancelServiceOrder,
    CancelState,
    OrderState,
    ServiceOrder,
    ServiceOrderItem,
)
from hub.permissions import Scope
from hub.service_orders import PREFIX, SERVER_SET
from hub.service_orders import cancel_json as _cancel_json
from hub.service_orders import order_json as _order_json
from hub.settings import Settings
from workflows.service_activation import CONTRACT as ORDER_PROCESS
from workflows.service_activation import (
    CancelRequest,
    ServiceActivation,
    ServiceActivationInput,
    ServiceItem,
)

router = APIRouter(prefix=PREFIX, tags=["TMF641 Service Ordering"], route_class=CheckedRoute)
#: Who reads or writes orders; declared first in each handler, so a 403 comes before any work.
Reader = Annotated[Principal, Depends(require_scope(Scope.ORDERS_READ))]
Writer = Annotated[Principal, Depends(require_scope(Scope.ORDERS_WRITE))]


def _visible(order: ServiceOrder, caller: Principal) -> bool:
    """A partner sees its own orders only; everybody else sees every order."""
    return caller.partner_id is None or order.partner_id == caller.partner_id


def _base_url(request: Request, public_url: str) -> str:
    return (public_url or str(request.base_url)).rstrip("/") + PREFIX


#: A ``fields=`` query parameter (TMF630 attribute selection).
Fields = Annotated[
    str | None,
    Query(
        description="Comma-separated first-level attributes to answer with (id and href "
        "always come); an attribute the resource does not have is a 400"
    ),
]


async def _items_of(
    session: AsyncSession, order_ids: list[str]
) -> dict[str, list[ServiceOrderItem]]:
    rows = await session.exec(
        select(ServiceOrderItem).where(col(ServiceOrderItem.order_id).in_(order_ids))
    )
    grouped: dict[str, list[ServiceOrderItem]] = {order_id: [] for order_id in order_ids}
    for row in rows:
        grouped[row.order_id].append(row)
    return grouped


async def _check_partner_owns(
    session: AsyncSession, partner_id: str, items: list[ServiceItem]
) -> None:
    """A partner modifies or deletes only subscribers it holds now: the last completed order
    that touched the IMSI (any party's) is the partner's, and did not delete it. Another
    party's subscriber is, to it, one that does not exist (400, nothing started)."""
    for index, item in enumerate(items):
        if item.action == "add":
            continue
        holder = await _current_holder(session, item.service.imsi)
        if holder is None or holder != (partner_id, True):
            raise ValidationFailure(
                f"serviceOrderItem[{index}].service.serviceCharacteristic[imsi]",
                "no subscriber with this IMSI is held by your orders",
            )


async def _current_holder(session: AsyncSession, imsi: str) -> tuple[str | None, bool] | None:
    """Who holds ``imsi`` now, by the last completed order that touched it: (its partner,
    whether it still exists), or None if no completed order did."""
    rows = await session.exec(
        select(ServiceOrder.partner_id, ServiceOrder.document)
        .where(
            ServiceOrder.state == OrderState.COMPLETED,
            cast(col(ServiceOrder.document), Text).contains(imsi),
        )
        .order_by(col(ServiceOrder.completion_date).desc())
    )
    for partner_id, document in rows:
        for item in document.get("serviceOrderItem", []):
            service = item.get("service") or {}
            values = {
                c.get("name"): c.get("value") for c in service.get("serviceCharacteristic") or []
            }
            if str(values.get("imsi")) == imsi:
                return partner_id, item.get("action") != "delete"
    return None


async def _existing(
    session: AsyncSession, body: ServiceOrderCreate, caller: Principal
) -> ServiceOrder | None:
    """The order placed before under ``body.externalId``: a retried POST (the same body)
    answers it. An ``externalId`` is unique across the hub: one that another party's order
    holds is a 409 for a partner, which learns nothing of that order; one of the caller's own
    orders with another body is a 409 naming that order."""
    order = (
        await session.exec(select(ServiceOrder).where(ServiceOrder.external_id == body.externalId))
    ).first()
    if order is not None and not _visible(order, caller):
        raise ApiError(409, "externalId: already used; give each order an externalId of its own")
    if order is not None and not same_body(order.body_hash, body):
        raise ApiError(
            409,
            f"externalId: {body.externalId!r} is service order {order.id}'s, which was placed "
            "with another body; post that body again to read it, or give this order an "
            "externalId of its own",
        )
    return order


@dataclass
class PlacedOrder:
    """What :func:`place_service_order` did: the order as TMF641 shows it, and whether it is
    new (False: one placed before under the same ``externalId``)."""

    order: dict[str, Any]
    created: bool


@router.post(
    "/serviceOrder",
    status_code=status.HTTP_201_CREATED,
    summary="Create a service order and start its workflow",
)
async def create_service_order(
    caller: Writer,
    body: ServiceOrderCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    base = _base_url(request, settings.public_url)
    placed = await place_service_order(caller, body, session, temporal, settings, base)
    if placed.created:
        response.headers["Location"] = placed.order["href"]
    else:
        response.status_code = status.HTTP_200_OK
    return placed.order


async def place_service_order(
    caller: Principal,
    body: ServiceOrderCreate,
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
    base: str,
) -> PlacedOrder:
    """Validate ``body``, record the order and start its workflow, as ``caller``: the one
    way orders are placed, by ``POST /serviceOrder`` and by the brokers' intake
    (:mod:`api.intake`). A second order under the same ``externalId`` answers the first.
    Raises :class:`ValidationFailure` or :class:`ApiError` (a 4xx: refused; a 503: try again;
    a 409: that ``externalId`` names an order with another body).
    """
    received = body
    if caller.partner_id is not None:
        body = with_partner(body, caller.partner_id)
    customer = customer_of(body)
    items = order_items(body, sealer=settings.sealer())
    if caller.partner_id is not None:
        await _check_partner_owns(session, caller.partner_id, items)
    if body.externalId and (existing := await _existing(session, received, caller)):
        items_of = await _items_of(session, [existing.id])
        return PlacedOrder(_order_json(existing, items_of[existing.id], base), created=False)

    order_id = uuid.uuid4().hex
    document = redacted(body.model_dump(mode="json", by_alias=True, exclude_none=True))
    for server_set in SERVER_SET:
        document.pop(server_set, None)
    order = ServiceOrder(
        id=order_id,
        external_id=body.externalId,
        customer_id=customer.id,
        partner_id=caller.partner_id,
        workflow_id=ORDER_PROCESS.workflow_id(order_id),
        document=document,
        body_hash=body_digest(received),
    )
    session.add(order)
    rows = [ServiceOrderItem(order_id=order_id, item_id=i.id, action=i.action) for i in items]
    session.add_all(rows)
    try:
        # Flush first: a concurrent order with the same externalId fails here, before any
        # workflow starts. The row lock is held until commit, after the start.
        await session.flush()
    except IntegrityError:
        await session.rollback()
        if body.externalId and (existing := await _existing(session, received, caller)):
            items_of = await _items_of(session, [existing.id])
            return PlacedOrder(_order_json(existing, items_of[existing.id], base), created=False)
        raise
    # In the order's own transaction: committed with it, or not at all (the outbox).
    await add_order_event(
        session,
        order,
        EventType.SERVICE_ORDER_CREATE,
        f"service order {order_id} was received",
        public_url=settings.resolved_events_public_url,
        items=rows,
    )
    relay_input = relay.relay_of(settings)
    listening = await relay.listened(session, relay_input)
    try:
        await ORDER_PROCESS.start(
            temporal,
            ServiceActivationInput(
                order_id=order_id, customer=customer, items=items, external_id=body.externalId
            ),
            order_id,
            task_queue=settings.task_queue,
            # The API died after starting it, before committing: the row's retry finds it.
            use_existing=True,
        )
    except (RPCError, RPCTimeoutOrCancelledError) as exc:
        await session.rollback()
        refused = exc.status.name if isinstance(exc, RPCError) else type(exc).__name__
        raise temporal_unreachable(exc) or ApiError(
            503, f"the order was not accepted: Temporal refused it ({refused})"
        ) from exc
    await session.commit()
    if listening:
        relay.poke_soon(temporal, relay_input)
    return PlacedOrder(_order_json(order, rows, base), created=True)


@router.get("/serviceOrder", summary="List service orders")
async def list_service_orders(
    caller: Reader,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    state: str | None = Query(default=None, description="Only orders in this state"),
    externalId: str | None = Query(default=None, description="Only the order with this externalId"),
    offset: Offset = 0,
    limit: int = Query(default=100, ge=1, le=1000),
    fields: Fields = None,
) -> list[dict[str, Any]]:
    one_of("state", state, OrderState)
    wanted = selected_fields(fields, SERVICE_ORDER_ATTRIBUTES)
    conditions = []
    if caller.partner_id is not None:
        conditions.append(ServiceOrder.partner_id == caller.partner_id)
    if state is not None:
        conditions.append(ServiceOrder.state == state)
    if externalId is not None:
        conditions.append(ServiceOrder.external_id == externalId)
    orders = await page(
        session,
        ServiceOrder,
        conditions,
        [col(ServiceOrder.order_date).desc(), col(ServiceOrder.id)],
        offset=offset,
        limit=limit,
        response=response,
    )
    items = await _items_of(session, [order.id for order in orders])
    base = _base_url(request, settings.public_url)
    return [
        select_attributes(_order_json(order, items[order.id], base), wanted) for order in orders
    ]


async def _order_or_404(session: AsyncSession, order_id: str, caller: Principal) -> ServiceOrder:
    """The order, if ``caller`` may see it; the same 404 whether it does not exist or is
    another's, so a partner cannot tell the two apart."""
    order = await session.get(ServiceOrder, order_id)
    if order is None or not _visible(order, caller):
        raise ApiError(404, f"no service order with id {order_id!r}")
    return order


@router.get("/serviceOrder/{order_id}", summary="Read one service order")
async def get_service_order(
    caller: Reader,
    order_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    fields: Fields = None,
) -> dict[str, Any]:
    wanted = selected_fields(fields, SERVICE_ORDER_ATTRIBUTES)
    order = await _order_or_404(session, order_id, caller)
    items = await _items_of(session, [order.id])
    body = _order_json(order, items[order.id], _base_url(request, settings.public_url))
    return select_attributes(body, wanted)


@router.post(
    "/cancelServiceOrder",
    status_code=status.HTTP_201_CREATED,
    summary="Cancel a service order that has not completed",
)
async def cancel_service_order(
    caller: Writer,
    body: CancelServiceOrderCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    base = _base_url(request, settings.public_url)
    order = await _order_or_404(session, body.serviceOrder.id, caller)
    existing = (
        await session.exec(
            select(CancelServiceOrder).where(CancelServiceOrder.order_id == order.id)
        )
    ).first()
    if existing is not None:
        response.status_code = status.HTTP_200_OK
        return _cancel_json(existing, base)
    if OrderState(order.state).is_final:
        raise ApiError(
            409, f"the order is already {order.state}; only an open order can be cancelled"
        )
    # The request is stored before the workflow hears of it, so the workflow's final write
    # always finds it and closes it.
    cancel = CancelServiceOrder(
        id=uuid.uuid4().hex, order_id=order.id, cancellation_reason=body.cancellationReason
    )
    session.add(cancel)
    try:
        await session.commit()
    except IntegrityError:  # a concurrent cancel of the same order won
        await session.rollback()
        response.status_code = status.HTTP_200_OK
        winner = (
            await session.exec(
                select(CancelServiceOrder).where(CancelServiceOrder.order_id == order.id)
            )
        ).one()
        return _cancel_json(winner, base)
    handle = temporal.get_workflow_handle(order.workflow_id)
    try:
        await handle.execute_update(
            ServiceActivation.cancel,
            CancelRequest(reason=body.cancellationReason),
            rpc_timeout=timedelta(seconds=10),
        )
    except (WorkflowUpdateFailedError, RPCError, RPCTimeoutOrCancelledError) as exc:
        await session.delete(cancel)
        await session.commit()
        if (unreachable := temporal_unreachable(exc)) is not None:
            raise unreachable from exc
        cause = getattr(exc, "cause", None)
        reason = getattr(cause, "message", None) or str(exc)
        raise ApiError(409, f"the order cannot be cancelled: {reason}") from exc
    await (await session.connection()).execute(
        update(CancelServiceOrder)
        .where(
            col(CancelServiceOrder.id) == cancel.id,
            col(CancelServiceOrder.state) == CancelState.ACCEPTED,
        )
        .values(state=CancelState.IN_PROGRESS)
    )
    await session.refresh(cancel)
    await add_event(
        session,
        Event(
            event_type=EventType.CANCEL_SERVICE_ORDER_CREATE,
            resource_id=cancel.id,
            resource=_cancel_json(cancel, settings.resolved_events_public_url + PREFIX),
            description=f"the cancellation of service order {order.id} was accepted",
            partner_id=order.partner_id,
            correlation_id=order.id,
        ),
    )
    try:
        await session.commit()
    except IntegrityError:
        # The order's end closed the cancellation at this moment and reported it first:
        # the state stands without the creation event rather than as a 500.
        await session.rollback()
    else:
        relay.poke_soon(temporal, relay.relay_of(settings))
    await session.refresh(cancel)
    response.headers["Location"] = f"{base}/cancelServiceOrder/{cancel.id}"
    return _cancel_json(cancel, base)


@router.get("/cancelServiceOrder", summary="List cancellation requests")
async def list_cancel_service_orders(
    caller: Reader,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    state: str | None = Query(default=None, description="Only requests in this state"),
    service_order_id: str | None = Query(
        default=None, alias="serviceOrder.id", description="Only the request of this order"
    ),
    offset: Offset = 0,
    limit: int = Query(default=100, ge=1, le=1000),
    fields: Fields = None,
) -> list[dict[str, Any]]:
    one_of("state", state, CancelState)
    wanted = selected_fields(fields, CANCEL_SERVICE_ORDER_ATTRIBUTES)
    conditions: list[Any] = []
    if caller.partner_id is not None:
        own = select(ServiceOrder.id).where(ServiceOrder.partner_id == caller.partner_id)
        conditions.append(col(CancelServiceOrder.order_id).in_(own))
    if state is not None:
        conditions.append(CancelServiceOrder.state == state)
    if service_order_id is not None:
        conditions.append(CancelServiceOrder.order_id == service_order_id)
    cancels = await page(
        session,
        CancelServiceOrder,
        conditions,
        [col(CancelServiceOrder.requested_at).desc(), col(CancelServiceOrder.id)],
        offset=offset,
        limit=limit,
        response=response,
    )
    base = _base_url(request, settings.public_url)
    return [select_attributes(_cancel_json(cancel, base), wanted) for cancel in cancels]


@router.get("/cancelServiceOrder/{cancel_id}", summary="Read one cancellation request")
async def get_cancel_service_order(
    caller: Reader,
    cancel_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    fields: Fields = None,
) -> dict[str, Any]:
    wanted = selected_fields(fields, CANCEL_SERVICE_ORDER_ATTRIBUTES)
    cancel = await session.get(CancelServiceOrder, cancel_id)
    order = await session.get(ServiceOrder, cancel.order_id) if cancel is not None else None
    if cancel is None or order is None or not _visible(order, caller):
        raise ApiError(404, f"no cancelServiceOrder with id {cancel_id!r}")
    return select_attributes(_cancel_json(cancel, _base_url(request, settings.public_url)), wanted)
