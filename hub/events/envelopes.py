"""The TMF event envelope (TMF630 / TMF641 v4 notifications) and the hub's event types.

Every event is ``{eventId, eventTime, eventType, correlationId, domain, title, description,
priority, timeOccurred, event: {<resource>: <its representation>}}``. The representation is
what the resource's API returns at that moment (``hub.service_orders`` for orders).

Domains and their resources:

- ``serviceOrdering`` (TMF641): ``serviceOrder`` and ``cancelServiceOrder``;
- ``partyRole`` (TMF669): a wholesale partner's ``partyRole``;
- ``regulatoryReporting`` (the hub's own, no TMF API defines it): ``regulatoryReport``, the
  report as ``GET /regulatoryReports/{id}`` shows its status.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Domain(StrEnum):
    SERVICE_ORDERING = "serviceOrdering"
    PARTY_ROLE = "partyRole"
    REGULATORY_REPORTING = "regulatoryReporting"


class EventType(StrEnum):
    SERVICE_ORDER_CREATE = "ServiceOrderCreateEvent"
    SERVICE_ORDER_STATE_CHANGE = "ServiceOrderStateChangeEvent"
    SERVICE_ORDER_ATTRIBUTE_VALUE_CHANGE = "ServiceOrderAttributeValueChangeEvent"
    SERVICE_ORDER_INFORMATION_REQUIRED = "ServiceOrderInformationRequiredEvent"
    CANCEL_SERVICE_ORDER_CREATE = "CancelServiceOrderCreateEvent"
    CANCEL_SERVICE_ORDER_STATE_CHANGE = "CancelServiceOrderStateChangeEvent"
    PARTY_ROLE_CREATE = "PartyRoleCreateEvent"
    PARTY_ROLE_STATE_CHANGE = "PartyRoleStateChangeEvent"
    REGULATORY_REPORT_STATE_CHANGE = "RegulatoryReportStateChangeEvent"


#: Per domain: its event types, and the resource name its events carry (``event.<name>``).
EVENT_TYPES: dict[Domain, tuple[EventType, ...]] = {
    Domain.SERVICE_ORDERING: (
        EventType.SERVICE_ORDER_CREATE,
        EventType.SERVICE_ORDER_STATE_CHANGE,
        EventType.SERVICE_ORDER_ATTRIBUTE_VALUE_CHANGE,
        EventType.SERVICE_ORDER_INFORMATION_REQUIRED,
        EventType.CANCEL_SERVICE_ORDER_CREATE,
        EventType.CANCEL_SERVICE_ORDER_STATE_CHANGE,
    ),
    Domain.PARTY_ROLE: (EventType.PARTY_ROLE_CREATE, EventType.PARTY_ROLE_STATE_CHANGE),
    Domain.REGULATORY_REPORTING: (EventType.REGULATORY_REPORT_STATE_CHANGE,),
}
RESOURCES: dict[EventType, str] = {
    EventType.SERVICE_ORDER_CREATE: "serviceOrder",
    EventType.SERVICE_ORDER_STATE_CHANGE: "serviceOrder",
    EventType.SERVICE_ORDER_ATTRIBUTE_VALUE_CHANGE: "serviceOrder",
    EventType.SERVICE_ORDER_INFORMATION_REQUIRED: "serviceOrder",
    EventType.CANCEL_SERVICE_ORDER_CREATE: "cancelServiceOrder",
    EventType.CANCEL_SERVICE_ORDER_STATE_CHANGE: "cancelServiceOrder",
    EventType.PARTY_ROLE_CREATE: "partyRole",
    EventType.PARTY_ROLE_STATE_CHANGE: "partyRole",
    EventType.REGULATORY_REPORT_STATE_CHANGE: "regulatoryReport",
}
DOMAINS: dict[EventType, Domain] = {
    event_type: domain for domain, types in EVENT_TYPES.items() for event_type in types
}

_TITLES: dict[EventType, str] = {
    EventType.SERVICE_ORDER_CREATE: "Service order created",
    EventType.SERVICE_ORDER_STATE_CHANGE: "Service order state changed",
    EventType.SERVICE_ORDER_ATTRIBUTE_VALUE_CHANGE: "Service order item state changed",
    EventType.SERVICE_ORDER_INFORMATION_REQUIRED: "Service order waits for a person",
    EventType.CANCEL_SERVICE_ORDER_CREATE: "Cancellation requested",
    EventType.CANCEL_SERVICE_ORDER_STATE_CHANGE: "Cancellation state changed",
    EventType.PARTY_ROLE_CREATE: "Partner party role created",
    EventType.PARTY_ROLE_STATE_CHANGE: "Partner party role state changed",
    EventType.REGULATORY_REPORT_STATE_CHANGE: "Regulatory report status changed",
}
#: TMF630's priority is free text; the hub says how soon someone should look.
_PRIORITIES: dict[EventType, str] = {EventType.SERVICE_ORDER_INFORMATION_REQUIRED: "high"}


def iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Event:
    """One event to write to the outbox (see :func:`hub.events.outbox.add_event`)."""

    event_type: EventType
    resource_id: str
    resource: dict[str, Any]
    description: str
    #: The partner the resource belongs to: only its subscriptions (and the operator's) hear.
    partner_id: str | None = None
    correlation_id: str | None = None
    occurred_at: datetime | None = None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def domain(self) -> Domain:
        return DOMAINS[self.event_type]

    @property
    def resource_type(self) -> str:
        return RESOURCES[self.event_type]

    def envelope(self, now: datetime) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "eventTime": iso(now),
            "eventType": self.event_type.value,
            "correlationId": self.correlation_id or self.resource_id,
            "domain": self.domain.value,
            "title": _TITLES[self.event_type],
            "description": self.description,
            "priority": _PRIORITIES.get(self.event_type, "normal"),
            "timeOccurred": iso(self.occurred_at or now),
            "event": {self.resource_type: self.resource},
        }
