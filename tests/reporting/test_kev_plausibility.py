"""Plausibility against the previous accepted report."""

from __future__ import annotations

from dataclasses import replace

from hub.reporting import kev

PREVIOUS = kev.KevIndicators(
    sim_cards_in_use=1000,
    m2m_sim_cards_in_use=0,
    mobile_data_volume_bytes=10_000,
    data_volume_by_rat={"EUTRAN": 10_000},
    voice_minutes="100.00",
    sms_count=50,
    retail_usage_revenue={"data": "10.00", "voice": "0.00", "sms": "0.00"},
    retail_usage_revenue_total="10.00",
    currency="EUR",
    employees=10,
)


def test_no_previous_report_is_a_finding() -> None:
    findings = kev.plausibility(PREVIOUS, None, kev.DEFAULT_THRESHOLDS)
    assert [(f.code, f.indicator, f.requires_ack) for f in findings] == [
        ("no-previous-report", None, True)
    ]


def test_unchanged_or_within_threshold_is_no_finding() -> None:
    assert kev.plausibility(PREVIOUS, PREVIOUS, kev.DEFAULT_THRESHOLDS) == []
    current = replace(PREVIOUS, sim_cards_in_use=1100, voice_minutes="80.00")  # +10%, -20%
    assert kev.plausibility(current, PREVIOUS, {"simCardsInUse": 0.1, "voiceMinutes": 0.2}) == []


def test_an_indicator_beyond_its_threshold_is_a_finding_either_way() -> None:
    current = replace(
        PREVIOUS,
        sim_cards_in_use=1101,  # +10.1%
        voice_minutes="79.99",  # -20.01%
        sms_count=1000,  # x20, but not checked: no threshold given
        m2m_sim_cards_in_use=5,  # from 0
    )
    thresholds = {"simCardsInUse": 0.1, "voiceMinutes": 0.2, "m2mSimCardsInUse": 0.5}
    findings = kev.plausibility(current, PREVIOUS, thresholds)
    assert [(f.code, f.indicator) for f in findings] == [
        ("moved", "simCardsInUse"),
        ("moved", "voiceMinutes"),
        ("moved", "m2mSimCardsInUse"),
    ]
    assert all(f.requires_ack for f in findings)
    assert "+10.1%" in findings[0].message and "1000 to 1101" in findings[0].message
    assert "-20.0%" in findings[1].message


def test_manual_figures_are_compared_when_both_reports_have_them() -> None:
    current = replace(PREVIOUS, employees=20, investments="5.00")
    findings = kev.plausibility(current, PREVIOUS, kev.DEFAULT_THRESHOLDS)
    assert [f.indicator for f in findings] == ["employees"]  # no previous investments


def test_default_thresholds_cover_every_indicator() -> None:
    assert set(kev.DEFAULT_THRESHOLDS) == {
        "simCardsInUse",
        "m2mSimCardsInUse",
        "mobileDataVolumeBytes",
        "voiceMinutes",
        "smsCount",
        "retailUsageRevenue",
        "employees",
        "investments",
    }
    assert all(0 < limit < 1 for limit in kev.DEFAULT_THRESHOLDS.values())
