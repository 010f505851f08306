"""The API's dependencies, as ``Annotated`` aliases the routes declare.

Every route but ``/health`` and the docs declares ``Depends(require_scope(Scope.X))``: the
caller is authenticated (:func:`authenticate`, a :class:`Principal`: an API key, or an OAuth2
bearer JWT of ``HUB_OIDC_ISSUER`` validated by :mod:`api.oauth`) and must hold that scope.
A handler that needs to know who calls (a decider) takes the principal from the same call:
``decider: Annotated[Principal, Depends(require_scope(Scope.DEADLETTERS_DECIDE))]``, declared
before its other dependencies (FastAPI solves them in order: the 403 must come before a
database session is opened or Temporal is asked).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.errors import ApiError
from api.oauth import InvalidToken, ProviderUnavailable, TokenValidator, looks_like_jwt
from hub.permissions import (
    PARTNER_SCOPES,
    PLAIN_KEY_GROUPS,
    PLAIN_KEY_SCOPES,
    WILDCARD,
    Scope,
    plain_key_name,
)
from hub.settings import Settings
from hub.temporal import connect


class TemporalConnection:
    """Connects on first use, so the API starts (and /health answers) while Temporal is down."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    async def get(self, timeout: float = 5.0) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await asyncio.wait_for(connect(self._settings), timeout)
        return self._client


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


async def get_temporal(request: Request) -> Client:
    try:
        return await request.app.state.temporal.get()
    except Exception as exc:
        raise ApiError(503, f"Temporal is not reachable: {type(exc).__name__}") from exc


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may do: the answer of :func:`authenticate`."""

    #: For audit records and deciders: ``api-key:<name>``, or ``oidc:<sub>`` for a token.
    subject: str
    scopes: frozenset[str]
    #: Candidate groups of human tasks (``ops``, ``wholesale``).
    groups: frozenset[str] = frozenset()
    #: The wholesale partner whose token this is: it sees only that partner's resources.
    #: None for API keys and operators' tokens, which see everything.
    partner_id: str | None = None
    #: ``api-key`` or ``oidc`` (a bearer JWT): what a refusal's challenge names.
    authenticated_by: str = "api-key"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or WILDCARD in self.scopes

    def member_of(self, group: str) -> bool:
        return group in self.groups or WILDCARD in self.groups


def _credentials(settings: Settings) -> list[tuple[bytes, Principal]]:
    plain = [
        (key, Principal(f"api-key:{plain_key_name(key)}", PLAIN_KEY_SCOPES, PLAIN_KEY_GROUPS))
        for key in settings.api_key
    ]
    named = [
        (
            client.key.get_secret_value(),
            Principal(f"api-key:{client.name}", frozenset(client.scopes), frozenset(client.groups)),
        )
        for client in settings.api_clients
    ]
    return [(key.encode(), principal) for key, principal in plain + named]


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="telecom-hub"'}

#: The two ways to send a key, as OpenAPI security schemes: Swagger's Authorize button and
#: generated clients send them. ``auto_error=False``: :func:`authenticate` answers the 401.
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    scheme_name="apiKey",
    description="An API key (HUB_API_KEY, HUB_API_CLIENTS)",
    auto_error=False,
)
BEARER = HTTPBearer(
    scheme_name="bearer",
    description="`Authorization: Bearer <API key>` or `Authorization: Bearer <access token>` "
    "(a JWT of the hub's OpenID provider, HUB_OIDC_ISSUER)",
    auto_error=False,
)
ApiKeyHeaderDep = Annotated[str | None, Security(API_KEY_HEADER)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]


def offered_key(api_key: str | None, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    """The key in ``X-API-Key: <key>`` or else ``Authorization: Bearer <key>``, if any."""
    return api_key or (bearer.credentials if bearer else None) or None


def principal_for(offered: str | None, settings: Settings) -> Principal:
    """The caller whose API key is ``offered``; 401 without a known one."""
    if offered is None:
        raise ApiError(
            401, "missing API key: send X-API-Key or Authorization: Bearer", headers=_CHALLENGE
        )
    credentials = _credentials(settings)
    if not credentials:
        raise ApiError(
            401,
            "the hub has no API key configured (HUB_API_KEY, HUB_API_CLIENTS)",
            headers=_CHALLENGE,
        )
    # Compare with every key, in constant time, so timing tells neither how much of a key
    # matched nor which one.
    found = None
    for key, principal in credentials:
        if hmac.compare_digest(offered.encode(), key):
            found = principal
    if found is None:
        raise ApiError(401, "invalid API key", headers=_CHALLENGE)
    return found


def _token_refused(description: str) -> ApiError:
    # RFC 6750 section 3: the challenge says why. ``description`` is one of api.oauth's fixed
    # texts, never anything of the token, so it cannot break out of the quoted string.
    challenge = (
        f'Bearer realm="telecom-hub", error="invalid_token", error_description="{description}"'
    )
    return ApiError(
        401, f"invalid bearer token: {description}", headers={"WWW-Authenticate": challenge}
    )


def token_validator(request: Request) -> TokenValidator | None:
    """The app's validator of bearer JWTs; None while OAuth2 is off (no ``HUB_OIDC_ISSUER``)."""
    return getattr(request.app.state, "tokens", None)


