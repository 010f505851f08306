"""A subscription's ``query`` (TMF630 ``/hub``): which events it hears of.

The hub evaluates what it can and refuses the rest at subscription (a query it cannot
evaluate is an error, never a subscription that never fires):

- ``eventType=A`` or ``eventType=A,B``: the event's type is one of those (of the API's types);
- ``event.<resource>.<attribute>=v`` (``event.serviceOrder.state=completed``), the attribute a
  path of names into the resource (``event.serviceOrder.category``), ``v`` or a comma list:
  the resource's attribute, as text, is one of them;
- several conditions joined with ``&``: all must hold. Empty: every event of the API.

Nothing else: no operators (``.gt``, ``>``), no other fields, no attribute named twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from hub.events.envelopes import EVENT_TYPES, RESOURCES, Domain

MAX_LENGTH = 2000
_NAME = re.compile(r"[A-Za-z@][A-Za-z0-9@_-]{0,63}")


class QueryError(ValueError):
    """The query cannot be evaluated; the message says what is wrong."""


@dataclass(frozen=True)
class EventFilter:
    event_types: frozenset[str] = frozenset()
    #: (resource name, attribute path) -> accepted values
    attributes: dict[tuple[str, tuple[str, ...]], frozenset[str]] = field(default_factory=dict)

    def matches(self, envelope: dict[str, Any]) -> bool:
        if self.event_types and envelope.get("eventType") not in self.event_types:
            return False
        for (resource, path), values in self.attributes.items():
            value: Any = (envelope.get("event") or {}).get(resource)
            for name in path:
                value = value.get(name) if isinstance(value, dict) else None
            if value is None or _text(value) not in values:
                return False
        return True


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_query(query: str, domain: Domain) -> EventFilter:
    """The filter ``query`` says, for the hub of ``domain``; :class:`QueryError` if it cannot."""
    if len(query) > MAX_LENGTH:
        raise QueryError(f"query: at most {MAX_LENGTH} characters")
    query = query.strip().lstrip("?")
    if not query:
        return EventFilter()
    types = {t.value for t in EVENT_TYPES[domain]}
    resources = {RESOURCES[t] for t in EVENT_TYPES[domain]}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise QueryError("query: expected name=value pairs joined with &") from None
    event_types: set[str] = set()
    attributes: dict[tuple[str, tuple[str, ...]], frozenset[str]] = {}
    seen: set[str] = set()
    for name, value in pairs:
        name, value = name.strip(), value.strip()  # TMF's examples write "eventType = X"
        if name in seen:
            raise QueryError(f"query: {name!r} is given twice; list values with a comma")
        seen.add(name)
        values = [part.strip() for part in value.split(",")]
        if not value or any(not part for part in values):
            raise QueryError(f"query: {name!r} needs a value")
        if name == "eventType":
            unknown = sorted(set(values) - types)
            if unknown:
                raise QueryError(
                    f"query: unknown eventType {', '.join(unknown)}; this hub sends "
                    f"{', '.join(sorted(types))}"
                )
            event_types.update(values)
            continue
        parts = name.split(".")
        if len(parts) < 3 or parts[0] != "event":
            raise QueryError(
                f"query: cannot evaluate {name!r}; use eventType=... or "
                f"event.<{'|'.join(sorted(resources))}>.<attribute>=..."
            )
        resource, path = parts[1], tuple(parts[2:])
        if resource not in resources:
            raise QueryError(
                f"query: {name!r}: events of this hub carry {', '.join(sorted(resources))}"
            )
        if not all(_NAME.fullmatch(part) for part in path):
            raise QueryError(
                f"query: {name!r}: attribute names are letters, digits, '@', '_' or '-' "
                "(no operators)"
            )
        attributes[(resource, path)] = frozenset(values)
    return EventFilter(frozenset(event_types), attributes)
