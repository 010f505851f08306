"""What the hub exports, in which formats, and where it may write: shared by the export API,
workflow, activities and the files adapter.

An *export* is a named, scheduled copy of one dataset to one destination in one format. Each
run writes the rows that changed since the export's stored watermark, partitioned by date, and
a manifest; see ``README.md`` (Exports) for the layout a consumer reads.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

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


class ExportFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"
    XML = "xml"


class ExportRunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


#: URI schemes ``pyarrow.fs`` opens; anything else is refused before a schedule exists.
DESTINATION_SCHEMES = frozenset({"file", "s3", "gs", "gcs", "abfs", "abfss", "hdfs"})
#: Query options of ``pyarrow.fs`` URIs that carry credentials: the worker takes those from its
#: environment (AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS...), never from a URI that
#: ends up in schedules, run records and API answers.
_CREDENTIAL_OPTIONS = frozenset(
    {"access_key", "secret_key", "session_token", "sas_token", "account_key", "client_secret"}
)


class DestinationRefused(ValueError):
    """A destination URI the hub will not write to; the message says why."""


def normalize_destination(uri: str) -> str:
    """The canonical form of a destination: ``file:///abs/path`` for a local folder (an
    absolute path is accepted too), ``scheme://bucket/prefix`` otherwise; no trailing slash."""
    uri = uri.strip()
    if uri.startswith("/"):
        uri = "file://" + uri
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme:
        raise DestinationRefused(
            "must be an absolute path or a URI (file://, s3://, gs://, abfs://, hdfs://)"
        )
    if scheme not in DESTINATION_SCHEMES:
        known = ", ".join(sorted(DESTINATION_SCHEMES))
        raise DestinationRefused(f"scheme {scheme!r} is not supported; one of {known}")
    if parts.username or parts.password:
        raise DestinationRefused("credentials do not belong in the URI; the worker reads them")
    if any(name.lower() in _CREDENTIAL_OPTIONS for name, _ in parse_qsl(parts.query)):
        raise DestinationRefused("credentials do not belong in the URI; the worker reads them")
    if parts.fragment:
        raise DestinationRefused("a URI fragment (#...) has no meaning here")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise DestinationRefused("a file:// URI names no host: file:///absolute/path")
        path = os.path.normpath(parts.path or "/")
        if not path.startswith("/"):
            raise DestinationRefused("must be an absolute path")
        return "file://" + path.rstrip("/") if path != "/" else "file:///"
    if not parts.netloc:
        raise DestinationRefused(f"{scheme}:// needs a bucket or container")
    if ".." in parts.path.split("/"):
        raise DestinationRefused("'..' is not allowed in the path")
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{parts.netloc}{path}{query}"


def allowed_roots(configured: list[str], data_dir: Path) -> list[str]:
    """The destination prefixes exports may write under: the configured ones, or else the
    ``exports`` folder of the data directory."""
    if configured:
        return [normalize_destination(root) for root in configured]
    return [normalize_destination(str((data_dir / "exports").resolve()))]


def check_destination(uri: str, roots: list[str]) -> str:
    """Normalize ``uri`` and refuse it unless it lies under one of ``roots`` (normalized):
    the API must not let a caller make the worker write anywhere it can."""
    return check_location(uri, roots, "an allowed destination", "HUB_EXPORT_DESTINATIONS")


def check_location(uri: str, roots: list[str], what: str, setting: str) -> str:
    """Normalize ``uri`` (see :func:`normalize_destination`) and refuse it unless it lies
    under one of ``roots``; ``what`` and ``setting`` name the roots in the refusal."""
    normalized = normalize_destination(uri)
    base = normalized.split("?", 1)[0]
    for root in roots:
        root_base = root.split("?", 1)[0]
        if base == root_base or base.startswith(root_base.rstrip("/") + "/"):
            return normalized
    raise DestinationRefused(
        f"{normalized} is not under {what} ({', '.join(roots)}); see {setting}"
    )
