"""Sealing of subscriber secrets (Ki, OPc, OP): field by field, to a key the codec never holds.

Payload encryption (:mod:`hub.codec`) keeps Temporal's server and database from reading
histories, but the codec service decrypts every payload for the Web UI, so a key carried in a
payload would be shown to whoever may use the UI. A secret field is therefore sealed on its
own, and what travels through the workflow (and what the UI shows) is a token::

    sealed:v1:<key id>:<base64(ephemeral public key | nonce | ciphertext | tag)>

Sealing is public-key encryption (X25519 key agreement, HKDF-SHA256, AES-256-GCM): the API
seals with the *public* half (``HUB_SEAL_PUBLIC_KEY``), which cannot unseal; only the worker,
which runs the HSS activity, holds the private halves (``HUB_SEAL_KEYS``). So the API process,
which also serves ``/codec`` to browsers, has nothing that opens a token, whoever reaches it.

The associated data binds a token to its field name and its subscriber (the IMSI): a token
moved to another field (``ki`` into ``opc``) or to another subscriber fails to unseal.

Rotation: generate a new key pair, add its private half *first* to ``HUB_SEAL_KEYS`` on every
worker, then give the API its public half. Every configured private key unseals, so tokens
sealed under the old key id keep working; drop the old private key once no history that holds
its tokens can still run.

Errors name the field and the key id, never a value, a token or key material.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "sealed:"
VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
_TAG_BYTES = 16
_HKDF_INFO = b"telecom-hub seal v1"


class SealError(Exception):
    """A value could not be sealed or unsealed; the message names field and key id only."""

    def __init__(self, message: str, *, field: str, key_id: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.key_id = key_id


class UnknownSealKeyError(SealError):
    """The token names a key id this process does not hold (not rolled out, or dropped)."""


class InvalidSealedValueError(SealError):
    """The token is malformed, was altered, or belongs to another field or subscriber."""


def is_sealed(value: object) -> bool:
    """Whether ``value`` is a sealed token (values from before sealing are plain hex)."""
    return isinstance(value, str) and value.startswith(PREFIX)


def _check_key_id(key_id: str, where: str) -> str:
    # ':' separates the parts of a spec and of a token, ',' the specs of a setting.
    if not key_id or ":" in key_id or "," in key_id or key_id != key_id.strip():
        raise ValueError(f"{where}: the key id must be non-empty, without ':' ',' or spaces")
    return key_id


def parse_key_specs(specs: Iterable[str], setting: str) -> dict[str, bytes]:
    """``"key-id:base64-of-32-bytes"`` strings as {key id: bytes}, in order; errors name the
    setting and the spec's position, never its text (it may be a private key)."""
    keys: dict[str, bytes] = {}
    for position, spec in enumerate(specs, start=1):
        where = f"{setting} #{position}"
        key_id, separator, encoded = spec.strip().partition(":")
        if not separator:
            raise ValueError(f"{where}: expected 'key-id:base64-key'")
        _check_key_id(key_id, where)
        if key_id in keys:
            raise ValueError(f"{where}: key id {key_id!r} is used twice")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except ValueError:  # binascii.Error, or non-ASCII text
            raise ValueError(f"{where} ({key_id!r}): the key is not valid base64") from None
        if len(key) != KEY_BYTES:
            raise ValueError(f"{where} ({key_id!r}): the key must decode to {KEY_BYTES} bytes")
        keys[key_id] = key
    return keys


def _spec(key_id: str, key: bytes) -> str:
    return f"{key_id}:{base64.b64encode(key).decode('ascii')}"


def _raw(key: X25519PublicKey) -> bytes:
    return key.public_bytes_raw()


def _aad(key_id: str, field: str, context: str) -> bytes:
    # JSON: an unambiguous encoding of the parts, whatever characters they hold.
    return json.dumps([VERSION, key_id, field, context]).encode()


def _cipher(shared: bytes, ephemeral: bytes, recipient: bytes) -> AESGCM:
    # Both public keys go into the derivation, so a key belongs to exactly this exchange.
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO + ephemeral + recipient
    ).derive(shared)
    return AESGCM(key)


