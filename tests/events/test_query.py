"""Subscriptions' queries: what the hub evaluates, and what it refuses."""

from __future__ import annotations

import pytest

from hub.events.envelopes import Domain
from hub.events.query import QueryError, parse_query


def envelope(event_type: str, **order: object) -> dict[str, object]:
    return {"eventType": event_type, "event": {"serviceOrder": order}}


def test_event_types_and_attributes_must_all_hold() -> None:
    wanted = parse_query(
        "eventType=ServiceOrderStateChangeEvent,ServiceOrderCreateEvent"
        "&event.serviceOrder.state=completed,failed&event.serviceOrder.note.kind=x",
        Domain.SERVICE_ORDERING,
    )
    assert wanted.matches(
        envelope("ServiceOrderStateChangeEvent", state="failed", note={"kind": "x"})
    )
    assert not wanted.matches(envelope("ServiceOrderStateChangeEvent", state="failed"))
    assert not wanted.matches(
        envelope("ServiceOrderStateChangeEvent", state="inProgress", note={"kind": "x"})
    )
    assert not wanted.matches(
        envelope("CancelServiceOrderCreateEvent", state="failed", note={"kind": "x"})
    )
    assert parse_query("", Domain.SERVICE_ORDERING).matches(envelope("Anything"))
    spaced = parse_query("eventType = ServiceOrderCreateEvent", Domain.SERVICE_ORDERING)
    assert spaced.matches(envelope("ServiceOrderCreateEvent"))


@pytest.mark.parametrize(
    "query",
    [
        "eventType=PartyRoleCreateEvent",  # another API's
        "eventType=",
        "event.serviceOrder=1",
        "event.serviceOrder.state.gt",
        "nonsense",
        "x" * 2001,
    ],
)
def test_what_cannot_be_evaluated_is_refused(query: str) -> None:
    with pytest.raises(QueryError):
        parse_query(query, Domain.SERVICE_ORDERING)
