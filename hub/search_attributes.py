"""The custom search attributes operators filter on in the Temporal Web UI and CLI.

They are indexed, not encrypted, so they carry identifiers only, never secrets. Every Temporal
the hub runs against must know them: ``make run`` passes :func:`dev_server_flags` to the dev
server, the tests register them, and the compose stack creates them at start.
"""

from __future__ import annotations

from enum import StrEnum

from temporalio.common import SearchAttributeKey

ORDER_ID = SearchAttributeKey.for_keyword("OrderId")
EXTERNAL_ID = SearchAttributeKey.for_keyword("ExternalId")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
PROCESS_KIND = SearchAttributeKey.for_keyword("ProcessKind")
HUB_STATUS = SearchAttributeKey.for_keyword("HubStatus")
#: The human task a process waits on (``task-...``), while it waits.
OPEN_TASK = SearchAttributeKey.for_keyword("OpenTask")

#: The longest Keyword value every Temporal takes, in UTF-8 bytes. SQL visibility keeps a
#: Keyword in a VARCHAR(255) column, and the frontend refuses a value whose JSON payload is
#: over 2 KiB (``limit.searchAttributesSizeOfValue``): 200 emoji are 800 bytes, but 2402 in
#: JSON (``\ud83d\ude00`` each). 255 bytes stay under both, whatever the characters.
KEYWORD_MAX_BYTES = 255

ALL: tuple[SearchAttributeKey[str], ...] = (
    ORDER_ID,
    EXTERNAL_ID,
    CUSTOMER_ID,
    PROCESS_KIND,
    HUB_STATUS,
    OPEN_TASK,
)


class HubStatus(StrEnum):
    """Where a process stands, as operators filter it (``HubStatus="failed"``)."""

    RUNNING = "running"
    COMPENSATING = "compensating"
    PARKED = "parked"
    AWAITING_APPROVAL = "awaiting-approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


def dev_server_flags() -> list[str]:
    """``temporal server start-dev`` arguments that register every hub search attribute."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
