"""Orders as the hub records them: ``orders`` (one row per order item) and
``order_state_changes`` (one row per state change of an order or item)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from sqlalchemy import Select, select
from sqlmodel import col

from hub.datasets.base import TIMESTAMP, QueryDataset, Window, model_columns
from hub.exports import ExportDataset
from hub.models import OrderStateChange, ServiceOrder, ServiceOrderItem


def _orders_query(window: Window) -> Select[Any]:
    order, item = ServiceOrder, ServiceOrderItem
    return (
        select(
            *model_columns(
                order.id,
                order.external_id,
                order.state,
                order.customer_id,
                order.workflow_id,
                order.order_date,
                order.completion_date,
                order.error_message,
                order.updated_at,
                item.item_id,
                item.action,
                item.state,
            )
        )
        .select_from(order)
        .outerjoin(item, col(item.order_id) == col(order.id))
        .where(*window.where(col(order.updated_at)))
        .order_by(col(order.updated_at), col(order.id), col(item.item_id))
    )


ORDERS = QueryDataset(
    ExportDataset.ORDERS,
    pa.schema(
        [
            pa.field("order_id", pa.string(), nullable=False),
            pa.field("external_id", pa.string()),
            pa.field("state", pa.string(), nullable=False),
            pa.field("customer_id", pa.string()),
            pa.field("workflow_id", pa.string(), nullable=False),
            pa.field("order_date", TIMESTAMP, nullable=False),
            pa.field("completion_date", TIMESTAMP),
            pa.field("error_message", pa.string()),
            pa.field("updated_at", TIMESTAMP, nullable=False),
            pa.field("item_id", pa.string()),
            pa.field("item_action", pa.string()),
            pa.field("item_state", pa.string()),
        ]
    ),
    watermark="service_order.updated_at",
    partition="updated_at",
    partition_column="updated_at",
    query=_orders_query,
)


def _state_changes_query(window: Window) -> Select[Any]:
    change = OrderStateChange
    return (
        select(
            *model_columns(
                change.id,
                change.order_id,
                change.item_id,
                change.from_state,
                change.to_state,
                change.reason,
                change.at,
            )
        )
        .where(*window.where(col(change.at)))
        .order_by(col(change.at), col(change.id))
    )


ORDER_STATE_CHANGES = QueryDataset(
    ExportDataset.ORDER_STATE_CHANGES,
    pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("order_id", pa.string(), nullable=False),
            pa.field("item_id", pa.string()),
            pa.field("from_state", pa.string()),
            pa.field("to_state", pa.string(), nullable=False),
            pa.field("reason", pa.string()),
            pa.field("at", TIMESTAMP, nullable=False),
        ]
    ),
    watermark="order_state_change.at",
    partition="at",
    partition_column="at",
    query=_state_changes_query,
)
