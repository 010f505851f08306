"""Wholesale partners: apply, follow the application, fetch the credentials once, offboard.

An application (``POST /partnerApplications``) is a TMF632 organization (name, trading name,
``organizationIdentification`` with the company registration number and the VAT id, contact
media), its representatives, a ``callbackUrl`` and the ``requestedScopes``. It is recorded,
then a ``PartnerOnboarding`` workflow is started for it; the same registration number again
answers the open application (200). What can never succeed is refused at the door with a 400
naming the field, and nothing is started: no VAT id, one malformed for its country, an unknown
scope, a callback the hub may not call (:mod:`api.partner_applications`).

The organization and its party role are served read-only at their TMF paths
(:mod:`api.routes.parties`).
"""

from __future__ import annotations

import logging
import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.partner_store import open_orders_of
from api.deps import Principal, SessionDep, SettingsDep, TemporalDep, require_scope
from api.errors import ApiError, temporal_unreachable
from api.inbound import CheckedRoute
from api.listing import Offset, one_of, page
from api.partner_applications import (
    ApplicationCreate,
    ApplicationPublic,
    Credentials,
    OffboardBody,
    OffboardPublic,
    checked,
)
from api.routes.parties import base_url, organization_path, party_role_path
from hub.models import PartnerApplication, PartnerStatus
from hub.permissions import Scope
from hub.sealing import Unsealer, generate_seal_key, public_spec
from hub.settings import Settings
from workflows.partner_onboarding import CONTRACT as PARTNER_PROCESS
from workflows.partner_onboarding import (
    CredentialsHandOut,
    CredentialsRequest,
    OffboardAccepted,
    OffboardRequest,
    PartnerInput,
    PartnerOnboarding,
)

audit = logging.getLogger("hub.audit")

router = APIRouter(
    prefix="/partnerApplications", tags=["Partner onboarding"], route_class=CheckedRoute
)
READ = [Depends(require_scope(Scope.PARTNERS_READ))]
Applicant = Annotated[Principal, Depends(require_scope(Scope.PARTNERS_WRITE))]
Issuer = Annotated[Principal, Depends(require_scope(Scope.PARTNERS_CREDENTIALS))]

UPDATE_TIMEOUT = timedelta(seconds=15)
#: The update failures' types, as the caller's statuses.
REFUSALS = {"CredentialsGone": 410, "NotActive": 409}


# --- helpers ---------------------------------------------------------------------------------


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def public(request: Request, settings: Settings, row: PartnerApplication) -> ApplicationPublic:
    base = base_url(request, settings)
    return ApplicationPublic(
        id=row.id,
        href=f"{base}/partnerApplications/{row.id}",
        status=row.status,
        workflowId=row.workflow_id,
        name=row.name,
        registrationNumber=row.registration_number,
        vatId=row.vat_id,
        organizationId=row.organization_id,
        organizationHref=base + organization_path(row.organization_id),
        partyRoleId=row.party_role_id,
        partyRoleHref=base + party_role_path(row.party_role_id),
        callbackUrl=row.callback_url,
        requestedScopes=row.requested_scopes,
        findings=row.findings,
        checks=row.checks,
        highRisk=row.high_risk,
        taskId=row.task_id,
        appliedBy=row.applied_by,
        approvedBy=row.approved_by,
        billingAccountId=row.billing_account_id,
        clientId=row.client_id,
        credentialsIssuedAt=_utc(row.credentials_issued_at),
        reasons=row.reasons,
        createdAt=_utc(row.created_at) or row.created_at,
        updatedAt=_utc(row.updated_at) or row.updated_at,
    )


def workflow_input(row: PartnerApplication) -> PartnerInput:
    return PartnerInput(
        application_id=row.id,
        organization_id=row.organization_id,
        party_role_id=row.party_role_id,
        name=row.name,
        registration_number=row.registration_number,
        vat_id=row.vat_id,
        callback_url=row.callback_url,
        scopes=list(row.requested_scopes),
        applied_by=row.applied_by,
        trading_name=row.organization.get("tradingName"),
        representatives=[f"{r['givenName']} {r['familyName']}" for r in row.representatives],
    )


