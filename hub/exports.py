"""What the hub exports, in which formats, and where it may write: shared by the export API,
workflow and activities. The rules every file location follows are :mod:`hub.paths`'s.

An *export* is a named, scheduled copy of one dataset to one destination in one format. Each
run writes the rows that changed since the export's stored watermark, partitioned by date, and
a manifest; see ``README.md`` (Exports) for the layout a consumer reads.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

from hub.paths import check_location, parse_location

#: Schedule ids of exports are ``export-<export id>``, so they never collide with other
#: schedules in the namespace (a daily reconciliation, for instance).
SCHEDULE_PREFIX = "export-"
#: The export id: what the watermark, the runs and the schedule are keyed by.
EXPORT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")


class ExportDataset(StrEnum):
    """The hub data an export can copy (see :mod:`hub.datasets` for rows and columns)."""

    ORDERS = "orders"
    ORDER_STATE_CHANGES = "order_state_changes"
    DEAD_LETTERS = "dead_letters"
    RECONCILIATION_SUMMARIES = "reconciliation_summaries"
    RECONCILIATION_DISCREPANCIES = "reconciliation_discrepancies"
    SUBSCRIBER_INVENTORY = "subscriber_inventory"
    INVENTORY_DIFFERENCES = "inventory_differences"
    REGULATORY_SUBMISSIONS = "regulatory_submissions"


class ExportFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"
    XML = "xml"


class ExportRunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


def allowed_roots(configured: list[str], data_dir: Path) -> list[str]:
    """The locations exports may write under: the configured ones (a root the hub cannot use
    refuses every destination, naming the setting), or else the ``exports`` folder of the data
    directory; :func:`check_destination` decodes and resolves them."""
    if configured:
        return list(configured)
    return [parse_location(str((data_dir / "exports").resolve())).uri]


def check_destination(uri: str, roots: list[str]) -> str:
    """The destination as the worker will open it (see :mod:`hub.paths`), or
    :class:`~hub.paths.LocationRefused` unless it lies under one of ``roots``: no caller may
    make the worker write anywhere it can."""
    location = check_location(
        uri, roots, what="an allowed destination", setting="HUB_EXPORT_DESTINATIONS"
    )
    return location.uri
