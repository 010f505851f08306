"""The permissions (scopes) a caller of the API may hold, and what plain API keys hold.

Each route needs one scope: reading a resource, changing it, or deciding on it are separate,
so a read-only dashboard, a CRM that places orders, and the NOC that repairs them can each
get a key that does only that. ``*`` grants every scope. Decoding Temporal payloads
(``codec:decode``) shows workflow inputs and results in clear, and fetching a partner's
OAuth2 client secret (``partners:credentials``, once) hands out a secret: no key holds either
unless it is given explicitly.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum


class Scope(StrEnum):
    ORDERS_READ = "orders:read"
    ORDERS_WRITE = "orders:write"
    DEADLETTERS_READ = "deadletters:read"
    DEADLETTERS_DECIDE = "deadletters:decide"
    TASKS_READ = "tasks:read"
    TASKS_DECIDE = "tasks:decide"
    RECONCILIATIONS_READ = "reconciliations:read"
    RECONCILIATIONS_WRITE = "reconciliations:write"
    INVENTORY_READ = "inventory:read"
    INVENTORY_WRITE = "inventory:write"
    REPORTS_READ = "reports:read"
    REPORTS_WRITE = "reports:write"
    EXPORTS_READ = "exports:read"
    EXPORTS_WRITE = "exports:write"
    METRICS_READ = "metrics:read"
    PARTNERS_READ = "partners:read"
    PARTNERS_WRITE = "partners:write"
    PARTNERS_CREDENTIALS = "partners:credentials"
    EVENTS_READ = "events:read"
    EVENTS_WRITE = "events:write"
    CODEC_ENCODE = "codec:encode"
    CODEC_DECODE = "codec:decode"


#: Grants every scope (in a client's scopes) or membership of every group (in its groups).
WILDCARD = "*"

ALL_SCOPES: frozenset[str] = frozenset(Scope)

#: What a key of ``HUB_API_KEY`` may do: everything but reading payloads in clear and fetching
#: a partner's client secret. Give a client of ``HUB_API_CLIENTS`` ``codec:decode`` or
#: ``partners:credentials`` for that.
PLAIN_KEY_SCOPES: frozenset[str] = ALL_SCOPES - {Scope.CODEC_DECODE, Scope.PARTNERS_CREDENTIALS}

#: The most a wholesale partner's token may do, whatever scopes its provider put into it:
#: place and read its own orders, and subscribe to their events. Onboarding grants partners a
#: subset of these.
PARTNER_SCOPES: frozenset[str] = frozenset(
    {Scope.ORDERS_READ, Scope.ORDERS_WRITE, Scope.EVENTS_READ, Scope.EVENTS_WRITE}
)

#: The candidate groups of human tasks a plain key belongs to: all of them.
PLAIN_KEY_GROUPS: frozenset[str] = frozenset({WILDCARD})


def plain_key_name(key: str) -> str:
    """The name of a ``HUB_API_KEY`` key in audit records and deciders: a fingerprint.

    Stable when keys are added, removed or reordered, unlike a position; the same form the
    dead letters recorded before clients had names. Ten hex digits of SHA-256 tell nothing
    of a key with the 24+ random characters production requires.
    """
    return hashlib.sha256(key.encode()).hexdigest()[:10]
