"""Partner onboarding's rules: VAT formats, name normalisation, sanctions screening against an
FSF file, callback URLs, Standard Webhooks signatures."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from hub.partners import webhooks
from hub.partners.callbacks import CallbackPolicy, check_callback_url, refused_address
from hub.partners.names import normalise, similarity
from hub.partners.sanctions import SAMPLE_LIST, load_list, parse_list, screen
from hub.partners.vat import parse_vat_id


@pytest.mark.parametrize(
    "text", ["ATU12345678", "at u 123 456 78", "DE123456789", "FR12345678901", "NL123456789B01",
             "EL123456789", "IE1234567WA", "ESX1234567Z"],
)  # fmt: skip
def test_well_formed_vat_ids(text: str) -> None:
    vat = parse_vat_id(text)
    assert str(vat) == text.replace(" ", "").upper()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("ATU1234567", "not a AT VAT number"),
        ("AT12345678", "not a AT VAT number"),
        ("DE12345678", "not a DE VAT number"),
        ("GR123456789", "country prefix"),  # Greece is EL in VIES
        ("US123456789", "country prefix"),
        ("", "country prefix"),
    ],
)
def test_malformed_vat_ids_say_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_vat_id(text)


def test_names_are_compared_without_case_diacritics_order_or_legal_form() -> None:
    assert normalise("Müller Telekom G.m.b.H.") == normalise("TELEKOM MULLER")
    assert normalise("Nordwind Übersee Handels GmbH") == "handels nordwind ubersee"
    assert normalise("Crimson Falcon Telecom Ltd.") == normalise("crimson falcon telecom limited")
    assert normalise("Straße SA") == "strasse"
    assert similarity("Alpine Wholesale Telecom GmbH", "ALPINE WHOLESALE TELECOM") == 100
    assert similarity("Alpine Wholesale Telecom GmbH", "Bergbahn Logistik AG") < 50
    assert similarity("GmbH", "Ltd") == 0  # nothing left to compare is no match


def test_the_sample_list_is_an_fsf_file_with_every_alias() -> None:
    listed = load_list(SAMPLE_LIST)
    names = {entry.name for entry in listed}
    assert "Nordwind Overseas Trading" in names and "Jaroslav Kovářík-Testov" in names
    assert {entry.subject_type for entry in listed} == {"enterprise", "person"}
    assert all(entry.eu_reference.startswith("EU.TEST.") for entry in listed)


def test_screening_finds_names_however_they_are_written() -> None:
    listed = load_list(SAMPLE_LIST)
    hits = screen(
        ["NORDWIND UEBERSEE HANDELS G.m.b.H.", "Kovarik-Testov, Jaroslav", "Anna Berger"],
        listed,
        88,
    )
    assert {hit.listed for hit in hits} == {
        "Nordwind Übersee Handels GmbH",
        "Jaroslav Kovářík-Testov",
    }
    assert all(hit.score >= 88 for hit in hits)
    assert screen(["Alpine Wholesale Telecom GmbH"], listed, 88) == []


def test_a_file_that_is_not_a_list_is_an_error_not_an_empty_list(tmp_path: Path) -> None:
    (tmp_path / "other.xml").write_text("<html/>")
    with pytest.raises(ValueError, match="not an FSF export"):
        parse_list(tmp_path / "other.xml")
    (tmp_path / "empty.xml").write_text('<export xmlns="http://eu.europa.ec/fpi/fsd/export"/>')
    with pytest.raises(ValueError, match="no sanctionEntity"):
        parse_list(tmp_path / "empty.xml")
    with pytest.raises(ValueError, match="cannot read"):
        parse_list(tmp_path / "missing.xml")


STRICT = CallbackPolicy()


@pytest.mark.parametrize(
    "url", ["https://partner.example.com/hooks", "https://partner.example.com:8443/a?b=c",
            "https://93.184.216.34/hook"],
)  # fmt: skip
def test_public_https_callbacks_are_fine(url: str) -> None:
    assert check_callback_url(url, STRICT) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://partner.example.com/", "https"),
        ("https://127.0.0.1/", "loopback"),
        ("https://[::ffff:127.0.0.1]/", "loopback"),
        ("https://192.168.1.10/", "private"),
        ("https://100.64.0.1/", "private"),
        ("https://169.254.169.254/", "link-local"),
        ("https://0.0.0.0/", "unicast"),
        ("https://localhost:8443/", "loopback"),
        ("https://intranet/", "fully qualified"),
        ("https://a@partner.example.com/", "credentials"),
        ("https://partner.example.com/#x", "fragment"),
        ("https://partner.example.com:99999/", "port"),
    ],
)
def test_callbacks_the_hub_must_not_call_are_refused(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_callback_url(url, STRICT)


def test_settings_allow_loopback_and_http_for_development() -> None:
    relaxed = CallbackPolicy(allow_http=True, allow_loopback=True)
    assert check_callback_url("http://127.0.0.1:8108/hooks/p", relaxed)
    with pytest.raises(ValueError, match="private"):
        check_callback_url("http://10.0.0.1/", relaxed)
    assert (
        refused_address(ipaddress.ip_address("10.0.0.1"), CallbackPolicy(allow_private=True))
        is None
    )
    assert refused_address(ipaddress.ip_address("169.254.1.1"), CallbackPolicy(allow_private=True))


def test_standard_webhooks_signatures() -> None:
    # The example of the Standard Webhooks specification's reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = webhooks.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert webhooks.verify(
        secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", signature, body, now=1614265330
    )
    assert not webhooks.verify(secret, "msg_other", "1614265330", signature, body, now=1614265330)
    assert not webhooks.verify(
        secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", signature, body, now=1614269999
    )
    assert webhooks.new_secret().startswith("whsec_")