async def principal_for_token(token: str, validator: TokenValidator | None) -> Principal:
    """The caller whose bearer JWT ``token`` is; 401 (``invalid_token``) if it is not valid,
    503 when the issuer's keys cannot be fetched to judge it."""
    if validator is None:
        raise _token_refused("OAuth2 is not enabled on this hub")
    try:
        bearer = await validator.validate(token)
    except InvalidToken as exc:
        raise _token_refused(str(exc)) from exc
    except ProviderUnavailable as exc:
        raise ApiError(
            503,
            "the identity provider cannot be reached to check the token; try again",
            headers={"Retry-After": "5"},
        ) from exc
    scopes = bearer.scopes
    if bearer.partner_id is not None:
        # Whatever the provider put into it, a partner's token does partner things only.
        scopes &= PARTNER_SCOPES
    return Principal(
        subject=f"oidc:{bearer.subject}",
        scopes=scopes,
        groups=bearer.groups,
        partner_id=bearer.partner_id,
        authenticated_by="oidc",
    )


async def authenticate(
    request: Request, settings: SettingsDep, api_key: ApiKeyHeaderDep, bearer: BearerDep
) -> Principal:
    """The caller whose API key or bearer JWT the request carries; 401 without a valid one.

    With OAuth2 on, a bearer credential shaped like a JWT is judged as a token (settings
    refuse API keys of that shape then), anything else as an API key; ``X-API-Key`` is always
    a key, and so is everything while OAuth2 is off.
    """
    validator = token_validator(request)
    if (
        validator is not None
        and api_key is None
        and bearer is not None
        and looks_like_jwt(bearer.credentials)
    ):
        return await principal_for_token(bearer.credentials, validator)
    return principal_for(offered_key(api_key, bearer), settings)


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def require_scope(
    scope: Scope, *, caller: Callable[..., Principal | Awaitable[Principal]] = authenticate
) -> Callable[..., Principal]:
    """A dependency answering the authenticated :class:`Principal` if it holds ``scope``, and
    403 naming the scope if not. ``caller`` finds the principal (:func:`authenticate`)."""

    def check(principal: Principal) -> Principal:
        if not principal.allows(scope):
            headers = None
            if principal.authenticated_by == "oidc":
                headers = {
                    "WWW-Authenticate": f'Bearer realm="telecom-hub", '
                    f'error="insufficient_scope", scope="{scope.value}"'
                }
            raise ApiError(
                403, f"{principal.subject} lacks the scope {scope.value!r}", headers=headers
            )
        return principal

    # Set here, not written in the signature: these annotations are strings, which FastAPI
    # resolves in the module's globals, and ``caller`` is not one.
    check.__annotations__["principal"] = Annotated[Principal, Depends(caller)]
    check.__name__ = f"require_{scope.value.replace(':', '_')}"
    check.scope = scope  # type: ignore[attr-defined]  # for the test that every route has one
    return check
