"""The API's bearer-JWT validator against a local JWKS (MockTransport), and the attacks on it.

The same validator against the real provider is in ``test_oauth_api.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.deps import principal_for_token
from api.errors import ApiError
from api.oauth import MAX_TOKEN_BYTES, InvalidToken, ProviderUnavailable, TokenValidator
from hub.settings import Settings

ISSUER = "http://127.0.0.1:8110"
AUDIENCE = "urn:telecom-hub:api"


def public_jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = (
        jwt.algorithms.ECAlgorithm
        if isinstance(key, ec.EllipticCurvePrivateKey)
        else (jwt.algorithms.RSAAlgorithm)
    )
    jwk = json.loads(algorithm.to_jwk(key.public_key()))
    return jwk | {"kid": kid, "use": "sig"}


class Provider:
    """Discovery and JWKS served from memory; counts the JWKS fetches."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.up = True
        self.jwks_fetches = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("refused", request=request)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"})
        if request.url.path == "/jwks":
            self.jwks_fetches += 1
            return httpx.Response(200, json={"keys": self.keys})
        return httpx.Response(404)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def provider(signing_key: ec.EllipticCurvePrivateKey) -> Provider:
    served = Provider()
    served.keys = [public_jwk(signing_key, "k1")]
    return served


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def validator(provider: Provider, clock: Clock) -> TokenValidator:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_leeway=timedelta(seconds=5),
        oidc_jwks_refetch_interval=timedelta(seconds=30),
    )
    return TokenValidator(
        settings, httpx.AsyncClient(transport=httpx.MockTransport(provider.handler)), clock
    )


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "client-1",
        "client_id": "client-1",
        "iat": now,
        "exp": now + 300,
        "scope": "orders:read orders:write",
    }
    return {k: v for k, v in (values | overrides).items() if v is not None}


def sign(
    key: Any, payload: dict[str, Any], *, kid: str = "k1", alg: str = "ES256", **header: Any
) -> str:
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid, "typ": "at+jwt"} | header)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_valid_token(validator: TokenValidator, signing_key: Any) -> None:
    token = sign(signing_key, claims(partner_id="p-1", scope="orders:read codec:decode * x"))
    bearer = await validator.validate(token)
    assert bearer.subject == "client-1" and bearer.partner_id == "p-1"
    # Unknown scopes and the wildcard are dropped: a token never holds `*`.
    assert bearer.scopes == {"orders:read", "codec:decode"}


#: Times relative to when the test runs (the list is built at collection, minutes earlier in
#: the whole suite): ``"now+600"``.
CASES: list[tuple[dict[str, Any], str]] = [
    ({"exp": "now-60"}, "expired"),
    ({"exp": None}, "lacks the claim 'exp'"),
    ({"aud": "urn:other:api"}, "another audience"),
    ({"aud": None}, "lacks the claim 'aud'"),
    ({"iss": "http://127.0.0.1:9999"}, "another issuer"),
    ({"nbf": "now+600"}, "not valid yet"),
    ({"iat": "now+600"}, "not valid yet"),
    ({"sub": None, "client_id": None}, "no subject"),
    ({"partner_id": "../other"}, "partner_id"),
    ({"partner_id": 7}, "partner_id"),
]


def _at_run_time(overrides: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time())
    return {
        name: now + int(value.removeprefix("now")) if str(value).startswith("now") else value
        for name, value in overrides.items()
    }


@pytest.mark.parametrize(("overrides", "reason"), CASES)
async def test_claims_are_checked(
    validator: TokenValidator, signing_key: Any, overrides: dict[str, Any], reason: str
) -> None:
    payload = claims(**_at_run_time(overrides))
    with pytest.raises(InvalidToken, match=reason):
        await validator.validate(sign(signing_key, payload))


async def test_alg_none_is_refused(validator: TokenValidator, provider: Provider) -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": "k1"}
    for token in (f"{b64(header)}.{b64(claims())}.", f"{b64(header)}.{b64(claims())}.AAAA"):
        with pytest.raises(InvalidToken):
            await validator.validate(token)
    assert provider.jwks_fetches == 0


async def test_hmac_with_the_public_key_as_secret_is_refused(
    validator: TokenValidator, provider: Provider, signing_key: Any
) -> None:
    # The classic alg confusion: HS256 "signed" with the provider's public key.
    pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": "k1"}
    signing_input = f"{b64(header)}.{b64(claims())}".encode()
    signature = base64.urlsafe_b64encode(hmac.new(pem, signing_input, hashlib.sha256).digest())
    token = signing_input.decode() + "." + signature.rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="algorithm not accepted"):
        await validator.validate(token)


async def test_a_symmetric_key_in_the_jwks_is_never_used(
    validator: TokenValidator, provider: Provider
) -> None:
    secret = b"shared-secret-of-32-bytes-length!"
    provider.keys.append(
        {"kty": "oct", "kid": "hs", "k": base64.urlsafe_b64encode(secret).decode().rstrip("=")}
    )
    with pytest.raises(InvalidToken):
        await validator.validate(
            jwt.encode(claims(), secret, "HS256", {"kid": "hs", "typ": "at+jwt"})
        )
    # Even under an asymmetric alg name the oct key is not there to be confused with.
    with pytest.raises(InvalidToken, match="unknown key"):
        await validator.validate(sign(ec.generate_private_key(ec.SECP256R1()), claims(), kid="hs"))


