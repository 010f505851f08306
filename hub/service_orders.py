"""The TMF641 representation of a service order and of a cancellation request.

What ``GET /serviceOrder/{id}`` answers and what the hub's events carry
(``event.serviceOrder``) is built here, once, from the hub database's rows: the API's routes
and the outbox (:mod:`hub.events.outbox`) both use it, so an event shows the order exactly as
the API would at that moment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hub.models import CancelServiceOrder, OrderState, ServiceOrder, ServiceOrderItem

PREFIX = "/tmf-api/serviceOrdering/v4"

#: What TMF641 v4.0.0's ``ServiceOrder_Create`` skips (the server sets them): not kept from a
#: create body, so an answer never echoes a client's ``state`` or ``startDate``.
SERVER_SET = frozenset(
    {"id", "href", "orderDate", "completionDate", "expectedCompletionDate", "startDate", "state"}
)
#: ``@referredType`` by related party role, where the order gives none (lower-cased roles):
#: TMF641's RelatedParty requires it. A customer is a TMF629 Customer, a partner an
#: Organization (TMF632).
REFERRED_TYPES = {"customer": "Customer", "wholesalepartner": "Organization"}


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def related_party_json(party: Mapping[str, Any]) -> dict[str, Any]:
    """A related party as TMF641's RelatedParty requires it: ``@type`` and ``@referredType``
    filled where the order did not give them."""
    role = str(party.get("role") or "").lower()
    return {
        "@type": "RelatedParty",
        "@referredType": REFERRED_TYPES.get(role, "Party"),
        **party,
    }


def _item_json(item: dict[str, Any], state: str) -> dict[str, Any]:
    service = dict(item.get("service") or {})
    spec = service.get("serviceSpecification")
    if isinstance(spec, dict) and "id" not in spec and spec.get("name"):
        # TMF641's ServiceSpecificationRef requires an id: the hub's specifications are named
        # by their id (mobile-4g5g).
        service["serviceSpecification"] = {"id": spec["name"], **spec}
    return {**item, "service": service, "state": state}


def _error_message(order: ServiceOrder) -> dict[str, Any]:
    if order.state == OrderState.HELD:
        code, reason = "held", "a step waits for an operator (a dead letter)"
    elif order.state == OrderState.CANCELLED:
        code, reason = "compensationFailed", f"order {order.state}"
    else:
        code, reason = "processFailed", f"order {order.state}"
    return {
        "@type": "ServiceOrderErrorMessage",
        "code": code,
        "reason": reason,
        "message": order.error_message,
        "status": order.state,
        "timestamp": iso(order.completion_date or order.updated_at),
    }


def order_json(order: ServiceOrder, items: list[ServiceOrderItem], base: str) -> dict[str, Any]:
    """The order as TMF641 ``ServiceOrder``; ``base``: the API's URL up to ``PREFIX``. An
    attribute without a value is left out (the spec types none of them as nullable)."""
    states = {item.item_id: item.state for item in items}
    document = order.document
    body: dict[str, Any] = {
        **{
            k: v
            for k, v in document.items()
            if k not in SERVER_SET and k not in ("serviceOrderItem", "relatedParty")
        },
        "@type": "ServiceOrder",
        "id": order.id,
        "href": f"{base}/serviceOrder/{order.id}",
        "state": order.state,
        "orderDate": iso(order.order_date),
    }
    if order.external_id is not None:
        body["externalId"] = order.external_id
    if order.completion_date is not None:
        body["completionDate"] = iso(order.completion_date)
    if "relatedParty" in document:
        body["relatedParty"] = [related_party_json(p) for p in document["relatedParty"]]
    body["serviceOrderItem"] = [
        _item_json(item, states.get(item["id"], order.state))
        for item in document.get("serviceOrderItem", [])
    ]
    if order.error_message:
        body["errorMessage"] = [_error_message(order)]
    return body


def cancel_json(cancel: CancelServiceOrder, base: str) -> dict[str, Any]:
    """The cancellation as TMF641 ``CancelServiceOrder``."""
    body: dict[str, Any] = {
        "@type": "CancelServiceOrder",
        "id": cancel.id,
        "href": f"{base}/cancelServiceOrder/{cancel.id}",
        "state": cancel.state,
        "requestedCancellationDate": iso(cancel.requested_at),
        "serviceOrder": {
            "@referredType": "ServiceOrder",
            "id": cancel.order_id,
            "href": f"{base}/serviceOrder/{cancel.order_id}",
        },
    }
    if cancel.cancellation_reason is not None:
        body["cancellationReason"] = cancel.cancellation_reason
    if cancel.effective_at is not None:
        body["effectiveCancellationDate"] = iso(cancel.effective_at)
    if cancel.error_message is not None:
        body["errorMessage"] = [
            {
                "@type": "ErrorMessage",
                "code": "notCancelled",
                "reason": f"cancellation {cancel.state}",
                "message": cancel.error_message,
                "status": cancel.state,
                "timestamp": iso(cancel.effective_at or cancel.requested_at),
            }
        ]
    return body
