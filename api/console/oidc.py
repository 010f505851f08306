"""Sign-in to the console with OpenID Connect: the authorization code grant with PKCE (S256)
at ``HUB_OIDC_ISSUER``, as the console's confidential client (``HUB_CONSOLE_OIDC_CLIENT_ID``).

``/console/oidc/start`` keeps a fresh state, nonce and code verifier in the (signed-out)
session and sends the browser to the provider; ``/console/oidc/callback`` checks the state,
exchanges the code (with the verifier and the client's secret), checks the ID token (issuer,
audience, expiry, nonce) and takes the person's scopes and groups from the access token the
provider issued for the hub's API, judged exactly as the API judges a bearer token
(:func:`api.deps.principal_for_token`): a person can do in the console what their token could.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import State

from api.console.session import ConsoleSession
from api.deps import principal_for_token
from api.errors import ApiError
from api.inbound import CheckedRoute
from api.oauth import InvalidToken, ProviderUnavailable, TokenValidator
from hub.permissions import ALL_SCOPES


class SignInFailed(Exception):
    """The OIDC round trip did not end in a sign-in: the sign-in page says why."""


def enabled(hub: State) -> bool:
    settings = hub.settings
    return bool(
        settings.oidc_issuer
        and settings.console_oidc_client_id
        and settings.console_oidc_client_secret.get_secret_value()
    )


def _validator(hub: State) -> TokenValidator:
    validator: TokenValidator | None = getattr(hub, "tokens", None)
    if validator is None or not enabled(hub):
        raise SignInFailed("sign-in with the identity provider is not configured")
    return validator


def redirect_uri(request: Request, hub: State) -> str:
    base = (hub.settings.public_url or str(request.base_url)).rstrip("/")
    if not hub.settings.public_url:
        # The console is mounted at /console: request.base_url ends with it.
        base = base.removesuffix("/console")
    return f"{base}/console/oidc/callback"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def start_url(request: Request, hub: State, session: ConsoleSession, target: str) -> str:
    """Where the browser goes to sign in; ``session`` keeps what the callback checks."""
    validator = _validator(hub)
    try:
        endpoint = (await validator.discovery()).get("authorization_endpoint")
    except ProviderUnavailable as exc:
        raise SignInFailed("the identity provider cannot be reached; try again") from exc
    if not isinstance(endpoint, str):
        raise SignInFailed("the identity provider names no authorization endpoint")
    verifier = secrets.token_urlsafe(48)
    session.pending = {
        "state": secrets.token_urlsafe(24),
        "nonce": secrets.token_urlsafe(24),
        "verifier": verifier,
        "next": target,
    }
    query = {
        "response_type": "code",
        "client_id": hub.settings.console_oidc_client_id,
        "redirect_uri": redirect_uri(request, hub),
        "scope": " ".join(["openid", "profile", *sorted(ALL_SCOPES)]),
        "resource": hub.settings.oidc_audience,
        "state": session.pending["state"],
        "nonce": session.pending["nonce"],
        "code_challenge": _challenge(verifier),
        "code_challenge_method": "S256",
    }
    return f"{endpoint}?{urlencode(query)}"


async def finish(request: Request, hub: State, session: ConsoleSession) -> ConsoleSession:
    """The signed-in session the provider's answer at the callback makes; SignInFailed if not."""
    pending = session.pending
    params = request.query_params
    if not pending:
        raise SignInFailed("no sign-in was under way in this browser: start again")
    if not hmac.compare_digest(params.get("state", "").encode(), pending["state"].encode()):
        raise SignInFailed("the answer is not for this sign-in (state): start again")
    if "error" in params:
        raise SignInFailed(f"the identity provider refused: {params.get('error')}")
    code = params.get("code")
    if not code:
        raise SignInFailed("the identity provider sent no code")
    validator = _validator(hub)
    settings = hub.settings
    try:
        endpoint = (await validator.discovery()).get("token_endpoint")
        async with httpx.AsyncClient(timeout=settings.http_timeout) as http:
            answer = await http.post(
                str(endpoint),
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri(request, hub),
                    "code_verifier": pending["verifier"],
                    "resource": settings.oidc_audience,
                },
                auth=(
                    settings.console_oidc_client_id,
                    settings.console_oidc_client_secret.get_secret_value(),
                ),
            )
    except (httpx.HTTPError, ProviderUnavailable) as exc:
        raise SignInFailed("the identity provider cannot be reached; try again") from exc
    if not answer.is_success:
        raise SignInFailed(f"the identity provider refused the code (HTTP {answer.status_code})")
    try:
        tokens: dict[str, Any] = dict(answer.json())
    except (ValueError, TypeError) as exc:
        raise SignInFailed("the identity provider's token answer is not a JSON object") from exc
    try:
        claims = await validator.validate_id_token(
            str(tokens.get("id_token", "")),
            audience=settings.console_oidc_client_id,
            nonce=pending["nonce"],
        )
        who = await principal_for_token(str(tokens.get("access_token", "")), validator)
    except (InvalidToken, ApiError, ProviderUnavailable) as exc:
        raise SignInFailed(f"the sign-in was not accepted: {exc}") from exc
    if who.subject != f"oidc:{claims['sub']}":
        raise SignInFailed("the ID token and the access token name different people")
    if who.partner_id is not None:
        raise SignInFailed("a partner's identity cannot sign in to the console")
    return ConsoleSession(
        subject=who.subject,
        method="oidc",
        scopes=sorted(who.scopes),
        groups=sorted(who.groups),
    )


def sign_in_routes(hub: State, render_sign_in: Any, safe_next: Any) -> APIRouter:
    """The two routes, on the console's own helpers for the sign-in page."""
    router = APIRouter(prefix="/oidc", route_class=CheckedRoute)

    @router.get("/start", include_in_schema=False)
    async def start(request: Request) -> Response:
        sessions = hub.console_sessions
        session, _ = sessions.open(request)
        session = session if session is not None and session.subject is None else ConsoleSession()
        try:
            url = await start_url(
                request, hub, session, safe_next(request.query_params.get("next"))
            )
        except SignInFailed as exc:
            return render_sign_in(request, session, str(exc), 503)
        response = RedirectResponse(url, status_code=303)
        sessions.write(response, session)
        return response

    @router.get("/callback", include_in_schema=False)
    async def callback(request: Request) -> Response:
        sessions = hub.console_sessions
        session, _ = sessions.open(request)
        if session is None:
            return render_sign_in(
                request, ConsoleSession(), "no sign-in was under way: start again", 400
            )
        try:
            signed_in = await finish(request, hub, session)
        except SignInFailed as exc:
            session.pending = {}
            return render_sign_in(request, session, str(exc), 401)
        response = RedirectResponse(session.pending.get("next", "/console/"), status_code=303)
        sessions.write(response, signed_in)
        return response

    return router
