"""Sealing of subscriber secrets: round trips, tampering, moved tokens, rotation, key specs,
and the settings that say which process holds which half."""

from __future__ import annotations

import asyncio
import base64

import pytest
from pydantic import ValidationError

from hub.sealing import (
    InvalidSealedValueError,
    Sealer,
    SealError,
    UnknownSealKeyError,
    Unsealer,
    generate_seal_key,
    is_sealed,
    parse_key_specs,
    public_spec,
)
from hub.settings import Settings

# TS 35.208 test set 1's K: public test data that looks like a real subscriber key.
KI = "465b5ce8b199b49faa5f0a2ee238a6bc"
IMSI = "001010000000001"
OLD = generate_seal_key("old")
NEW = generate_seal_key("new")


def sealer(private_spec: str) -> Sealer:
    return Sealer.from_spec(public_spec(private_spec))


def unsealer(*private_specs: str) -> Unsealer:
    return Unsealer.from_specs(private_specs)


def assert_tells_nothing(error: BaseException, token: str) -> None:
    text = f"{error} {error!r}"
    assert KI not in text
    assert token.rsplit(":", 1)[-1][:16] not in text
    for spec in (OLD, NEW):
        assert spec.split(":", 1)[1] not in text


def flip(token: str, position: int) -> str:
    head, body = token.rsplit(":", 1)
    data = bytearray(base64.b64decode(body))
    data[position] ^= 0x01
    return f"{head}:{base64.b64encode(bytes(data)).decode()}"


def test_a_sealed_value_unseals_as_its_field_of_its_subscriber() -> None:
    token = sealer(NEW).seal("ki", KI, context=IMSI)
    assert token.startswith("sealed:v1:new:") and is_sealed(token)
    assert KI not in token
    assert unsealer(NEW).unseal("ki", token, context=IMSI) == KI


def test_every_seal_is_different() -> None:
    first, second = (sealer(NEW).seal("ki", KI, context=IMSI) for _ in range(2))
    assert first != second


def test_plain_values_are_not_sealed() -> None:
    assert not is_sealed(KI)
    assert not is_sealed(None)
    assert not is_sealed("")


@pytest.mark.parametrize("position", [0, 31, 32, 43, 44, -1])
def test_an_altered_token_does_not_open(position: int) -> None:
    # The ephemeral key, the nonce, the ciphertext and the tag: each is covered.
    token = flip(sealer(NEW).seal("ki", KI, context=IMSI), position)
    with pytest.raises(InvalidSealedValueError) as error:
        unsealer(NEW).unseal("ki", token, context=IMSI)
    assert error.value.field == "ki" and error.value.key_id == "new"
    assert_tells_nothing(error.value, token)


def test_a_token_moved_to_another_field_does_not_open() -> None:
    token = sealer(NEW).seal("ki", KI, context=IMSI)
    with pytest.raises(InvalidSealedValueError) as error:
        unsealer(NEW).unseal("opc", token, context=IMSI)
    assert "opc" in str(error.value)
    assert_tells_nothing(error.value, token)


def test_a_token_moved_to_another_subscriber_does_not_open() -> None:
    token = sealer(NEW).seal("ki", KI, context=IMSI)
    with pytest.raises(InvalidSealedValueError):
        unsealer(NEW).unseal("ki", token, context="001010000000002")


def test_a_token_relabelled_with_another_key_id_does_not_open() -> None:
    # Both keys held, the key id in the token edited: the id is in the associated data too.
    token = sealer(OLD).seal("ki", KI, context=IMSI).replace(":old:", ":new:")
    with pytest.raises(InvalidSealedValueError):
        unsealer(NEW, OLD).unseal("ki", token, context=IMSI)


def test_rotation_old_tokens_unseal_while_their_key_is_configured() -> None:
    before = sealer(OLD).seal("opc", KI, context=IMSI)
    after = sealer(NEW).seal("opc", KI, context=IMSI)
    rotated = unsealer(NEW, OLD)
    assert rotated.key_ids == ["new", "old"]
    assert rotated.unseal("opc", before, context=IMSI) == KI
    assert rotated.unseal("opc", after, context=IMSI) == KI


def test_a_dropped_key_is_named_and_nothing_else() -> None:
    token = sealer(OLD).seal("ki", KI, context=IMSI)
    with pytest.raises(UnknownSealKeyError) as error:
        unsealer(NEW).unseal("ki", token, context=IMSI)
    assert error.value.key_id == "old"
    assert "'old'" in str(error.value) and "new" in str(error.value)
    assert_tells_nothing(error.value, token)


def test_another_key_under_the_same_id_does_not_open() -> None:
    token = sealer(generate_seal_key("new")).seal("ki", KI, context=IMSI)
    with pytest.raises(InvalidSealedValueError):
        unsealer(NEW).unseal("ki", token, context=IMSI)


