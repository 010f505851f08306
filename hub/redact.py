"""Redaction of secrets in anything the hub stores or logs outside the encrypted payloads."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Field names whose values are secrets wherever they appear.
SECRET_FIELDS = frozenset({"ki", "k", "op", "opc", "password", "token", "secret"})
REDACTED = "***"
#: Query parameters of storage URIs (``pyarrow.fs``: S3, GCS) that carry credentials.
SECRET_QUERY = frozenset({"access_key", "secret_key", "session_token", "token", "password"})


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with every secret field's value replaced."""
    if isinstance(value, dict):
        return {
            key: REDACTED
            if str(key).lower() in SECRET_FIELDS and item is not None
            else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def redact_uri(uri: str) -> str:
    """The URI without the credentials it may carry (``user:password@``, secret query values);
    a plain path as it is."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = [
        (key, REDACTED if key.lower() in SECRET_QUERY else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*")))