async def open_application(session: AsyncSession, registration: str) -> PartnerApplication | None:
    rows = await session.exec(
        select(PartnerApplication)
        .where(
            PartnerApplication.registration_number == registration,
            col(PartnerApplication.status).in_([s.value for s in PartnerStatus if s.is_open]),
        )
        .order_by(col(PartnerApplication.created_at).desc())
    )
    return rows.first()


async def _start(temporal: Client, settings: Settings, row: PartnerApplication) -> None:
    """Start the application's workflow; one started already is left as it is."""
    try:
        with suppress(WorkflowAlreadyStartedError):
            await PARTNER_PROCESS.start(
                temporal, workflow_input(row), row.id, task_queue=settings.task_queue
            )
    except RPCError as exc:
        raise ApiError(
            503, f"Temporal refused to start the application: {exc.status.name}"
        ) from exc


async def _row_or_404(session: AsyncSession, application_id: str) -> PartnerApplication:
    session.expire_all()  # the workflow writes the row; this session may have read it before
    row = await session.get(PartnerApplication, application_id)
    if row is None:
        raise ApiError(404, f"no partner application with id {application_id!r}")
    return row


async def _update(temporal: Client, row: PartnerApplication, update: Any, argument: Any) -> Any:
    handle = temporal.get_workflow_handle(row.workflow_id)
    try:
        return await handle.execute_update(update, argument, rpc_timeout=UPDATE_TIMEOUT)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        kind = getattr(cause, "type", None) or ""
        message = getattr(cause, "message", None) or str(exc)
        raise ApiError(REFUSALS.get(kind, 409), message) from exc
    except (RPCError, RPCTimeoutOrCancelledError) as exc:
        if (unreachable := temporal_unreachable(exc)) is not None:
            raise unreachable from exc
        if isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(409, f"application {row.id}: its process is no longer running") from exc
        raise ApiError(409, f"application {row.id}: the process did not take it ({exc})") from exc


# --- routes ----------------------------------------------------------------------------------


