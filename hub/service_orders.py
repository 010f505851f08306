"""The TMF641 representation of a service order and of a cancellation request.

What ``GET /serviceOrder/{id}`` answers and what the hub's events carry
(``event.serviceOrder``) is built here, once, from the hub database's rows: the API's routes
and the outbox (:mod:`hub.events.outbox`) both use it, so an event shows the order exactly as
the API would at that moment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.models import CancelServiceOrder, OrderState, ServiceOrder, ServiceOrderItem

PREFIX = "/tmf-api/serviceOrdering/v4"


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def order_json(order: ServiceOrder, items: list[ServiceOrderItem], base: str) -> dict[str, Any]:
    """The order as TMF641 ``ServiceOrder``; ``base``: the API's URL up to ``PREFIX``."""
    states = {item.item_id: item.state for item in items}
    document = order.document
    body: dict[str, Any] = {
        **{k: v for k, v in document.items() if k not in ("serviceOrderItem",)},
        "@type": "ServiceOrder",
        "id": order.id,
        "href": f"{base}/serviceOrder/{order.id}",
        "externalId": order.external_id,
        "state": order.state,
        "orderDate": iso(order.order_date),
        "completionDate": iso(order.completion_date),
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
                "timestamp": iso(order.completion_date or order.updated_at),
            }
        ]
    return body


def cancel_json(cancel: CancelServiceOrder, base: str) -> dict[str, Any]:
    """The cancellation as TMF641 ``CancelServiceOrder``."""
    return {
        "@type": "CancelServiceOrder",
        "id": cancel.id,
        "href": f"{base}/cancelServiceOrder/{cancel.id}",
        "state": cancel.state,
        "cancellationReason": cancel.cancellation_reason,
        "requestedCancellationDate": iso(cancel.requested_at),
        "effectiveCancellationDate": iso(cancel.effective_at),
        "errorMessage": cancel.error_message,
        "serviceOrder": {"id": cancel.order_id, "href": f"{base}/serviceOrder/{cancel.order_id}"},
    }
