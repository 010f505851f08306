"""OAuth2 bearer JWTs on the API: validation of access tokens from the configured issuer.

A token is accepted only when all of this holds (RFC 9068, RFC 8725):

- it is at most :data:`MAX_TOKEN_BYTES` long and has the three parts of a JWS;
- its header's ``typ`` is ``at+jwt`` (an ID token or any other JWT of the provider is not an
  access token), its ``alg`` one of :data:`ALGORITHMS` (asymmetric: never ``none``, never
  HS*), and its ``kid`` names a key of the issuer's JWKS whose type fits that ``alg``;
- the signature verifies (PyJWT with ``cryptography``: no crypto is written here);
- ``iss`` is ``HUB_OIDC_ISSUER``, ``aud`` contains ``HUB_OIDC_AUDIENCE``, ``exp`` is present
  and not past, ``nbf`` and ``iat`` not in the future (``HUB_OIDC_LEEWAY`` of skew).

The JWKS is found through the issuer's discovery document, kept ``HUB_OIDC_JWKS_CACHE``, and
fetched again when a token names a ``kid`` it lacks (the provider rotated its keys), at most
once per ``HUB_OIDC_JWKS_REFETCH_INTERVAL``: made-up ``kid``s cannot make the API hammer the
provider. Symmetric keys (``kty: oct``), encryption keys, and private members in the JWKS are
ignored. Fetching is async (httpx); one fetch at a time, the others wait for its result.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt import PyJWK

from hub.permissions import ALL_SCOPES
from hub.settings import Settings, insecure_url

logger = logging.getLogger(__name__)

#: The signature algorithms accepted: asymmetric only. A resource server that accepted HS*
#: could be handed a token "signed" with the provider's public key as the HMAC secret.
ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: The key type each algorithm family needs (alg confusion across key types is refused).
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
#: RFC 9068's media type of JWT access tokens, and its short form.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
#: Longer tokens are refused before anything is decoded: a real one is well under 2 KB.
MAX_TOKEN_BYTES = 8 * 1024
#: Public members of a JWK: private ones ("d", "p", "k"...) in a published JWKS are dropped.
_PUBLIC_MEMBERS = frozenset({"kty", "kid", "use", "alg", "crv", "x", "y", "n", "e"})
#: A JWS in compact form: three base64url parts.
_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_PARTNER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_DISCOVERY_PATH = "/.well-known/openid-configuration"
#: Seconds between tries while no key could be fetched at all (the provider is down).
_RETRY_WITHOUT_KEYS = 1.0


def looks_like_jwt(credential: str) -> bool:
    """True when a bearer credential has a JWS's shape (API keys never have two dots)."""
    return credential.count(".") == 2


class InvalidToken(Exception):
    """The token is not one the API accepts (401). The message says why, never the token."""


class ProviderUnavailable(Exception):
    """The issuer's keys cannot be had: the token cannot be judged now (503)."""


@dataclass(frozen=True)
class AccessToken:
    """What a validated token says about its bearer."""

    subject: str
    client_id: str | None
    scopes: frozenset[str]
    partner_id: str | None
    groups: frozenset[str]
    claims: Mapping[str, Any]


