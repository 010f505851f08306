"""The event tables: subscriptions (TMF630 ``/hub``), the transactional outbox, the delivery log.

An event is a row of :class:`OutboxEvent`, written in the same database transaction as the
state change it reports (:func:`hub.events.outbox.add_event`); the relay
(``workflows/events.py``) fans it out into one :class:`EventDelivery` per matching subscription
and per broker sink, and delivers those in order per resource. A subscription's signing
secrets are kept only as sealed tokens (:mod:`hub.sealing`), opened by the worker where it signs.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.models import utcnow

#: The sealed field of a subscription's secrets (sealed with the subscription id as context).
SECRET_FIELD = "event_subscription_secret"


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    #: Deleted by its owner, or its callback answered 410 Gone.
    ENDED = "ended"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    #: Retries exhausted: a dead letter; a replay makes it pending again.
    DEAD = "dead"
    #: The subscription ended before it was delivered.
    CANCELLED = "cancelled"


class EventSubscription(SQLModel, table=True):
    __tablename__ = "event_subscription"

    id: str = Field(primary_key=True, max_length=64)
    #: Which API's hub: ``serviceOrdering``, ``partyRole``.
    api: str = Field(index=True, max_length=32)
    callback: str = Field(max_length=2000)
    query: str = Field(default="", max_length=2000)
    #: Sealed tokens of the signing secrets, newest first; every one signs (rotation).
    secrets_sealed: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    #: The partner whose token subscribed: it hears of its own resources only.
    partner_id: str | None = Field(default=None, index=True, max_length=128)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    status: str = Field(default=SubscriptionStatus.ACTIVE, index=True, max_length=16)
    ended_reason: str | None = None
    ended_at: datetime | None = None


class OutboxEvent(SQLModel, table=True):
    """One event, as it will be sent: ``envelope`` is the TMF event body."""

    __tablename__ = "event_outbox"
    __table_args__ = (
        UniqueConstraint(
            "resource_type", "resource_id", "resource_seq", name="uq_event_outbox_resource_seq"
        ),
    )

    seq: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True, max_length=36)
    domain: str = Field(index=True, max_length=64)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(index=True, max_length=200)
    #: 1, 2, 3... per resource: the order its events are delivered in.
    resource_seq: int
    event_type: str = Field(max_length=100)
    #: The partner the resource belongs to (None: the operator's).
    partner_id: str | None = Field(default=None, max_length=128)
    envelope: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    #: When the relay fanned it out into deliveries; None: not yet.
    dispatched_at: datetime | None = Field(default=None, index=True)


class EventDelivery(SQLModel, table=True):
    """One event to one subscription (or broker sink, ``sink:<name>``): the delivery log."""

    __tablename__ = "event_delivery"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_event_delivery_event"),
        Index(
            "ix_event_delivery_lane", "subscription_id", "status", "resource_key", "resource_seq"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: str = Field(max_length=64)
    event_id: str = Field(max_length=36)
    event_seq: int
    event_type: str = Field(max_length=100)
    #: ``<resource type>/<resource id>``: events of one key are delivered in ``resource_seq``.
    resource_key: str = Field(max_length=270)
    resource_seq: int
    status: str = Field(default=DeliveryStatus.PENDING, max_length=16)
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime = Field(default_factory=utcnow)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None
    dead_letter_id: str | None = Field(default=None, max_length=64)
