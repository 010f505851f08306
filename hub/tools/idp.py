"""The development OpenID provider (``idp/server.mjs``, oidc-provider on Node.js): its keys,
its command line, its environment, and readiness; used by the dev stack and the tests.

The provider signs with the private JWKs of a file written here (never committed). Rotation:
:func:`rotate_keys` writes a new key first and the current ones after it, then sends SIGHUP;
the provider re-reads the file, signs with the new key and still publishes the old ones.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from hub.permissions import ALL_SCOPES
from hub.settings import REPO_ROOT

IDP_DIR = REPO_ROOT / "idp"
SERVER = IDP_DIR / "server.mjs"
DEFAULT_PORT = 8110
DISCOVERY_PATH = "/.well-known/openid-configuration"


class IdpUnavailable(RuntimeError):
    """The provider cannot be started here (no Node.js, packages not installed) or did not
    come up; the message says what to do."""


def node_binary() -> str:
    found = shutil.which("node")
    if not found:
        raise IdpUnavailable("Node.js (`node`, 20.19 or newer) is needed for the OpenID provider")
    return found


def command() -> list[str]:
    """The provider's command line; refuses when ``npm ci`` has not installed it."""
    if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        raise IdpUnavailable(
            f"the OpenID provider's packages are not installed: run `npm ci` in {IDP_DIR} "
            "(`make install` does)"
        )
    return [node_binary(), str(SERVER)]


def generate_signing_key(kid: str | None = None) -> dict[str, Any]:
    """A fresh private EC P-256 JWK for ES256, with a random ``kid`` unless one is given."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key))
    return jwk | {"kid": kid or f"es256-{secrets.token_hex(4)}", "alg": "ES256", "use": "sig"}


def write_keys(path: Path, keys: list[dict[str, Any]]) -> None:
    """Write ``keys`` (the first signs) to ``path``, readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.touch(mode=0o600)
    partial.write_text(json.dumps({"keys": keys}), encoding="utf-8")
    partial.replace(path)


def read_keys(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text(encoding="utf-8"))["keys"])


def ensure_keys(path: Path) -> list[dict[str, Any]]:
    """The keys in ``path``, made (one fresh key) when the file does not exist yet."""
    if not path.exists():
        write_keys(path, [generate_signing_key()])
    return read_keys(path)


def environment(
    *,
    issuer: str,
    keys_file: Path,
    initial_access_token: str,
    audience: str,
    state_file: Path | None = None,
    access_token_ttl: int | None = None,
    console_file: Path | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The provider's environment (see ``idp/server.mjs``): the hub's scopes are its scopes."""
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "IDP_ISSUER": issuer,
            "IDP_JWKS_FILE": str(keys_file),
            "IDP_INITIAL_ACCESS_TOKEN": initial_access_token,
            "IDP_AUDIENCE": audience,
            "IDP_SCOPES": " ".join(sorted(ALL_SCOPES)),
            # oidc-provider warns on each start that it prefers Node.js 22; 20 is supported.
            "NODE_NO_WARNINGS": "1",
        }
    )
    if state_file is not None:
        env["IDP_STATE_FILE"] = str(state_file)
    if access_token_ttl is not None:
        env["IDP_ACCESS_TOKEN_TTL"] = str(access_token_ttl)
    if console_file is not None:
        env["IDP_CONSOLE_FILE"] = str(console_file)
    return env


def write_console_file(
    path: Path,
    *,
    client_id: str,
    client_secret: str,
    redirect_uris: list[str],
    people: list[dict[str, object]],
) -> None:
    """The console's client at the provider and the people who sign in to it (development
    only: the passwords are in the file): ``people`` items have ``username``, ``password``,
    ``name``, ``groups`` and ``scopes``."""
    body = {
        "client": {
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uris": redirect_uris,
        },
        "people": people,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(body, indent=2))
    partial.chmod(0o600)
    partial.replace(path)


def discovery_ok(issuer: str) -> bool:
    """The provider answers its discovery document, for this issuer."""
    try:
        response = httpx.get(issuer + DISCOVERY_PATH, timeout=2.0)
        return response.status_code == 200 and response.json().get("issuer") == issuer
    except (httpx.HTTPError, ValueError):
        return False


def wait_until_ready(
    issuer: str, process: subprocess.Popen[bytes], *, timeout: float = 30.0, log: Path | None = None
) -> None:
    """Poll the discovery document until it answers; fail at the deadline or if the process
    exits first (showing the end of its log)."""
    deadline = time.monotonic() + timeout
    while not discovery_ok(issuer):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            state = "exited" if process.poll() is not None else f"not up within {timeout:.0f} s"
            raise IdpUnavailable(f"the OpenID provider at {issuer} {state}: {tail}")
        time.sleep(0.05)  # start-up poll of another process, bounded by the deadline


def published_kids(issuer: str) -> list[str]:
    document = httpx.get(issuer + DISCOVERY_PATH, timeout=5.0).json()
    jwks = httpx.get(document["jwks_uri"], timeout=5.0).json()
    return [key["kid"] for key in jwks["keys"]]


def rotate_keys(
    issuer: str, process: subprocess.Popen[bytes], keys_file: Path, *, timeout: float = 10.0
) -> dict[str, Any]:
    """Rotate the provider's signing key without a restart: a new key first (it signs), the
    current ones after it (still published, so issued tokens stay valid); answers the new key
    once the provider publishes it."""
    new = generate_signing_key()
    write_keys(keys_file, [new, *read_keys(keys_file)])
    process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while new["kid"] not in published_kids(issuer):
        if time.monotonic() > deadline:
            raise IdpUnavailable(f"the provider did not publish key {new['kid']} after SIGHUP")
        time.sleep(0.05)  # poll of another process, bounded by the deadline
    return new