class TokenValidator:
    """Validates access tokens of ``settings.oidc_issuer`` for ``settings.oidc_audience``.

    ``client`` lets tests inject an ``httpx.AsyncClient``; ``clock`` a monotonic clock for the
    JWKS cache (token times are checked against the wall clock, by PyJWT).
    """

    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuer = settings.oidc_issuer
        self._audience = settings.oidc_audience
        self._leeway = settings.oidc_leeway.total_seconds()
        self._cache_for = settings.oidc_jwks_cache.total_seconds()
        self._refetch_after = settings.oidc_jwks_refetch_interval.total_seconds()
        self._owns_client = client is None
        self._http = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.http_timeout),
            headers={"Accept": "application/json", "User-Agent": "telecom-hub"},
        )
        self._clock = clock
        self._lock = asyncio.Lock()
        self._jwks_uri: str | None = None
        self._discovery: dict[str, Any] | None = None
        self._keys: dict[str, dict[str, Any]] | None = None
        #: When the keys were last fetched, and when a fetch was last tried (success or not).
        self._fetched_at = float("-inf")
        self._tried_at = float("-inf")
        #: How many times the JWKS was fetched: the rate limit's test reads it.
        self.fetches = 0

    async def aclose(self) -> None:
        if self._owns_client:
            await self._http.aclose()

    async def validate(self, token: str) -> AccessToken:
        """The token's bearer; :class:`InvalidToken` or :class:`ProviderUnavailable` if not."""
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token too long")
        if not _COMPACT_JWS.match(token):
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token header") from exc
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidToken("signature algorithm not accepted")
        if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken("not an access token (typ must be at+jwt)")
        if "crit" in header:
            raise InvalidToken("critical header extensions are not understood")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token names no signing key (kid)")
        jwk = await self._key(kid)
        if jwk.get("alg", alg) != alg or _KEY_TYPE[alg[:2]] != jwk.get("kty"):
            raise InvalidToken("signature algorithm does not fit the key")
        try:
            key = PyJWK(jwk, algorithm=alg)
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"], "verify_signature": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("token not valid yet") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("token from another issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token lacks the claim {exc.claim!r}") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("signature does not verify") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("token not accepted") from exc
        return _bearer(claims)

    async def _key(self, kid: str) -> dict[str, Any]:
        """The JWK ``kid`` of the issuer; fetches the JWKS when stale or when ``kid`` is new."""
        now = self._clock()
        stale = self._keys is None or now - self._fetched_at >= self._cache_for
        unknown = self._keys is not None and kid not in self._keys
        # Every fetch, failed or not, is rate-limited; without any keys yet, less strictly.
        interval = _RETRY_WITHOUT_KEYS if self._keys is None else self._refetch_after
        if (stale or unknown) and now - self._tried_at >= interval:
            await self._refresh(stale_before=now)
        if self._keys is None:
            raise ProviderUnavailable("the identity provider's keys cannot be fetched")
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("token signed by an unknown key")
        return key

    async def _refresh(self, *, stale_before: float) -> None:
        async with self._lock:
            # Another request fetched (or tried) while this one waited: use its result.
            if self._tried_at >= stale_before:
                return
            self._tried_at = self._clock()
            try:
                keys = await self._fetch_keys()
            except ProviderUnavailable as exc:
                # Keys fetched before stay in use: a provider down for a moment must not turn
                # every valid token away.
                logger.warning("JWKS not fetched", extra={"system": "idp", "reason": str(exc)})
                return
            self._keys = keys
            self._fetched_at = self._tried_at
            self.fetches += 1

    async def discovery(self) -> dict[str, Any]:
        """The issuer's discovery document (fetched once): the console's sign-in reads its
        authorization and token endpoints."""
        if self._discovery is None:
            url = self._issuer.rstrip("/") + _DISCOVERY_PATH
            document = await self._get_json(url)
            if document.get("issuer") != self._issuer:
                raise ProviderUnavailable(f"{url} names another issuer")
            self._discovery = document
        return self._discovery

    async def validate_id_token(self, token: str, *, audience: str, nonce: str) -> dict[str, Any]:
        """The claims of an OpenID Connect ID token of the issuer for ``audience`` (a client
        id) carrying ``nonce``; :class:`InvalidToken` if it is not one."""
        if len(token) > MAX_TOKEN_BYTES or not _COMPACT_JWS.match(token):
            raise InvalidToken("malformed ID token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed ID token header") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS or not isinstance(kid, str):
            raise InvalidToken("ID token signature algorithm or key not accepted")
        jwk = await self._key(kid)
        if jwk.get("alg", alg) != alg or _KEY_TYPE[alg[:2]] != jwk.get("kty"):
            raise InvalidToken("signature algorithm does not fit the key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=PyJWK(jwk, algorithm=alg),
                algorithms=[alg],
                audience=audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"ID token not accepted ({type(exc).__name__})") from exc
        if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(
            claims["nonce"].encode(), nonce.encode()
        ):
            raise InvalidToken("ID token nonce does not match the sign-in")
        return claims

    async def _fetch_keys(self) -> dict[str, dict[str, Any]]:
        if self._jwks_uri is None:
            url = self._issuer.rstrip("/") + _DISCOVERY_PATH
            document = await self.discovery()
            jwks_uri = document.get("jwks_uri")
            if not isinstance(jwks_uri, str) or insecure_url(jwks_uri):
                raise ProviderUnavailable(f"{url} has no usable jwks_uri")
            self._jwks_uri = jwks_uri
        jwks = await self._get_json(self._jwks_uri)
        keys: dict[str, dict[str, Any]] = {}
        for jwk in jwks.get("keys", []) if isinstance(jwks.get("keys"), list) else []:
            if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
                continue
            if jwk.get("kty") not in ("RSA", "EC", "OKP") or jwk.get("use", "sig") != "sig":
                continue  # symmetric and encryption keys never verify a token here
            public = {name: value for name, value in jwk.items() if name in _PUBLIC_MEMBERS}
            try:
                PyJWK(public)  # parses: a malformed key is dropped now, not at each token
            except jwt.PyJWTError:
                continue
            keys[jwk["kid"]] = public
        return keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{type(exc).__name__} on GET {url}") from exc
        if not response.is_success:
            raise ProviderUnavailable(f"HTTP {response.status_code} on GET {url}")
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderUnavailable(f"GET {url}: not JSON") from exc
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"GET {url}: not a JSON object")
        return body


def _bearer(claims: dict[str, Any]) -> AccessToken:
    """Who the claims describe. Scopes are the hub's only (never ``*``); ``partner_id``, when
    present, must be an identifier; a partner has no task groups."""
    subject = claims.get("sub") or claims.get("client_id")
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("token names no subject")
    client_id = claims.get("client_id")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise InvalidToken("scope must be a string")
    partner_id = claims.get("partner_id")
    if partner_id is not None and (
        not isinstance(partner_id, str) or not _PARTNER_ID.fullmatch(partner_id)
    ):
        raise InvalidToken("partner_id is not an identifier")
    groups = claims.get("groups", [])
    if partner_id is not None or not isinstance(groups, list):
        groups = []
    return AccessToken(
        subject=subject,
        client_id=client_id if isinstance(client_id, str) else None,
        scopes=frozenset(scope.split()) & ALL_SCOPES,
        partner_id=partner_id,
        groups=frozenset(g for g in groups if isinstance(g, str) and g != "*"),
        claims=claims,
    )
