"""Where the hub may read and write files: the checks a location passes before the hub uses
it, whether an export's destination or a reconciliation's source.

A location is an absolute path or a URI that ``pyarrow.fs`` opens; it carries no credentials
(the worker takes those from its environment) and lies under one of the roots its setting
allows (``HUB_EXPORT_DESTINATIONS``, ``HUB_RECONCILIATION_SOURCE_ROOTS``).
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlsplit

#: URI schemes ``pyarrow.fs`` opens; anything else is refused before a schedule exists.
DESTINATION_SCHEMES = frozenset({"file", "s3", "gs", "gcs", "abfs", "abfss", "hdfs"})
#: Query options of ``pyarrow.fs`` URIs that carry credentials: the worker takes those from its
#: environment (AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS...), never from a URI that
#: ends up in schedules, run records and API answers.
_CREDENTIAL_OPTIONS = frozenset(
    {"access_key", "secret_key", "session_token", "sas_token", "account_key", "client_secret"}
)


class DestinationRefused(ValueError):
    """A location the hub will not use (an export destination, a reconciliation source); the
    message says why."""


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