async def test_alg_must_fit_the_key_type(validator: TokenValidator, provider: Provider) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    provider.keys.append(public_jwk(rsa_key, "r1"))
    # An ES256 token naming the RSA key, and an RSA-signed token naming the EC key.
    with pytest.raises(InvalidToken, match="does not fit"):
        await validator.validate(sign(ec.generate_private_key(ec.SECP256R1()), claims(), kid="r1"))
    with pytest.raises(InvalidToken, match="does not fit"):
        await validator.validate(sign(rsa_key, claims(), kid="k1", alg="RS256"))
    assert (await validator.validate(sign(rsa_key, claims(), kid="r1", alg="PS256"))).subject


async def test_a_foreign_key_under_a_known_kid_does_not_verify(validator: TokenValidator) -> None:
    foreign = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InvalidToken, match="does not verify"):
        await validator.validate(sign(foreign, claims()))


async def test_id_tokens_and_plain_jwts_are_not_access_tokens(
    validator: TokenValidator, signing_key: Any
) -> None:
    for typ in ("JWT", "id_token+jwt"):
        with pytest.raises(InvalidToken, match="typ"):
            await validator.validate(sign(signing_key, claims(), typ=typ))
    with pytest.raises(InvalidToken):  # an extension the API would not understand
        await validator.validate(sign(signing_key, claims(), crit=["exp"]))


async def test_huge_and_malformed_tokens_are_refused_without_fetching_keys(
    validator: TokenValidator, provider: Provider, signing_key: Any
) -> None:
    huge = sign(signing_key, claims(padding="x" * MAX_TOKEN_BYTES))
    for token in (huge, "a.b.c", "not a token", "a.b", "eyJ.eyJ.\n"):
        with pytest.raises(InvalidToken):
            await validator.validate(token)
    assert provider.jwks_fetches == 0


async def test_unknown_kids_refetch_the_jwks_at_most_once_per_interval(
    validator: TokenValidator, provider: Provider, signing_key: Any, clock: Clock
) -> None:
    await validator.validate(sign(signing_key, claims()))
    assert provider.jwks_fetches == 1
    for attempt in range(50):
        with pytest.raises(InvalidToken, match="unknown key"):
            await validator.validate(sign(signing_key, claims(), kid=f"made-up-{attempt}"))
    assert provider.jwks_fetches == 1
    clock.now += 31
    with pytest.raises(InvalidToken, match="unknown key"):
        await validator.validate(sign(signing_key, claims(), kid="made-up-again"))
    assert provider.jwks_fetches == 2


async def test_rotation_a_new_kid_is_fetched(
    validator: TokenValidator, provider: Provider, signing_key: Any, clock: Clock
) -> None:
    await validator.validate(sign(signing_key, claims()))
    new_key = ec.generate_private_key(ec.SECP256R1())
    provider.keys.insert(0, public_jwk(new_key, "k2"))
    clock.now += 31
    assert (await validator.validate(sign(new_key, claims(), kid="k2"))).subject == "client-1"
    assert (await validator.validate(sign(signing_key, claims()))).subject == "client-1"


async def test_provider_down(
    validator: TokenValidator, provider: Provider, signing_key: Any, clock: Clock
) -> None:
    provider.up = False
    with pytest.raises(ProviderUnavailable):
        await validator.validate(sign(signing_key, claims()))
    provider.up = True
    clock.now += 2
    await validator.validate(sign(signing_key, claims()))
    # Down again after the cache expired: the keys fetched before keep serving.
    provider.up = False
    clock.now += 3600
    assert (await validator.validate(sign(signing_key, claims()))).subject == "client-1"


async def test_partner_tokens_are_limited_to_partner_scopes(
    validator: TokenValidator, signing_key: Any
) -> None:
    token = sign(
        signing_key,
        claims(partner_id="p-1", scope="orders:read tasks:decide codec:decode", groups=["ops"]),
    )
    principal = await principal_for_token(token, validator)
    assert principal.subject == "oidc:client-1" and principal.partner_id == "p-1"
    assert principal.scopes == {"orders:read"} and not principal.groups
    operator = await principal_for_token(
        sign(signing_key, claims(scope="tasks:decide", groups=["ops", "*"])), validator
    )
    assert operator.partner_id is None and operator.groups == {"ops"}


async def test_refusal_is_a_bearer_challenge(validator: TokenValidator, signing_key: Any) -> None:
    with pytest.raises(ApiError) as caught:
        await principal_for_token(sign(signing_key, claims(exp=int(time.time()) - 60)), validator)
    assert caught.value.status == 401
    assert caught.value.headers is not None
    assert 'error="invalid_token"' in caught.value.headers["WWW-Authenticate"]
    with pytest.raises(ApiError) as off:
        await principal_for_token(sign(signing_key, claims()), None)
    assert off.value.status == 401


def test_with_oauth2_on_no_api_key_may_look_like_a_jwt() -> None:
    with pytest.raises(ValueError, match="two dots"):
        Settings(_env_file=None, oidc_issuer=ISSUER, api_key=["a.b.c"])  # type: ignore[call-arg]
    # With OAuth2 off such a key is a key like any other.
    assert Settings(_env_file=None, api_key=["a.b.c"]).api_key == ["a.b.c"]  # type: ignore[call-arg]
