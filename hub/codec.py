"""Payload encryption for Temporal: AES-256-GCM with named keys, so keys can be rotated.

Everything the hub hands to Temporal (workflow inputs, activity results, subscriber Ki and OPc
among them) is stored in the Temporal server's history. :class:`EncryptionCodec` encrypts each
payload before it leaves the process, so the server and its database only ever hold ciphertext.

An encrypted payload looks like::

    metadata: {"encoding": b"binary/encrypted", "encryption-key-id": b"<key id>"}
    data:     12-byte nonce || AES-GCM(serialised original payload, aad=<key id>)

Rotation: configure ``new-id:...,old-id:...``. The first key encrypts, every key decrypts, so
histories written under the old key keep replaying until they have aged out; only then drop it.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence

import temporalio.converter
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
_TAG_BYTES = 16


class PayloadEncryptionError(Exception):
    """An encrypted payload could not be decrypted.

    Not in :mod:`hub.errors`: that tree describes outside systems' answers, while this is the
    hub's own configuration (a missing key) or a damaged history. Messages name the key id,
    never key material.
    """

    def __init__(self, message: str, *, key_id: str | None = None) -> None:
        super().__init__(message)
        self.key_id = key_id


class UnknownKeyIdError(PayloadEncryptionError):
    """The payload names a key id this process was not given (a key dropped too early?)."""


def _check_key_id(key_id: str, where: str) -> bytes:
    if not isinstance(key_id, str) or not key_id:
        raise ValueError(f"{where}: the key id must be a non-empty string")
    # ':' separates id from key in a spec and ',' separates specs in HUB_PAYLOAD_KEYS.
    if ":" in key_id or "," in key_id or key_id != key_id.strip():
        raise ValueError(
            f"{where}: key id {key_id!r} must not contain ':' or ',' or surrounding spaces"
        )
    return key_id.encode()


class EncryptionCodec(temporalio.converter.PayloadCodec):
    """Encrypts payloads with the first key of ``keys``; decrypts with whichever key they name.

    ``keys`` maps key id to a 32-byte AES-256 key, in order of preference. Payloads that are
    not encrypted pass through :meth:`decode` unchanged, so history written before encryption
    was switched on still reads.
    """

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise ValueError("EncryptionCodec needs at least one key")
        self._ciphers: dict[str, AESGCM] = {}
        for key_id, key in keys.items():
            _check_key_id(key_id, "payload key")
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise ValueError(f"payload key {key_id!r} must be exactly {KEY_BYTES} bytes")
            self._ciphers[key_id] = AESGCM(key)
        self._encrypt_key_id = next(iter(self._ciphers))

    @classmethod
    def from_specs(cls, specs: Iterable[str]) -> EncryptionCodec:
        """Build from ``"key-id:base64-of-32-bytes"`` strings; the first one encrypts."""
        keys: dict[str, bytes] = {}
        for position, spec in enumerate(specs, start=1):
            where = f"payload key #{position}"
            key_id, separator, encoded = spec.strip().partition(":")
            if not separator:
                # Without a ':' the whole spec may be a bare key: name only its position.
                raise ValueError(f"{where}: expected 'key-id:base64-key'")
            _check_key_id(key_id, where)
            if key_id in keys:
                raise ValueError(f"{where}: key id {key_id!r} is used twice")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except ValueError:  # binascii.Error, or non-ASCII text
                # from None: keep the (partial) key text out of chained tracebacks.
                raise ValueError(f"payload key {key_id!r}: the key is not valid base64") from None
            if len(key) != KEY_BYTES:
                raise ValueError(
                    f"payload key {key_id!r}: the key must decode to {KEY_BYTES} bytes, "
                    f"got {len(key)}"
                )
            keys[key_id] = key
        return cls(keys)

    @property
    def key_ids(self) -> list[str]:
        """The configured key ids, the encrypting one first."""
        return list(self._ciphers)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_ids={self.key_ids!r})"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt every payload with the current (first) key."""
        key_id = self._encrypt_key_id
        aad = key_id.encode()
        cipher = self._ciphers[key_id]
        encoded = []
        for payload in payloads:
            # A random 96-bit nonce is safe for about 2**32 messages per key (NIST SP 800-38D);
            # rotating keys keeps each one far below that.
            nonce = os.urandom(NONCE_BYTES)
            ciphertext = cipher.encrypt(nonce, payload.SerializeToString(), aad)
            encoded.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID_METADATA: aad},
                    data=nonce + ciphertext,
                )
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt encrypted payloads; return any others unchanged."""
        return [self._decrypt(p) if self._is_encrypted(p) else p for p in payloads]

    @staticmethod
    def _is_encrypted(payload: Payload) -> bool:
        return payload.metadata.get("encoding") == ENCODING

    def _decrypt(self, payload: Payload) -> Payload:
        raw_key_id = payload.metadata.get(KEY_ID_METADATA)
        if raw_key_id is None:
            raise PayloadEncryptionError(f"encrypted payload has no {KEY_ID_METADATA!r} metadata")
        key_id = raw_key_id.decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKeyIdError(
                f"payload was encrypted with key id {key_id!r}, which is not configured "
                f"(configured: {', '.join(self._ciphers)})",
                key_id=key_id,
            )
        data = payload.data
        if len(data) < NONCE_BYTES + _TAG_BYTES:
            raise PayloadEncryptionError(
                f"encrypted payload under key id {key_id!r} is truncated", key_id=key_id
            )
        try:
            plaintext = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], raw_key_id)
        except InvalidTag:
            raise PayloadEncryptionError(
                f"encrypted payload under key id {key_id!r} failed authentication: it was "
                "altered, or a different key was configured under the same id",
                key_id=key_id,
            ) from None
        return Payload.FromString(plaintext)


def generate_key_spec(key_id: str) -> str:
    """A fresh ``key-id:base64`` spec holding a random 256-bit key (for ``HUB_PAYLOAD_KEYS``)."""
    _check_key_id(key_id, "payload key")
    key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
    return f"{key_id}:{base64.b64encode(key).decode('ascii')}"


def data_converter(specs: Sequence[str]) -> temporalio.converter.DataConverter:
    """Temporal's default data converter, encrypting with ``specs`` when there are any.

    An empty list gives the plain default converter: development without keys. Production
    refuses to start without keys (see :class:`hub.settings.Settings`).
    """
    if not specs:
        return temporalio.converter.DataConverter.default
    return dataclasses.replace(
        temporalio.converter.DataConverter.default,
        payload_codec=EncryptionCodec.from_specs(specs),
    )
