"""The partners as TM Forum resources, read-only: TMF632 ``organization`` and TMF669 ``partyRole``.

Both are views of the partner's application row (:class:`hub.models.PartnerApplication`):
the organization as it applied, with its status (``initialized``, ``validated`` once
onboarded, ``closed``), and its ``wholesalePartner`` party role (``pending``, ``active``,
``rejected``, ``failed``, ``terminated``) with the scopes it was agreed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from api.deps import SessionDep, SettingsDep, require_scope
from api.errors import ApiError
from api.inbound import CheckedRoute
from api.listing import Offset, page
from hub.events.resources import PARTY, PARTY_ROLE, party_role_json
from hub.models import PartnerApplication
from hub.permissions import Scope
from hub.settings import Settings

READ = [Depends(require_scope(Scope.PARTNERS_READ))]

party_router = APIRouter(
    prefix=PARTY, tags=["TMF632 Party Management"], route_class=CheckedRoute, dependencies=READ
)
party_role_router = APIRouter(
    prefix=PARTY_ROLE,
    tags=["TMF669 Party Role Management"],
    route_class=CheckedRoute,
    dependencies=READ,
)


def base_url(request: Request, settings: Settings) -> str:
    """Where the API is reached: ``HUB_PUBLIC_URL``, else as this request reached it."""
    base = settings.public_url.rstrip("/") if settings.public_url else str(request.base_url)
    return base.rstrip("/")


def organization_path(organization_id: str) -> str:
    return f"{PARTY}/organization/{organization_id}"


def party_role_path(party_role_id: str) -> str:
    return f"{PARTY_ROLE}/partyRole/{party_role_id}"


class Organization(BaseModel):
    """TMF632 Organization (the fields the hub keeps)."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    href: str
    name: str
    tradingName: str | None = None
    isLegalEntity: bool = True
    status: str
    organizationIdentification: list[dict[str, Any]]
    contactMedium: list[dict[str, Any]]
    partyCharacteristic: list[dict[str, Any]]
    type: str = Field(default="Organization", alias="@type")


class PartyRole(BaseModel):
    """TMF669 PartyRole."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    href: str
    name: str
    status: str
    statusReason: str | None = None
    engagedParty: dict[str, Any]
    characteristic: list[dict[str, Any]]
    validFor: dict[str, Any]
    type: str = Field(default="PartyRole", alias="@type")


def _utc(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def organization(request: Request, settings: Settings, row: PartnerApplication) -> Organization:
    applied = row.organization
    return Organization(
        id=row.organization_id,
        href=base_url(request, settings) + organization_path(row.organization_id),
        name=row.name,
        tradingName=applied.get("tradingName"),
        status=row.organization_status,
        organizationIdentification=[
            {**item, "@type": "OrganizationIdentification"}
            for item in applied.get("organizationIdentification", [])
        ],
        contactMedium=[
            {**item, "@type": "ContactMedium"} for item in applied.get("contactMedium", [])
        ],
        partyCharacteristic=[
            {"name": "partnerApplication", "value": row.id, "valueType": "string"}
        ],
    )


def party_role(request: Request, settings: Settings, row: PartnerApplication) -> PartyRole:
    """The party role as its events carry it too (:func:`hub.events.resources.party_role_json`)."""
    return PartyRole.model_validate(party_role_json(row, base_url(request, settings)))


async def _application_where(
    session: Any, condition: Any, what: str, value: str
) -> PartnerApplication:
    """The application a TMF632/669 id names, or a 404 saying which resource."""
    row = (await session.exec(select(PartnerApplication).where(condition))).first()
    if row is None:
        raise ApiError(404, f"no {what} with id {value!r}")
    return row


async def _applications_page(
    session: Any, conditions: list[Any], offset: int, limit: int, response: Response
) -> Any:
    """A page of applications, newest first (the TMF lists of both resources)."""
    return await page(
        session,
        PartnerApplication,
        conditions,
        [col(PartnerApplication.created_at).desc(), col(PartnerApplication.id)],
        offset=offset,
        limit=limit,
        response=response,
    )


@party_router.get(
    "/organization/{organization_id}",
    summary="Read a partner organization",
    response_model=Organization,
    response_model_by_alias=True,
)
async def get_organization(
    organization_id: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Organization:
    row = await _application_where(
        session,
        PartnerApplication.organization_id == organization_id,
        "organization",
        organization_id,
    )
    return organization(request, settings, row)


@party_router.get(
    "/organization",
    summary="List partner organizations",
    response_model=list[Organization],
    response_model_by_alias=True,
)
async def list_organizations(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    status: str | None = Query(default=None, max_length=24),
    offset: Offset = 0,
    limit: int = Query(default=50, ge=1, le=500),
) -> list[Organization]:
    conditions = [PartnerApplication.organization_status == status] if status else []
    rows = await _applications_page(session, conditions, offset, limit, response)
    return [organization(request, settings, row) for row in rows]


@party_role_router.get(
    "/partyRole/{party_role_id}",
    summary="Read a partner's party role",
    response_model=PartyRole,
    response_model_by_alias=True,
)
async def get_party_role(
    party_role_id: str, request: Request, session: SessionDep, settings: SettingsDep
) -> PartyRole:
    row = await _application_where(
        session, PartnerApplication.party_role_id == party_role_id, "party role", party_role_id
    )
    return party_role(request, settings, row)


@party_role_router.get(
    "/partyRole",
    summary="List partners' party roles",
    response_model=list[PartyRole],
    response_model_by_alias=True,
)
async def list_party_roles(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    status: str | None = Query(default=None, max_length=24),
    offset: Offset = 0,
    limit: int = Query(default=50, ge=1, le=500),
) -> list[PartyRole]:
    conditions = [PartnerApplication.party_role_status == status] if status else []
    rows = await _applications_page(session, conditions, offset, limit, response)
    return [party_role(request, settings, row) for row in rows]