class Sealer:
    """Seals values to one public key. Holds nothing that can unseal."""

    def __init__(self, key_id: str, public_key: bytes) -> None:
        self.key_id = _check_key_id(key_id, "seal public key")
        if len(public_key) != KEY_BYTES:
            raise ValueError(f"seal public key {key_id!r} must be {KEY_BYTES} bytes")
        self._public = X25519PublicKey.from_public_bytes(public_key)

    @classmethod
    def from_spec(cls, spec: str, setting: str = "HUB_SEAL_PUBLIC_KEY") -> Sealer:
        """From ``"key-id:base64-of-32-bytes"``, the public key of :func:`public_spec`."""
        ((key_id, key),) = parse_key_specs([spec], setting).items()
        return cls(key_id, key)

    @property
    def public_spec(self) -> str:
        return _spec(self.key_id, _raw(self._public))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self.key_id!r})"

    def seal(self, field: str, value: str, *, context: str) -> str:
        """A token holding ``value``, that opens only as ``field`` of ``context``."""
        ephemeral = X25519PrivateKey.generate()
        ephemeral_public, recipient = _raw(ephemeral.public_key()), _raw(self._public)
        cipher = _cipher(ephemeral.exchange(self._public), ephemeral_public, recipient)
        nonce = os.urandom(NONCE_BYTES)
        sealed = cipher.encrypt(nonce, value.encode(), _aad(self.key_id, field, context))
        body = base64.b64encode(ephemeral_public + nonce + sealed).decode("ascii")
        return f"{PREFIX}{VERSION}:{self.key_id}:{body}"


class Unsealer:
    """Unseals tokens sealed to any of its private keys (every configured key id)."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        if not keys:
            raise ValueError("Unsealer needs at least one key")
        self._keys = {
            _check_key_id(key_id, "seal key"): X25519PrivateKey.from_private_bytes(key)
            for key_id, key in keys.items()
        }

    @classmethod
    def from_specs(cls, specs: Iterable[str], setting: str = "HUB_SEAL_KEYS") -> Unsealer:
        return cls(parse_key_specs(specs, setting))

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def public_spec(self, key_id: str) -> str:
        """The public half of one private key, as a ``HUB_SEAL_PUBLIC_KEY`` spec."""
        return _spec(key_id, _raw(self._keys[key_id].public_key()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_ids={self.key_ids!r})"

    def unseal(self, field: str, token: str, *, context: str) -> str:
        """The value of a token sealed as ``field`` of ``context``."""
        prefix, _, rest = token.partition(PREFIX)
        version, _, rest = rest.partition(":")
        key_id, _, body = rest.partition(":")
        if prefix or version != VERSION or not key_id or not body:
            raise InvalidSealedValueError(f"{field}: not a sealed {VERSION} token", field=field)
        private = self._keys.get(key_id)
        if private is None:
            raise UnknownSealKeyError(
                f"{field}: sealed under key id {key_id!r}, which this process does not hold "
                f"(it holds: {', '.join(self._keys)})",
                field=field,
                key_id=key_id,
            )
        try:
            data = base64.b64decode(body, validate=True)
        except ValueError:
            data = b""
        if len(data) < KEY_BYTES + NONCE_BYTES + _TAG_BYTES:
            raise InvalidSealedValueError(
                f"{field}: the token under key id {key_id!r} is damaged", field=field, key_id=key_id
            )
        ephemeral, nonce, sealed = (
            data[:KEY_BYTES],
            data[KEY_BYTES : KEY_BYTES + NONCE_BYTES],
            data[KEY_BYTES + NONCE_BYTES :],
        )
        try:
            shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral))
            cipher = _cipher(shared, ephemeral, _raw(private.public_key()))
            value = cipher.decrypt(nonce, sealed, _aad(key_id, field, context))
        except (InvalidTag, ValueError):  # ValueError: a degenerate ephemeral key
            raise InvalidSealedValueError(
                f"{field}: the token under key id {key_id!r} does not open: it was altered, "
                "belongs to another field or subscriber, or another key has this id",
                field=field,
                key_id=key_id,
            ) from None
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise InvalidSealedValueError(
                f"{field}: the token under key id {key_id!r} holds no text",
                field=field,
                key_id=key_id,
            ) from None


def generate_seal_key(key_id: str) -> str:
    """A fresh private key as a ``HUB_SEAL_KEYS`` spec (``key-id:base64``)."""
    _check_key_id(key_id, "seal key")
    return _spec(key_id, X25519PrivateKey.generate().private_bytes_raw())


def public_spec(private_spec: str) -> str:
    """The ``HUB_SEAL_PUBLIC_KEY`` spec that goes with one ``HUB_SEAL_KEYS`` spec."""
    unsealer = Unsealer.from_specs([private_spec])
    return unsealer.public_spec(unsealer.key_ids[0])


def main(argv: list[str] | None = None) -> None:
    """``python -m hub.sealing [key-id]``: print a new key pair as two .env lines."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    private = generate_seal_key(args[0] if args else "s1")
    print(f"HUB_SEAL_KEYS={private}")
    print(f"HUB_SEAL_PUBLIC_KEY={public_spec(private)}")


if __name__ == "__main__":
    main()
