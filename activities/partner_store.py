"""Partner onboarding's hub-database activities: the application's row, the callback and its
signing secret, the one-time hand-out of the credentials, the partner's open orders.

The hand-out (:meth:`PartnerStore.hand_out_credentials`) is how a secret leaves the hub once:
the API, which holds no private seal key, sends a public key of its own that lives for one
request; the worker unseals the stored client secret and webhook secret, seals them again to
that key (so what crosses Temporal opens only in that request), and deletes them from the row
in the same transaction. A second hand-out finds nothing and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.definitions import defn
from activities.errors import outside_call
from activities.events import wake_relay
from activities.partners import CLIENT_SECRET, WEBHOOK_SECRET, require_sealing
from hub.db import session_scope
from hub.errors import BusinessRejection, PermanentError
from hub.events.relay import relay_of
from hub.events.resources import add_party_role_event
from hub.models import OrderState, PartnerApplication, ServiceOrder, utcnow
from hub.partners import webhooks
from hub.sealing import Sealer, Unsealer
from hub.settings import Settings


class CredentialsGone(BusinessRejection):
    """The credentials were handed out already (or the partner is gone)."""


@dataclass
class PartnerDefaults:
    """What an application takes from the worker's settings."""

    approver_groups: list[str]
    follow_up_after: float
    escalate_after: float
    escalation_groups: list[str]
    approval_due_after: float
    compliance_groups: list[str]
    min_credit_score: int
    name_match_threshold: float
    sanctions_threshold: float
    connectivity_timeout: float
    currency: str


@dataclass
class RecordPartnerInput:
    """The row as the workflow now has it; None leaves a column as it is."""

    application_id: str
    status: str
    organization_status: str | None = None
    party_role_status: str | None = None
    checks: dict[str, Any] | None = None
    findings: list[dict[str, Any]] | None = None
    high_risk: bool | None = None
    task_id: str | None = None
    task_closed: bool = False
    approved_by: list[str] | None = None
    billing_account_id: str | None = None
    crm_recorded: bool | None = None
    client_id: str | None = None
    registration_client_uri: str | None = None
    client_secret_sealed: str | None = None
    registration_token_sealed: str | None = None
    #: The client is gone (revoked, or compensated): its tokens are dropped too.
    client_removed: bool = False
    reasons: list[str] | None = None
    error_message: str | None = None


@dataclass
class CallbackInput:
    application_id: str
    callback_url: str


@dataclass
class CallbackResult:
    webhook_secret_sealed: str


@dataclass
class RemoveCallbackInput:
    application_id: str


@dataclass
class HandOutInput:
    application_id: str
    #: ``key-id:base64`` public key of the one request that asked (``hub.sealing``).
    recipient: str
    issued_to: str


@dataclass
class HandOutResult:
    client_id: str
    #: Sealed to ``recipient``, fields ``client_secret`` and ``webhook_secret``.
    client_secret: str
    webhook_secret: str
    issued_at: datetime


@dataclass
class OpenOrdersInput:
    organization_id: str


@dataclass
class OpenOrdersResult:
    order_ids: list[str] = field(default_factory=list)


async def open_orders_of(session: AsyncSession, organization_id: str) -> list[str]:
    """The orders not yet final that the partner placed (its token's ``partner_id`` is the
    organization's id, as its client was registered)."""
    rows = await session.exec(
        select(ServiceOrder.id)
        .where(
            ServiceOrder.partner_id == organization_id,
            col(ServiceOrder.state).not_in(
                [OrderState.COMPLETED, OrderState.FAILED, OrderState.CANCELLED]
            ),
        )
        .order_by(col(ServiceOrder.order_date))
    )
    return list(rows)


class PartnerStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        sealer: Sealer | None,
        unsealer: Unsealer | None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.sealer = sealer
        self.unsealer = unsealer

    @defn("hub.partner_defaults")
    async def defaults(self) -> PartnerDefaults:
        s = self.settings
        return PartnerDefaults(
            approver_groups=list(s.partners_approver_groups),
            follow_up_after=s.partners_approval_follow_up.total_seconds(),
            escalate_after=s.partners_approval_escalation.total_seconds(),
            escalation_groups=list(s.partners_approval_escalation_groups),
            approval_due_after=s.partners_approval_due.total_seconds(),
            compliance_groups=list(s.partners_compliance_groups),
            min_credit_score=s.partners_min_credit_score,
            name_match_threshold=s.partners_name_match_threshold,
            sanctions_threshold=s.partners_sanctions_threshold,
            connectivity_timeout=s.partners_connectivity_timeout.total_seconds(),
            currency=s.partners_currency,
        )

    async def _row(self, session: AsyncSession, application_id: str) -> PartnerApplication:
        row = await session.get(PartnerApplication, application_id)
        if row is None:
            raise PermanentError(f"no partner application {application_id!r}", system="hub")
        return row

    @defn("hub.record_partner")
    async def record(self, data: RecordPartnerInput) -> None:
        """The row as the workflow now has it (idempotent)."""
        events = False
        async with session_scope(self.sessions) as session:
            row = await self._row(session, data.application_id)
            role_status = row.party_role_status
            row.status = data.status
            for name in (
                "organization_status",
                "party_role_status",
                "checks",
                "findings",
                "high_risk",
                "task_id",
                "approved_by",
                "billing_account_id",
                "crm_recorded",
                "client_id",
                "registration_client_uri",
                "client_secret_sealed",
                "registration_token_sealed",
                "reasons",
                "error_message",
            ):
                value = getattr(data, name)
                if value is not None:
                    setattr(row, name, value)
            if data.task_closed:
                row.task_id = None
            if data.client_removed:
                row.client_secret_sealed = None
                row.registration_token_sealed = None
            row.updated_at = utcnow()
            session.add(row)
            # Reported in this transaction (the outbox): the party role's first record, and
            # each change of its status.
            events = await add_party_role_event(
                session,
                row,
                changed=row.party_role_status != role_status,
                public_url=self.settings.resolved_events_public_url,
            )
        if events:
            await wake_relay(relay_of(self.settings))

    @defn("hub.register_partner_callback")
    async def register_callback(self, data: CallbackInput) -> CallbackResult:
        """Store the callback with a new signing secret (sealed); the same one on a retry."""
        sealer, _ = require_sealing(self.sealer, self.unsealer)
        async with session_scope(self.sessions) as session:
            row = await self._row(session, data.application_id)
            if row.webhook_secret_sealed is None or row.callback_url != data.callback_url:
                row.webhook_secret_sealed = sealer.seal(
                    WEBHOOK_SECRET, webhooks.new_secret(), context=data.application_id
                )
            row.callback_url = data.callback_url
            row.callback_registered = True
            row.updated_at = utcnow()
            session.add(row)
            return CallbackResult(row.webhook_secret_sealed)

    @defn("hub.remove_partner_callback")
    async def remove_callback(self, data: RemoveCallbackInput) -> None:
        async with session_scope(self.sessions) as session:
            row = await self._row(session, data.application_id)
            row.callback_registered = False
            row.webhook_secret_sealed = None
            row.updated_at = utcnow()
            session.add(row)

    @defn("hub.hand_out_partner_credentials")
    async def hand_out_credentials(self, data: HandOutInput) -> HandOutResult:
        """The client and webhook secrets, sealed to the asking request, deleted here."""
        _, unsealer = require_sealing(self.sealer, self.unsealer)
        recipient = Sealer.from_spec(data.recipient, "recipient")
        context = data.application_id
        with outside_call():
            async with session_scope(self.sessions) as session:
                row = await self._row(session, data.application_id)
                if row.client_secret_sealed is None or row.client_id is None:
                    raise CredentialsGone(
                        f"the credentials of {data.application_id} were handed out already",
                        system="hub",
                    )
                secret = unsealer.unseal(CLIENT_SECRET, row.client_secret_sealed, context=context)
                webhook = (
                    unsealer.unseal(WEBHOOK_SECRET, row.webhook_secret_sealed, context=context)
                    if row.webhook_secret_sealed
                    else ""
                )
                issued_at = utcnow()
                row.client_secret_sealed = None
                # The hub keeps its own sealed copy of the signing secret: it signs with it.
                row.credentials_issued_at = issued_at
                row.credentials_issued_to = data.issued_to
                row.updated_at = issued_at
                session.add(row)
                result = HandOutResult(
                    row.client_id,
                    recipient.seal(CLIENT_SECRET, secret, context=context),
                    recipient.seal(WEBHOOK_SECRET, webhook, context=context),
                    issued_at,
                )
        return result

    @defn("hub.partner_open_orders")
    async def open_orders(self, data: OpenOrdersInput) -> OpenOrdersResult:
        async with self.sessions() as session:
            return OpenOrdersResult(await open_orders_of(session, data.organization_id))
