"""The identity provider (OpenID Connect): partners' OAuth2 clients, registered and deleted.

The hub registers one client per wholesale partner through Dynamic Client Registration
(RFC 7591), authorised by the initial access token ``HUB_OIDC_REGISTRATION_TOKEN``, and deletes
it through the client's own registration access token (RFC 7592). Endpoints come from the
provider's discovery document (``<issuer>/.well-known/openid-configuration``).

A registered client may use the client-credentials grant only, with the scopes given, and
carries the ``partner_id`` the provider puts into its access tokens: the API knows the partner
from the token alone. Only the hub can set it (it holds the initial access token).

Every failure is one of the hub's errors with ``system="idp"`` (:mod:`hub.errors`); no httpx
exception leaves this module. Secrets (client secrets, tokens) never appear in messages or
logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from adapters.rest import error_for_response
from hub.errors import HubError, PermanentError, TransientError
from hub.settings import Settings

logger = logging.getLogger(__name__)

SYSTEM = "idp"
DISCOVERY_PATH = "/.well-known/openid-configuration"
#: Statuses of a ``DELETE`` on a client that is already gone: its registration access token
#: died with it (401), or the provider no longer knows the client (404).
_ALREADY_GONE = frozenset({401, 404})


@dataclass(frozen=True)
class RegisteredClient:
    """A client the provider registered: what the partner needs, and what the hub keeps to
    delete it. ``client_secret`` and ``registration_access_token`` are secrets."""

    client_id: str
    client_secret: str = field(repr=False)
    registration_access_token: str = field(repr=False)
    registration_client_uri: str


class IdentityProviderClient:
    """The hub's client of the OpenID provider at ``settings.oidc_issuer``.

    ``client`` lets tests inject an ``httpx.AsyncClient`` (e.g. on ``httpx.MockTransport``);
    one made here is closed by :meth:`aclose`.
    """

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        if not settings.oidc_issuer:
            raise PermanentError("HUB_OIDC_ISSUER is not set: no identity provider", system=SYSTEM)
        self._issuer = settings.oidc_issuer.rstrip("/")
        self._initial_token = settings.oidc_registration_token
        self._configured_token_endpoint = settings.oidc_token_endpoint
        self._owns_client = client is None
        self._http = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.http_timeout),
            headers={"Accept": "application/json", "User-Agent": "telecom-hub"},
        )
        self._discovery: dict[str, Any] | None = None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._http.aclose()

    async def __aenter__(self) -> IdentityProviderClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    @property
    def token_endpoint(self) -> str:
        """Where a client exchanges its credentials for a token: ``HUB_OIDC_TOKEN_ENDPOINT``,
        else the discovery document's, known after :meth:`discover` or any other call (a
        :class:`PermanentError` before)."""
        if self._configured_token_endpoint:
            return self._configured_token_endpoint
        if self._discovery is None:
            raise PermanentError(
                "the token endpoint is not known yet: call discover() first", system=SYSTEM
            )
        return str(self._discovery["token_endpoint"])

    async def discover(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once). Its ``issuer`` must be the one
        configured (OpenID Connect Discovery 1.0, section 4.3)."""
        if self._discovery is None:
            url = self._issuer + DISCOVERY_PATH
            document = _json_object(await self._send("GET", url), url)
            if str(document.get("issuer", "")).rstrip("/") != self._issuer:
                raise PermanentError(
                    f"{url} names the issuer {document.get('issuer')!r}, not {self._issuer!r}",
                    system=SYSTEM,
                )
            for name in ("token_endpoint", "registration_endpoint"):
                if not isinstance(document.get(name), str):
                    raise PermanentError(f"{url} has no {name}", system=SYSTEM)
            self._discovery = document
        return self._discovery

    async def register_client(
        self, *, client_name: str, scopes: list[str], partner_id: str
    ) -> RegisteredClient:
        """Register a client-credentials client for a partner (RFC 7591).

        Raises :class:`AuthenticationError` when the provider refuses the initial access token,
        :class:`PermanentError` when it refuses the metadata (an unknown scope), and
        :class:`TransientError` when it cannot be reached or fails. Not idempotent (RFC 7591
        has no key): a caller that retries after a lost reply may leave a client behind,
        which it can only delete if it got the reply.
        """
        initial = self._initial_token.get_secret_value()
        if not initial:
            raise PermanentError(
                "HUB_OIDC_REGISTRATION_TOKEN is not set: clients cannot be registered",
                system=SYSTEM,
            )
        document = await self.discover()
        endpoint = str(document["registration_endpoint"])
        metadata = {
            "client_name": client_name,
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": " ".join(scopes),
            "partner_id": partner_id,
        }
        response = await self._send(
            "POST", endpoint, json=metadata, headers={"Authorization": f"Bearer {initial}"}
        )
        body = _json_object(response, endpoint)
        try:
            client = RegisteredClient(
                client_id=str(body["client_id"]),
                client_secret=str(body["client_secret"]),
                registration_access_token=str(body["registration_access_token"]),
                registration_client_uri=str(body["registration_client_uri"]),
            )
        except KeyError as exc:
            raise PermanentError(
                f"the registration reply lacks {exc.args[0]!r}", system=SYSTEM
            ) from exc
        logger.info(
            "client registered at the identity provider",
            extra={"system": SYSTEM, "client_id": client.client_id, "partner_id": partner_id},
        )
        return client

    async def delete_client(
        self, registration_client_uri: str, registration_access_token: str
    ) -> None:
        """Delete a registered client (RFC 7592); one already gone is success.

        The URI must be on the origin of the provider's registration endpoint: the
        registration access token is sent to no other server, whatever a stored URI says.
        """
        registration = str((await self.discover())["registration_endpoint"])
        if _origin(registration_client_uri) != _origin(registration):
            raise PermanentError(
                f"registration_client_uri {registration_client_uri!r} is not on the origin "
                f"of the provider's registration endpoint {registration!r}",
                system=SYSTEM,
            )
        await self._send(
            "DELETE",
            registration_client_uri,
            headers={"Authorization": f"Bearer {registration_access_token}"},
            ok_statuses=_ALREADY_GONE,
        )
        logger.info(
            "client deleted at the identity provider",
            extra={"system": SYSTEM, "registration_client_uri": registration_client_uri},
        )

    async def _send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        ok_statuses: frozenset[int] = frozenset(),
    ) -> httpx.Response:
        path = urlsplit(url).path
        try:
            response = await self._http.request(method, url, json=json, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientError(f"timeout on {method} {path}", system=SYSTEM) from exc
        except httpx.TransportError as exc:
            raise TransientError(f"{type(exc).__name__} on {method} {path}", system=SYSTEM) from exc
        if response.is_success or response.status_code in ok_statuses:
            return response
        error: HubError = error_for_response(SYSTEM, response)
        logger.info(
            "outside call failed",
            extra={"system": SYSTEM, "status": response.status_code, "path": path},
        )
        raise error


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _json_object(response: httpx.Response, url: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise PermanentError(f"the reply of {url} is not JSON", system=SYSTEM) from exc
    if not isinstance(body, dict):
        raise PermanentError(f"the reply of {url} is not a JSON object", system=SYSTEM)
    return body
