"""``subscriber_inventory``: one row per subscriber change, from the hub's completed orders."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from sqlalchemy import Select, select
from sqlmodel import col

from hub.datasets.base import TIMESTAMP, QueryDataset, Window, model_columns
from hub.exports import ExportDataset
from hub.models import OrderState, ServiceOrder, ServiceOrderItem

#: The characteristics of a ``mobile-4g5g`` service that the inventory carries: named one by
#: one, so no key (Ki, OP, OPc), redacted or not, can ever reach an export.
_INVENTORY_CHARACTERISTICS = {
    "imsi": str,
    "msisdn": str,
    "plan": str,
    "qci": int,
    "ambrDownlink": int,
    "ambrUplink": int,
    "dataQuota": int,
    "arpPriority": int,
}


def _characteristics(document: dict[str, Any], item_id: str) -> tuple[dict[str, Any], str | None]:
    for item in document.get("serviceOrderItem") or []:
        if str(item.get("id")) == item_id:
            service = item.get("service") or {}
            values: dict[str, Any] = {}
            for characteristic in service.get("serviceCharacteristic") or []:
                name = characteristic.get("name")
                kind = _INVENTORY_CHARACTERISTICS.get(name)
                if kind is None:
                    continue
                try:
                    values[name] = kind(characteristic.get("value"))
                except (TypeError, ValueError):
                    values[name] = None
            specification = (service.get("serviceSpecification") or {}).get("name")
            return values, specification
    return {}, None


def _inventory_rows(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    records = []
    for order_id, customer_id, completed_at, document, item_id, action in rows:
        if isinstance(document, str):  # a driver that hands JSON back as text
            document = json.loads(document)
        values, specification = _characteristics(document or {}, item_id)
        records.append(
            (
                values.get("imsi"),
                values.get("msisdn"),
                customer_id,
                "terminated" if action == "delete" else "active",
                values.get("plan"),
                values.get("qci"),
                values.get("ambrDownlink"),
                values.get("ambrUplink"),
                values.get("dataQuota"),
                values.get("arpPriority"),
                specification,
                completed_at,
                order_id,
                item_id,
                action,
            )
        )
    return records


def _inventory_query(window: Window) -> Select[Any]:
    order, item = ServiceOrder, ServiceOrderItem
    return (
        select(
            *model_columns(
                order.id,
                order.customer_id,
                order.completion_date,
                order.document,
                item.item_id,
                item.action,
            )
        )
        .join(item, col(item.order_id) == col(order.id))
        .where(
            col(order.state) == OrderState.COMPLETED.value,
            col(item.state) == OrderState.COMPLETED.value,
            *window.where(col(order.completion_date)),
        )
        .order_by(col(order.completion_date), col(order.id), col(item.item_id))
    )


class SubscriberInventory(QueryDataset):
    """The subscriber inventory: one row per subscriber change.

    Its source is the hub's own record of completed orders, not the HSS, billing or the CRM. A
    subscriber is in the inventory once an order that added, modified or deleted it completed,
    which means every system (HSS, billing, CRM) carried it out: the inventory a user of the
    hub expects, consistent across the systems rather than one system's view of it. It also
    holds no keys (the hub never stores Ki, OP or OPc, and only the characteristics named in
    ``_INVENTORY_CHARACTERISTICS`` are read), costs the HSS and the fragile billing system no
    bulk scan, and has the change time an incremental export needs, which none of them offers.
    A subscriber appears again whenever a later order changes it (``status`` ``terminated``
    after a delete): the latest ``changed_at`` per ``imsi`` is its current state. Subscribers
    provisioned outside the hub are not in it.
    """

    def __init__(self) -> None:
        super().__init__(
            ExportDataset.SUBSCRIBER_INVENTORY,
            pa.schema(
                [
                    pa.field("imsi", pa.string()),
                    pa.field("msisdn", pa.string()),
                    pa.field("customer_id", pa.string()),
                    pa.field("status", pa.string(), nullable=False),
                    pa.field("plan", pa.string()),
                    pa.field("qci", pa.int32()),
                    pa.field("ambr_downlink", pa.int64()),
                    pa.field("ambr_uplink", pa.int64()),
                    pa.field("data_quota", pa.int64()),
                    pa.field("arp_priority", pa.int32()),
                    pa.field("service_specification", pa.string()),
                    pa.field("changed_at", TIMESTAMP, nullable=False),
                    pa.field("order_id", pa.string(), nullable=False),
                    pa.field("item_id", pa.string(), nullable=False),
                    pa.field("action", pa.string(), nullable=False),
                ]
            ),
            watermark="service_order.completion_date (completed orders)",
            partition="changed_at",
            partition_column="changed_at",
            query=_inventory_query,
            convert=_inventory_rows,
        )