@pytest.mark.parametrize(
    "token",
    [
        "sealed:v2:new:AAAA",
        "sealed:v1:new:",
        "sealed:v1::AAAA",
        "sealed:v1:new:not base64!",
        "sealed:v1:new:" + base64.b64encode(bytes(59)).decode(),
        "xsealed:v1:new:AAAA",
        KI,
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidSealedValueError):
        unsealer(NEW).unseal("ki", token, context=IMSI)


def test_a_degenerate_ephemeral_key_is_refused() -> None:
    # An all-zero X25519 point makes the key agreement fail: refused like any bad token.
    token = "sealed:v1:new:" + base64.b64encode(bytes(32 + 12 + 32)).decode()
    with pytest.raises(InvalidSealedValueError):
        unsealer(NEW).unseal("ki", token, context=IMSI)


def test_errors_are_seal_errors() -> None:
    assert issubclass(UnknownSealKeyError, SealError)
    assert issubclass(InvalidSealedValueError, SealError)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no-colon-here", "expected 'key-id:base64-key'"),
        (":" + base64.b64encode(bytes(32)).decode(), "key id must be non-empty"),
        ("a,b:" + base64.b64encode(bytes(32)).decode(), "key id must be non-empty"),
        ("k:" + base64.b64encode(bytes(16)).decode(), "32 bytes"),
        ("k:secret-looking-text", "not valid base64"),
    ],
)
def test_bad_key_specs_are_refused_without_their_text(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        parse_key_specs([spec], "HUB_SEAL_KEYS")
    assert "HUB_SEAL_KEYS #1" in str(error.value)
    assert "secret-looking-text" not in str(error.value)
    assert base64.b64encode(bytes(16)).decode() not in str(error.value)


def test_a_key_id_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="used twice"):
        unsealer(NEW, NEW)


def test_reprs_show_key_ids_only() -> None:
    pair = unsealer(NEW, OLD)
    assert repr(pair) == "Unsealer(key_ids=['new', 'old'])"
    assert repr(sealer(NEW)) == "Sealer(key_id='new')"
    assert NEW.split(":", 1)[1] not in repr(pair)


def test_the_public_half_matches_its_private_key() -> None:
    assert sealer(NEW).public_spec == public_spec(NEW)
    assert public_spec(NEW).split(":")[0] == "new"
    assert public_spec(NEW) != NEW


def test_the_generator_prints_both_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from hub.sealing import main

    main(["s7"])
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert set(lines) == {"HUB_SEAL_KEYS", "HUB_SEAL_PUBLIC_KEY"}
    assert public_spec(lines["HUB_SEAL_KEYS"]) == lines["HUB_SEAL_PUBLIC_KEY"]
    assert lines["HUB_SEAL_KEYS"].startswith("s7:")


# --- which process holds what -----------------------------------------------------------------


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


PRODUCTION = {
    "environment": "production",
    "api_key": ["Vf3kQ9xLp2Rz7Wm4Tn8Yb6Hs1Jd5Gc0A"],
    "payload_keys": ["p1:" + base64.b64encode(bytes(32)).decode()],
    # A Fernet key of the tests (not a secret): production needs the console's session key.
    "console_session_key": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
}


def test_development_seals_to_the_public_half_of_the_seal_keys() -> None:
    dev = settings(seal_keys=f"{NEW},{OLD}")
    assert dev.resolved_seal_public_key == public_spec(NEW)
    sealed = dev.sealer()
    opener = dev.unsealer()
    assert sealed is not None and opener is not None
    assert opener.unseal("ki", sealed.seal("ki", KI, context=IMSI), context=IMSI) == KI


def test_without_seal_keys_development_seals_nothing() -> None:
    assert settings().sealer() is None and settings().unsealer() is None


def test_settings_do_not_show_the_seal_keys() -> None:
    text = repr(settings(seal_keys=NEW))
    assert NEW.split(":", 1)[1] not in text


def test_a_public_key_that_does_not_match_its_private_key_is_refused() -> None:
    other = public_spec(generate_seal_key("new"))
    with pytest.raises(ValidationError, match="not the public half") as error:
        settings(seal_keys=NEW, seal_public_key=other)
    assert NEW.split(":", 1)[1][:12] not in str(error.value)


def test_a_malformed_seal_key_stops_the_settings_without_its_text() -> None:
    with pytest.raises(ValidationError, match="HUB_SEAL_KEYS #2") as error:
        settings(seal_keys=f"{NEW},k:secret-looking-text")
    assert "secret-looking-text" not in str(error.value)
    assert NEW.split(":", 1)[1][:12] not in str(error.value)


def test_production_needs_the_public_key_and_never_derives_it() -> None:
    with pytest.raises(ValidationError, match="HUB_SEAL_PUBLIC_KEY must be set"):
        settings(**PRODUCTION, seal_keys=NEW)
    ready = settings(**PRODUCTION, seal_public_key=public_spec(NEW))
    assert ready.sealer() is not None and ready.unsealer() is None


def test_the_api_refuses_the_private_keys_in_production() -> None:
    from api.main import create_app

    with pytest.raises(RuntimeError, match="HUB_SEAL_KEYS must not be given to the API"):
        create_app(settings(**PRODUCTION, seal_keys=NEW, seal_public_key=public_spec(NEW)))
    create_app(settings(**PRODUCTION, seal_public_key=public_spec(NEW)))


def test_the_worker_refuses_to_start_without_the_private_keys_in_production() -> None:
    import worker

    with pytest.raises(RuntimeError, match="HUB_SEAL_KEYS must be set for the worker"):
        asyncio.run(worker.run(settings(**PRODUCTION, seal_public_key=public_spec(NEW))))
