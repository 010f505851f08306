"""Wholesale partners: apply, follow the application, fetch the credentials once, offboard.

An application (``POST /partnerApplications``) is a TMF632 organization (name, trading name,
``organizationIdentification`` with the company registration number and the VAT id, contact
media), its representatives, a ``callbackUrl`` and the ``requestedScopes``. It is recorded,
then a ``PartnerOnboarding`` workflow is started for it; the same registration number again
answers the open application (200). What can never succeed is refused at the door with a 400
naming the field, and nothing is started: no VAT id, one malformed for its country, an unknown
scope, a callback the hub may not call (:mod:`hub.partners.callbacks`).

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
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.partner_store import open_orders_of
from api.deps import Principal, SessionDep, SettingsDep, TemporalDep, require_scope
from api.errors import ApiError, temporal_unreachable
from api.inbound import CheckedRoute, unfit_name
from api.listing import Offset, one_of, page
from api.routes.parties import base_url, organization_path, party_role_path
from hub.models import PartnerApplication, PartnerStatus
from hub.partners.callbacks import check_callback_url
from hub.partners.vat import parse_vat_id
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

#: ``organizationIdentification[].identificationType`` of the two numbers an application needs.
REGISTRATION = "companyRegistrationNumber"
VAT = "vatId"
UPDATE_TIMEOUT = timedelta(seconds=15)
#: The update failures' types, as the caller's statuses.
REFUSALS = {"CredentialsGone": 410, "NotActive": 409}


class OrganizationIdentification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identificationType: str = Field(
        min_length=1,
        max_length=64,
        examples=[REGISTRATION, VAT],
        description=f"{REGISTRATION} or {VAT}",
    )
    identificationId: str = Field(min_length=1, max_length=64)
    issuingAuthority: str | None = Field(default=None, max_length=200)


class ContactMedium(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mediumType: str = Field(min_length=1, max_length=32, examples=["email"])
    preferred: bool | None = None
    characteristic: dict[str, str] = Field(default_factory=dict)


class OrganizationCreate(BaseModel):
    """The TMF632 organization applying."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    tradingName: str | None = Field(default=None, max_length=200)
    organizationIdentification: list[OrganizationIdentification] = Field(max_length=10)
    contactMedium: list[ContactMedium] = Field(default_factory=list, max_length=10)


class Representative(BaseModel):
    model_config = ConfigDict(extra="forbid")

    givenName: str = Field(min_length=1, max_length=100)
    familyName: str = Field(min_length=1, max_length=100)
    role: str | None = Field(default=None, max_length=100)


class ApplicationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organization: OrganizationCreate
    representatives: list[Representative] = Field(default_factory=list, max_length=20)
    callbackUrl: str = Field(min_length=1, max_length=2000)
    requestedScopes: list[str] = Field(min_length=1, max_length=20)


class ApplicationPublic(BaseModel):
    id: str
    href: str
    status: str
    workflowId: str
    name: str
    registrationNumber: str
    vatId: str
    organizationId: str
    organizationHref: str
    partyRoleId: str
    partyRoleHref: str
    callbackUrl: str
    requestedScopes: list[str]
    findings: list[dict[str, Any]]
    checks: dict[str, Any]
    highRisk: bool
    taskId: str | None = Field(description="the task the application waits on, if any")
    appliedBy: str
    approvedBy: list[str]
    billingAccountId: str | None
    clientId: str | None
    credentialsIssuedAt: datetime | None
    reasons: list[str]
    createdAt: datetime
    updatedAt: datetime


class Credentials(BaseModel):
    clientId: str
    clientSecret: str
    tokenEndpoint: str
    webhookSecret: str = Field(description="the key of the Standard Webhooks signatures")


class OffboardBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


class OffboardPublic(BaseModel):
    application: ApplicationPublic
    taskId: str


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


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, f"{field}: {message}")


def _identification(body: ApplicationCreate, kind: str) -> tuple[int, str]:
    found = [
        (index, item.identificationId)
        for index, item in enumerate(body.organization.organizationIdentification)
        if item.identificationType == kind
    ]
    field = "organization.organizationIdentification"
    if not found:
        raise _bad(field, f"no entry with identificationType {kind!r}")
    if len(found) > 1:
        raise _bad(field, f"more than one entry with identificationType {kind!r}")
    return found[0]


def checked(body: ApplicationCreate, settings: Settings) -> tuple[str, str]:
    """The registration number and the VAT id, once the application can succeed; else 400."""
    for field, text in (
        ("organization.name", body.organization.name),
        ("organization.tradingName", body.organization.tradingName),
        *(
            (f"representatives[{i}].{part}", getattr(rep, part))
            for i, rep in enumerate(body.representatives)
            for part in ("givenName", "familyName")
        ),
    ):
        if text is not None and (problem := unfit_name(text)):
            raise _bad(field, problem)
    known = {item.identificationType for item in body.organization.organizationIdentification}
    unknown = sorted(known - {REGISTRATION, VAT})
    if unknown:
        raise _bad(
            "organization.organizationIdentification",
            f"unknown identificationType {unknown[0]!r}; one of {REGISTRATION}, {VAT}",
        )
    _, registration = _identification(body, REGISTRATION)
    if problem := unfit_name(registration):
        raise _bad("organization.organizationIdentification", f"{REGISTRATION} {problem}")
    index, vat_text = _identification(body, VAT)
    try:
        vat = parse_vat_id(vat_text)
    except ValueError as exc:
        raise _bad(
            f"organization.organizationIdentification[{index}].identificationId", str(exc)
        ) from None
    allowed = set(settings.partners_allowed_scopes)
    for position, scope in enumerate(body.requestedScopes):
        if scope not in allowed:
            raise _bad(
                f"requestedScopes[{position}]",
                f"unknown scope {scope!r}; a partner may ask for {', '.join(sorted(allowed))}",
            )
    try:
        check_callback_url(body.callbackUrl, settings.callback_policy)
    except ValueError as exc:
        raise _bad("callbackUrl", str(exc)) from None
    return registration, str(vat)


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
