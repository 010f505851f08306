"""A partner's application: the request and response models of ``/partnerApplications``, and
the checks at the door that refuse, with a 400 naming the field, what can never succeed: no VAT
id or one malformed for its country, an unknown scope, a callback the hub may not call, text
no system can store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.errors import ApiError
from api.inbound import unfit_name
from hub.partners.callbacks import check_callback_url
from hub.partners.vat import parse_vat_id
from hub.settings import Settings

#: ``organizationIdentification[].identificationType`` of the two numbers an application needs.
REGISTRATION = "companyRegistrationNumber"
VAT = "vatId"


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
