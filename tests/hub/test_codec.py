"""EncryptionCodec: round trips, rotation, tamper detection, spec parsing, the data converter."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter

from hub.codec import (
    ENCODING,
    KEY_ID_METADATA,
    NONCE_BYTES,
    EncryptionCodec,
    PayloadEncryptionError,
    UnknownKeyIdError,
    data_converter,
    generate_key_spec,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
SPEC_A = "key-a:" + base64.b64encode(KEY_A).decode()
SPEC_B = "key-b:" + base64.b64encode(KEY_B).decode()
# Test Set 1's K from TS 35.208: realistic-looking subscriber secret, public test data.
FAKE_KI = "465b5ce8b199b49faa5f0a2ee238a6bc"


@dataclasses.dataclass
class ProvisionInput:
    imsi: str
    ki: str
    opc: str
    services: list[str]


def json_payload(value: object) -> Payload:
    return DataConverter.default.payload_converter.to_payloads([value])[0]


def sample_payloads() -> list[Payload]:
    return [
        json_payload({"imsi": "001010000000001", "ki": FAKE_KI}),
        json_payload("plain text"),
        json_payload(None),
        DataConverter.default.payload_converter.to_payloads([b"\x00\x01\xff" * 50])[0],
        Payload(metadata={"encoding": b"json/plain", "extra": b"kept"}, data=b""),
        json_payload("x" * 100_000),
    ]


async def test_round_trip_of_several_payloads() -> None:
    codec = EncryptionCodec({"key-a": KEY_A})
    originals = sample_payloads()
    encoded = await codec.encode(originals)
    assert len(encoded) == len(originals)
    for original, enc in zip(originals, encoded, strict=True):
        assert enc.metadata["encoding"] == ENCODING
        assert enc.metadata[KEY_ID_METADATA] == b"key-a"
        # nonce + ciphertext of the serialised payload + 16-byte GCM tag
        assert len(enc.data) == NONCE_BYTES + len(original.SerializeToString()) + 16
    assert await codec.decode(encoded) == originals


async def test_ciphertext_does_not_contain_the_plaintext() -> None:
    codec = EncryptionCodec({"key-a": KEY_A})
    payload = json_payload({"imsi": "001010000000001", "ki": FAKE_KI})
    assert FAKE_KI.encode() in payload.SerializeToString()  # the check below could fail

    [encoded] = await codec.encode([payload])
    wire = encoded.SerializeToString()
    assert FAKE_KI.encode() not in wire
    assert bytes.fromhex(FAKE_KI) not in wire
    assert b"001010000000001" not in wire
    assert b"json/plain" not in wire


async def test_each_encoding_uses_a_fresh_nonce() -> None:
    codec = EncryptionCodec({"key-a": KEY_A})
    payload = json_payload("same value")
    first, second = await codec.encode([payload, payload])
    assert first.data[:NONCE_BYTES] != second.data[:NONCE_BYTES]
    assert first.data != second.data


async def test_rotation_new_key_encrypts_old_key_still_decrypts() -> None:
    old_codec = EncryptionCodec({"key-a": KEY_A})
    [old_payload] = await old_codec.encode([json_payload("written under A")])

    rotated = EncryptionCodec.from_specs([SPEC_B, SPEC_A])
    assert rotated.key_ids == ["key-b", "key-a"]
    assert await rotated.decode([old_payload]) == [json_payload("written under A")]

    [new_payload] = await rotated.encode([json_payload("written under B")])
    assert new_payload.metadata[KEY_ID_METADATA] == b"key-b"
    # A process that only has the old key cannot read the new payload...
    with pytest.raises(UnknownKeyIdError):
        await old_codec.decode([new_payload])
    # ...while one that only has the new key can.
    only_b = EncryptionCodec({"key-b": KEY_B})
    assert await only_b.decode([new_payload]) == [json_payload("written under B")]


async def test_unknown_key_id_names_the_id_and_no_key_material() -> None:
    [encoded] = await EncryptionCodec({"retired-2023": KEY_A}).encode([json_payload(1)])
    codec = EncryptionCodec({"key-b": KEY_B})
    with pytest.raises(UnknownKeyIdError, match="'retired-2023'") as excinfo:
        await codec.decode([encoded])
    assert excinfo.value.key_id == "retired-2023"
    message = str(excinfo.value)
    for secret in (KEY_A, KEY_B):
        assert secret.hex() not in message
        assert base64.b64encode(secret).decode() not in message


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda d: d[:-1] + bytes([d[-1] ^ 1]), id="tag"),
        pytest.param(lambda d: d[:20] + bytes([d[20] ^ 0x80]) + d[21:], id="ciphertext"),
        pytest.param(lambda d: bytes([d[0] ^ 1]) + d[1:], id="nonce"),
        pytest.param(lambda d: d[:-5], id="shortened"),
    ],
)
async def test_tampered_ciphertext_fails(tamper: object) -> None:
    codec = EncryptionCodec({"key-a": KEY_A})
    [encoded] = await codec.encode([json_payload({"ki": FAKE_KI})])
    encoded.data = tamper(encoded.data)  # type: ignore[operator]
    with pytest.raises(PayloadEncryptionError, match="failed authentication"):
        await codec.decode([encoded])


async def test_relabelled_key_id_fails_authentication() -> None:
    # The key id is the associated data, so moving a payload to another key id is detected
    # even when that id happens to hold the same key.
    codec = EncryptionCodec({"key-a": KEY_A, "key-a2": KEY_A})
    [encoded] = await codec.encode([json_payload("x")])
    encoded.metadata[KEY_ID_METADATA] = b"key-a2"
    with pytest.raises(PayloadEncryptionError, match="'key-a2' failed authentication"):
        await codec.decode([encoded])


async def test_same_id_with_a_different_key_fails_authentication() -> None:
    [encoded] = await EncryptionCodec({"key-a": KEY_A}).encode([json_payload("x")])
    with pytest.raises(PayloadEncryptionError, match="failed authentication"):
        await EncryptionCodec({"key-a": KEY_B}).decode([encoded])


async def test_truncated_and_unlabelled_payloads_fail_clearly() -> None:
    codec = EncryptionCodec({"key-a": KEY_A})
    truncated = Payload(
        metadata={"encoding": ENCODING, KEY_ID_METADATA: b"key-a"}, data=b"\x00" * 27
    )
    with pytest.raises(PayloadEncryptionError, match="truncated"):
        await codec.decode([truncated])
    unlabelled = Payload(metadata={"encoding": ENCODING}, data=b"\x00" * 64)
    with pytest.raises(PayloadEncryptionError, match=KEY_ID_METADATA):
        await codec.decode([unlabelled])


async def test_unencrypted_payloads_pass_through_decode() -> None:
    codec = EncryptionCodec({"key-a": KEY_A})
    plain = sample_payloads()
    [encrypted] = await codec.encode([json_payload("mixed")])
    decoded = await codec.decode([plain[0], encrypted, plain[4]])
    assert decoded == [plain[0], json_payload("mixed"), plain[4]]
    assert decoded[0] is plain[0]


def test_generate_key_spec_makes_a_fresh_valid_spec() -> None:
    spec = generate_key_spec("2025-01")
    key_id, _, encoded = spec.partition(":")
    assert key_id == "2025-01"
    assert len(base64.b64decode(encoded, validate=True)) == 32
    assert generate_key_spec("2025-01") != spec
    assert EncryptionCodec.from_specs([spec]).key_ids == ["2025-01"]
    with pytest.raises(ValueError, match="must not contain"):
        generate_key_spec("a:b")


BARE_KEY = base64.b64encode(KEY_A).decode()


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        pytest.param([], "at least one key", id="empty"),
        pytest.param([SPEC_A, BARE_KEY], r"#2: expected 'key-id:base64-key'", id="bare-key"),
        pytest.param([":" + BARE_KEY], r"#1: the key id must be a non-empty", id="empty-id"),
        pytest.param(["a,b:" + BARE_KEY], r"#1: key id 'a,b' must not contain", id="comma"),
        pytest.param(["k1:not base64!"], r"'k1': the key is not valid base64", id="not-base64"),
        pytest.param(["k1:" + BARE_KEY + ":x"], r"'k1': the key is not valid base64", id="colon"),
        pytest.param(["k1:ünïcode"], r"'k1': the key is not valid base64", id="non-ascii"),
        pytest.param(
            ["k1:" + base64.b64encode(KEY_A[:16]).decode()],
            r"'k1': the key must decode to 32 bytes, got 16",
            id="aes-128-key",
        ),
        pytest.param(["k1:"], r"'k1': the key must decode to 32 bytes, got 0", id="no-key"),
        pytest.param([SPEC_A, SPEC_A], r"#2: key id 'key-a' is used twice", id="duplicate"),
    ],
)
def test_spec_parsing_errors(specs: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as excinfo:
        EncryptionCodec.from_specs(specs)
    assert BARE_KEY not in str(excinfo.value)
    assert BARE_KEY[:16] not in str(excinfo.value)


def test_specs_tolerate_surrounding_whitespace() -> None:
    assert EncryptionCodec.from_specs([f"  {SPEC_A} "]).key_ids == ["key-a"]


def test_constructor_validates_keys() -> None:
    with pytest.raises(ValueError, match="'short' must be exactly 32 bytes"):
        EncryptionCodec({"short": KEY_A[:16]})
    with pytest.raises(ValueError, match="at least one key"):
        EncryptionCodec({})


def test_repr_shows_key_ids_only() -> None:
    text = repr(EncryptionCodec.from_specs([SPEC_B, SPEC_A]))
    assert text == "EncryptionCodec(key_ids=['key-b', 'key-a'])"


def test_data_converter_without_specs_is_the_default() -> None:
    assert data_converter([]) is DataConverter.default
    assert data_converter([]).payload_codec is None


async def test_data_converter_round_trips_a_dataclass_encrypted() -> None:
    converter = data_converter([SPEC_A, SPEC_B])
    assert isinstance(converter.payload_codec, EncryptionCodec)
    value = ProvisionInput(
        imsi="001010000000001",
        ki=FAKE_KI,
        opc="cd63cb71954a9f4e48a5994e37a02baf",
        services=["voice", "data"],
    )

    payloads = await converter.encode([value, "second"])
    assert [p.metadata["encoding"] for p in payloads] == [ENCODING, ENCODING]
    assert all(FAKE_KI.encode() not in p.SerializeToString() for p in payloads)

    # A fresh converter from the same specs (another worker, a restart) reads them back.
    decoded = await data_converter([SPEC_A, SPEC_B]).decode(payloads, [ProvisionInput, str])
    assert decoded == [value, "second"]


async def test_data_converter_reads_history_written_before_encryption() -> None:
    value = ProvisionInput(imsi="001010000000002", ki=FAKE_KI, opc="00" * 16, services=[])
    plain = await DataConverter.default.encode([value])
    assert await data_converter([SPEC_A]).decode(plain, [ProvisionInput]) == [value]
