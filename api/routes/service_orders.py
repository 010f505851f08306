"""TMF641 Service Ordering: ``/tmf-api/serviceOrdering/v4``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.deps import SessionDep, SettingsDep, TemporalDep, require_scope
from api.errors import ApiError, temporal_unreachable
from api.inbound import CheckedRoute
from api.listing import Offset, one_of, page
from api.tmf641 import (
    CancelServiceOrderCreate,
    ServiceOrderCreate,
    customer_of,
    order_items,
    redacted,
)
from hub.models import (
    CancelServiceOrder,
    CancelState,
    OrderState,
    ServiceOrder,
    ServiceOrderItem,
)
from hub.permissions import Scope
from workflows.service_activation import CONTRACT as ORDER_PROCESS
from workflows.service_activation import (
    CancelRequest,
    ServiceActivation,
    ServiceActivationInput,
)

PREFIX = "/tmf-api/serviceOrdering/v4"
router = APIRouter(prefix=PREFIX, tags=["TMF641 Service Ordering"], route_class=CheckedRoute)
READ = [Depends(require_scope(Scope.ORDERS_READ))]
WRITE = [Depends(require_scope(Scope.ORDERS_WRITE))]


def _base_url(request: Request, public_url: str) -> str:
    return (public_url or str(request.base_url)).rstrip("/") + PREFIX


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _order_json(order: ServiceOrder, items: list[ServiceOrderItem], base: str) -> dict[str, Any]:
    states = {item.item_id: item.state for item in items}
    document = order.document
    body: dict[str, Any] = {
        **{k: v for k, v in document.items() if k not in ("serviceOrderItem",)},
        "@type": "ServiceOrder",
        "id": order.id,
        "href": f"{base}/serviceOrder/{order.id}",
        "externalId": order.external_id,
        "state": order.state,
        "orderDate": _iso(order.order_date),
        "completionDate": _iso(order.completion_date),
        "serviceOrderItem": [
            {**item, "state": states.get(item["id"], order.state)}
            for item in document.get("serviceOrderItem", [])
        ],
    }
    if order.error_message:
        body["errorMessage"] = [
            {
                "@type": "ServiceOrderErrorMessage",
                "code": "processFailed"
                if order.state == OrderState.FAILED
                else "compensationFailed",
                "reason": f"order {order.state}",
                "message": order.error_message,
                "status": order.state,
                "timestamp": _iso(order.completion_date or order.updated_at),
            }
        ]
    return body


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


async def _existing(session: AsyncSession, external_id: str) -> ServiceOrder | None:
    return (
        await session.exec(select(ServiceOrder).where(ServiceOrder.external_id == external_id))
    ).first()


@router.post(
    "/serviceOrder",
    status_code=status.HTTP_201_CREATED,
    summary="Create a service order and start its workflow",
    dependencies=WRITE,
)
async def create_service_order(
    body: ServiceOrderCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    base = _base_url(request, settings.public_url)
    customer = customer_of(body)
    items = order_items(body, sealer=settings.sealer())
    if body.externalId and (existing := await _existing(session, body.externalId)):
        response.status_code = status.HTTP_200_OK
        return _order_json(existing, (await _items_of(session, [existing.id]))[existing.id], base)

    order_id = uuid.uuid4().hex
    document = redacted(body.model_dump(mode="json", by_alias=True, exclude_none=True))
    order = ServiceOrder(
        id=order_id,
        external_id=body.externalId,
        customer_id=customer.id,
        workflow_id=ORDER_PROCESS.workflow_id(order_id),
        document=document,
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
        if body.externalId and (existing := await _existing(session, body.externalId)):
            response.status_code = status.HTTP_200_OK
            return _order_json(
                existing, (await _items_of(session, [existing.id]))[existing.id], base
            )
        raise
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
    response.headers["Location"] = f"{base}/serviceOrder/{order_id}"
    return _order_json(order, rows, base)


@router.get("/serviceOrder", summary="List service orders", dependencies=READ)
async def list_service_orders(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    state: str | None = Query(default=None, description="Only orders in this state"),
    externalId: str | None = Query(default=None, description="Only the order with this externalId"),
    offset: Offset = 0,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    one_of("state", state, OrderState)
    conditions = []
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
    return [_order_json(order, items[order.id], base) for order in orders]


async def _order_or_404(session: AsyncSession, order_id: str) -> ServiceOrder:
    order = await session.get(ServiceOrder, order_id)
    if order is None:
        raise ApiError(404, f"no service order with id {order_id!r}")
    return order


@router.get("/serviceOrder/{order_id}", summary="Read one service order", dependencies=READ)
async def get_service_order(
    order_id: str, request: Request, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    order = await _order_or_404(session, order_id)
    items = await _items_of(session, [order.id])
    return _order_json(order, items[order.id], _base_url(request, settings.public_url))


def _cancel_json(cancel: CancelServiceOrder, base: str) -> dict[str, Any]:
    return {
        "@type": "CancelServiceOrder",
        "id": cancel.id,
        "href": f"{base}/cancelServiceOrder/{cancel.id}",
        "state": cancel.state,
        "cancellationReason": cancel.cancellation_reason,
        "requestedCancellationDate": _iso(cancel.requested_at),
        "effectiveCancellationDate": _iso(cancel.effective_at),
        "errorMessage": cancel.error_message,
        "serviceOrder": {"id": cancel.order_id, "href": f"{base}/serviceOrder/{cancel.order_id}"},
    }


@router.post(
    "/cancelServiceOrder",
    status_code=status.HTTP_201_CREATED,
    summary="Cancel a service order that has not completed",
    dependencies=WRITE,
)
async def cancel_service_order(
    body: CancelServiceOrderCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    base = _base_url(request, settings.public_url)
    order = await _order_or_404(session, body.serviceOrder.id)
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
            col(CancelServiceOrder.state) == CancelState.ACKNOWLEDGED,
        )
        .values(state=CancelState.IN_PROGRESS)
    )
    await session.commit()
    await session.refresh(cancel)
    response.headers["Location"] = f"{base}/cancelServiceOrder/{cancel.id}"
    return _cancel_json(cancel, base)


@router.get(
    "/cancelServiceOrder/{cancel_id}", summary="Read one cancellation request", dependencies=READ
)
async def get_cancel_service_order(
    cancel_id: str, request: Request, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    cancel = await session.get(CancelServiceOrder, cancel_id)
    if cancel is None:
        raise ApiError(404, f"no cancelServiceOrder with id {cancel_id!r}")
    return _cancel_json(cancel, _base_url(request, settings.public_url))