@router.post(
    "", status_code=201, summary="Apply as a wholesale partner", response_model=ApplicationPublic
)
async def apply(
    body: ApplicationCreate,
    applicant: Applicant,
    request: Request,
    response: Response,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> ApplicationPublic:
    registration, vat_id = checked(body, settings)
    existing = await open_application(session, registration)
    if existing is not None:
        return await _again(request, response, session, temporal, settings, existing)
    key = uuid.uuid4().hex[:12]
    row = PartnerApplication(
        id=f"pa-{key}",
        workflow_id=PARTNER_PROCESS.workflow_id(f"pa-{key}"),
        registration_number=registration,
        vat_id=vat_id,
        name=body.organization.name,
        organization_id=f"org-{key}",
        party_role_id=f"pr-{key}",
        organization=body.organization.model_dump(exclude_none=True),
        representatives=[rep.model_dump(exclude_none=True) for rep in body.representatives],
        callback_url=body.callbackUrl,
        requested_scopes=list(dict.fromkeys(body.requestedScopes)),
        applied_by=applicant.subject,
    )
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        existing = await open_application(session, registration)
        if existing is None:
            raise ApiError(409, "another application was recorded meanwhile; ask again") from None
        return await _again(request, response, session, temporal, settings, existing)
    try:
        await _start(temporal, settings, row)
    except ApiError:
        await session.delete(row)
        await session.commit()
        raise
    response.headers["Location"] = f"{base_url(request, settings)}/partnerApplications/{row.id}"
    return public(request, settings, row)


async def _again(
    request: Request,
    response: Response,
    session: AsyncSession,
    temporal: Client,
    settings: Settings,
    row: PartnerApplication,
) -> ApplicationPublic:
    """The open application, asked for again: 200 with it (its workflow started if the API
    died between recording and starting it)."""
    if row.status == PartnerStatus.CHECKING:
        await _start(temporal, settings, row)
    response.status_code = 200
    return public(request, settings, row)


@router.get(
    "", summary="List applications", response_model=list[ApplicationPublic], dependencies=READ
)
async def list_applications(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    status: str | None = Query(default=None),
    registrationNumber: str | None = Query(default=None, max_length=64),
    vatId: str | None = Query(default=None, max_length=32),
    name: str | None = Query(default=None, max_length=200, description="the name contains it"),
    offset: Offset = 0,
    limit: int = Query(default=50, ge=1, le=500),
) -> list[ApplicationPublic]:
    one_of("status", status, PartnerStatus)
    conditions: list[Any] = []
    if status is not None:
        conditions.append(PartnerApplication.status == status)
    if registrationNumber is not None:
        conditions.append(PartnerApplication.registration_number == registrationNumber)
    if vatId is not None:
        conditions.append(PartnerApplication.vat_id == vatId.replace(" ", "").upper())
    if name is not None:
        conditions.append(col(PartnerApplication.name).contains(name))
    rows = await page(
        session,
        PartnerApplication,
        conditions,
        [col(PartnerApplication.created_at).desc(), col(PartnerApplication.id)],
        offset=offset,
        limit=limit,
        response=response,
    )
    return [public(request, settings, row) for row in rows]


@router.get(
    "/{application_id}",
    summary="Read an application",
    response_model=ApplicationPublic,
    dependencies=READ,
)
async def get_application(
    application_id: str, request: Request, session: SessionDep, settings: SettingsDep
) -> ApplicationPublic:
    return public(request, settings, await _row_or_404(session, application_id))


@router.post(
    "/{application_id}/credentials",
    summary="Fetch the partner's OAuth2 client credentials (once)",
    response_model=Credentials,
    responses={410: {"description": "handed out already"}},
)
async def hand_out_credentials(
    application_id: str,
    issuer: Issuer,
    response: Response,
    session: SessionDep,
    temporal: TemporalDep,
) -> Credentials:
    row = await _row_or_404(session, application_id)
    if row.credentials_issued_at is not None:
        raise ApiError(410, f"the credentials of {application_id} were handed out already")
    if row.status != PartnerStatus.ACTIVE:
        raise ApiError(
            409 if PartnerStatus(row.status).is_open else 410,
            f"application {application_id} is {row.status}: credentials come once it is active",
        )
    # A key pair for this request alone: the worker seals the secrets to its public half.
    private = generate_seal_key("handout")
    handed: CredentialsHandOut = await _update(
        temporal,
        row,
        PartnerOnboarding.hand_out_credentials,
        CredentialsRequest(public_spec(private), issuer.subject),
    )
    opener = Unsealer.from_specs([private], "handout")
    response.headers["Cache-Control"] = "no-store"
    audit.info(
        "partner credentials handed out",
        extra={"application": application_id, "client_id": handed.client_id, "to": issuer.subject},
    )
    return Credentials(
        clientId=handed.client_id,
        clientSecret=opener.unseal("client_secret", handed.client_secret, context=application_id),
        tokenEndpoint=handed.token_endpoint,
        webhookSecret=opener.unseal(
            "webhook_secret", handed.webhook_secret, context=application_id
        ),
    )


@router.post(
    "/{application_id}/offboard",
    status_code=202,
    summary="Ask to offboard a partner (a task decides it)",
    response_model=OffboardPublic,
)
async def offboard(
    application_id: str,
    applicant: Applicant,
    request: Request,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    body: OffboardBody | None = None,
) -> OffboardPublic:
    row = await _row_or_404(session, application_id)
    if row.status != PartnerStatus.ACTIVE:
        raise ApiError(409, f"application {application_id} is {row.status}: not an active partner")
    orders = await open_orders_of(session, row.organization_id)
    if orders:
        raise ApiError(
            409,
            f"the partner has {len(orders)} open order(s) ({', '.join(orders[:5])}): "
            "offboard it once they are done",
        )
    accepted: OffboardAccepted = await _update(
        temporal,
        row,
        PartnerOnboarding.request_offboarding,
        OffboardRequest(applicant.subject, body.reason if body else None),
    )
    row = await _row_or_404(session, application_id)
    return OffboardPublic(application=public(request, settings, row), taskId=accepted.task_id)
