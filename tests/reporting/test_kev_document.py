"""The rendered XML validates against contracts/kev-mobile-quarterly.xsd; broken ones do not."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from lxml import etree

from hub.reporting import kev

INDICATORS = kev.KevIndicators(
    sim_cards_in_use=1200,
    m2m_sim_cards_in_use=80,
    mobile_data_volume_bytes=5_000_000_000_123,
    data_volume_by_rat={"EUTRAN": 3_000_000_000_000, "NR": 2_000_000_000_123},
    voice_minutes="1234.50",
    sms_count=4711,
    retail_usage_revenue={"data": "12.30", "voice": "4.00", "sms": "0.09"},
    retail_usage_revenue_total="16.39",
    currency="EUR",
    employees=412,
    investments="1250000.00",
)
HEADER = kev.ReportHeader(
    report_type=kev.REPORT_TYPE,
    operator_id="AT-MNO-1",
    period="2026-Q3",
    version=2,
    generated_at=datetime(2026, 10, 5, 8, 0, tzinfo=UTC),
    supersedes="RCPT-0001",
)
NS = {"k": kev.NAMESPACE}


def test_a_rendered_report_validates_with_units_on_every_figure() -> None:
    document = kev.render(HEADER, INDICATORS)
    kev.validate(document)
    root = etree.fromstring(document)
    assert document.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert root.findtext("k:header/k:period", namespaces=NS) == "2026-Q3"
    assert root.findtext("k:header/k:supersedes", namespaces=NS) == "RCPT-0001"
    figures = [
        e for e in root.iter() if not len(e) and e.getparent().tag != f"{{{kev.NAMESPACE}}}header"
    ]
    assert len(figures) == 13
    assert all(e.get("unit") for e in figures)
    assert root.find("k:mobileDataVolume/k:byRat[@ratType='NR']", NS).text == "2000000000123"
    assert root.find("k:retailUsageRevenue/k:total", NS).get("unit") == "EUR"


def test_manual_figures_and_supersedes_are_optional() -> None:
    document = kev.render(
        replace(HEADER, version=1, supersedes=None),
        replace(INDICATORS, employees=None, investments=None),
    )
    kev.validate(document)
    assert b"employees" not in document and b"supersedes" not in document


def _broken(old: bytes, new: bytes) -> bytes:
    document = kev.render(HEADER, INDICATORS)
    assert old in document
    return document.replace(old, new, 1)


@pytest.mark.parametrize(
    ("document", "says"),
    [
        pytest.param(
            _broken(b'<m2mSimCardsInUse unit="count">80</m2mSimCardsInUse>', b""),
            "Missing child element(s)",
            id="missing-figure",
        ),
        pytest.param(
            _broken(b'<total unit="byte">', b'<total unit="kB">'), "fixed value", id="wrong-unit"
        ),
        pytest.param(
            _broken(b'<count unit="count">4711', b'<count unit="count">-4711'),
            "nonNegativeInteger",
            id="negative-count",
        ),
        pytest.param(
            _broken(b'<minutes unit="minute">', b"<minutes>"), "unit", id="figure-without-unit"
        ),
        pytest.param(_broken(b"1234.50", b"1234.5"), "1234.5", id="minutes-not-two-decimals"),
        pytest.param(_broken(b"2026-Q3", b"2026-Q7"), "2026-Q7", id="bad-period"),
        pytest.param(_broken(b'unit="EUR"', b'unit="euro"'), "euro", id="bad-currency"),
        pytest.param(_broken(b"<version>2", b"<version>0"), "positiveInteger", id="version-0"),
        pytest.param(_broken(b"</kevReport>", b""), "not well-formed", id="not-xml"),
    ],
)
def test_a_broken_document_is_refused_with_the_schemas_message(document: bytes, says: str) -> None:
    with pytest.raises(kev.DocumentInvalid) as raised:
        kev.validate(document)
    assert says in str(raised.value)
    assert isinstance(raised.value, ValueError)
