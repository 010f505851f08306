"""Redaction of secrets in anything the hub stores or logs outside the encrypted payloads."""

from __future__ import annotations

from typing import Any

#: Field names whose values are secrets wherever they appear.
SECRET_FIELDS = frozenset({"ki", "k", "op", "opc", "password", "token", "secret"})
REDACTED = "***"


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
