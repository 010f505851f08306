"""The console's session: who signed in, for how long, and the CSRF token of their forms.

The session is a cookie holding a Fernet token (``cryptography``: AES-128-CBC and
HMAC-SHA256, with the time it was made), so it is encrypted and signed by a library, and its
age is checked by the same call that opens it (``decrypt(ttl=...)``). It carries the
identity's *subject* and how it signed in, never a key or a token: for an API key, the subject
is looked up again in the hub's current API clients on every request, so a removed key or
changed scopes take effect at once; for OpenID Connect, the scopes and groups of the access
token the provider issued at sign-in, for the session's life. It is ``HttpOnly`` (no script
reads it), ``SameSite=Lax`` (no other site's form or script sends it on a POST), ``Secure`` in
production, and ends after ``HUB_CONSOLE_SESSION_TTL``.

CSRF: every session, the signed-out one of the sign-in page too, carries a random token; every
form sends it in a hidden field and every POST is refused (403) unless the field equals the
session's (compared in constant time). A forged request from another site has neither the
cookie (SameSite) nor the token.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from fastapi import Request, Response

from api.deps import Principal, _credentials
from hub.settings import Settings

COOKIE = "hub_console"
PATH = "/console"
#: The hidden form field every POST carries.
CSRF_FIELD = "csrf"


@dataclass
class ConsoleSession:
    """What the cookie holds. ``subject`` None: nobody signed in (the sign-in page)."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    subject: str | None = None
    #: How they signed in: ``api-key`` or ``oidc``.
    method: str | None = None
    #: An OIDC identity's scopes and groups, from the access token its provider issued.
    scopes: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    #: The OIDC round trip under way: its state, nonce, PKCE verifier and where it returns.
    pending: dict[str, str] = field(default_factory=dict)
    #: Messages for the next page (after a redirect), shown once: ``{"kind", "text"}``.
    flash: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> bytes:
        return json.dumps(self.__dict__, separators=(",", ":")).encode()


class Sessions:
    """Opens and seals session cookies with the console's key."""

    def __init__(self, settings: Settings) -> None:
        key = settings.console_session_key.get_secret_value()
        # Outside production (settings refuse it there), a key of this process's own.
        self._fernet = Fernet(key.encode() if key else Fernet.generate_key())
        self._ttl = int(settings.console_session_ttl.total_seconds())
        self._secure = settings.environment == "production"
        self.settings = settings

    def seal(self, session: ConsoleSession, *, at: float | None = None) -> str:
        data = session.as_json()
        if at is not None:
            return self._fernet.encrypt_at_time(data, int(at)).decode()
        return self._fernet.encrypt(data).decode()

    def open(self, request: Request) -> tuple[ConsoleSession | None, bool]:
        """The request's session, and whether a cookie was there but expired or forged."""
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None, False
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(cookie, ttl=self._ttl))
            return ConsoleSession(**data), False
        except (InvalidToken, ValueError, TypeError):
            return None, True

    def write(self, response: Response, session: ConsoleSession) -> None:
        response.set_cookie(
            COOKIE,
            self.seal(session),
            max_age=self._ttl,
            path=PATH,
            httponly=True,
            secure=self._secure,
            samesite="lax",
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path=PATH, httponly=True, secure=self._secure)

    def principal(self, session: ConsoleSession) -> Principal | None:
        """Who the session is, as the API would authenticate them now; None if no longer."""
        if session.subject is None:
            return None
        if session.method == "api-key":
            for _, principal in _credentials(self.settings):
                if principal.subject == session.subject:
                    return principal
            return None
        if session.method == "oidc":
            return Principal(
                subject=session.subject,
                scopes=frozenset(session.scopes),
                groups=frozenset(session.groups),
                authenticated_by="oidc",
            )
        return None


def csrf_ok(session: ConsoleSession | None, offered: str | None) -> bool:
    """Whether a form's CSRF field is the session's token."""
    if session is None or not offered:
        return False
    return hmac.compare_digest(session.csrf.encode(), offered.encode())
