"""The hub's datasets: what each one reads from the hub database, with its Arrow schema.

The export activities copy them to files; a process that computes from hub data (regulatory
reporting, for one) reads them the same way, without an activity in sight. Each dataset hands
out the rows whose change time lies in a :class:`Window` ``(after, until]``, in order of the date
partition they belong to, a batch at a time (see :mod:`hub.datasets.base`).

Datasets (one row per...; change time; partition date):

=============================  ===========================================  ====================
``orders``                     order item, with its order's columns         ``updated_at``
``order_state_changes``        state change of an order or item             ``at``
``dead_letters``               dead letter, in its latest state             last change
``reconciliation_summaries``   completed reconciliation run and category    ``finished_at`` (*)
``reconciliation_discrepancies`` row of a completed run's discrepancy file  ``finished_at`` (*)
``subscriber_inventory``       subscriber change (completed order item)     ``completion_date``
``inventory_differences``      row of a completed audit's differences file  ``finished_at``
``regulatory_submissions``     submitted version of a regulatory report     ``updated_at``
=============================  ===========================================  ====================

(*) partitioned by the run's period date instead: analysts read reconciliations by period.
"""

from __future__ import annotations

from hub.datasets.base import (
    AMOUNT,
    TIMESTAMP,
    Chunk,
    Dataset,
    ParquetSource,
    QueryDataset,
    Window,
    split_by_date,
)
from hub.datasets.dead_letters import DEAD_LETTERS
from hub.datasets.inventory import SubscriberInventory
from hub.datasets.inventory_audits import InventoryDifferences
from hub.datasets.orders import ORDER_STATE_CHANGES, ORDERS
from hub.datasets.reconciliation import RECONCILIATION_SUMMARIES, DiscrepancyDataset
from hub.datasets.regulatory import REGULATORY_SUBMISSIONS

DATASETS: dict[str, Dataset] = {
    dataset.name.value: dataset
    for dataset in (
        ORDERS,
        ORDER_STATE_CHANGES,
        DEAD_LETTERS,
        RECONCILIATION_SUMMARIES,
        DiscrepancyDataset(),
        SubscriberInventory(),
        InventoryDifferences(),
        REGULATORY_SUBMISSIONS,
    )
}

__all__ = [
    "AMOUNT",
    "DATASETS",
    "DEAD_LETTERS",
    "ORDERS",
    "ORDER_STATE_CHANGES",
    "RECONCILIATION_SUMMARIES",
    "REGULATORY_SUBMISSIONS",
    "TIMESTAMP",
    "Chunk",
    "Dataset",
    "DiscrepancyDataset",
    "InventoryDifferences",
    "ParquetSource",
    "QueryDataset",
    "SubscriberInventory",
    "Window",
    "split_by_date",
]
