"""KEV indicators, checked exactly against figures computed by hand.

The usage crosses Q1 2026's edges in Vienna (UTC+1 in winter, UTC+2 from 29 March 01:00
UTC): 31 December 23:30 UTC is already 1 January there, 31 March 22:00 UTC is already April.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from hub.reporting import kev
from hub.reporting import sources as reading
from hub.reporting.periods import Quarter
from hub.usage import NETWORK_SCHEMA, RATED_SCHEMA, SUBSCRIPTION_SCHEMA

Q1 = Quarter(2026, 1)
TZ = "Europe/Vienna"
M2M = ["IOT-M2M"]


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def data(
    rid: str, imsi: str, msisdn: str, when: datetime, up: int, down: int, rat: str | None
) -> dict[str, Any]:
    return {
        "record_id": rid,
        "record_type": "data",
        "served_imsi": imsi,
        "served_msisdn": msisdn,
        "record_opening_time": when,
        "duration": 600,
        "uplink_volume": up,
        "downlink_volume": down,
        "rat_type": rat,
    }


def voice(rid: str, imsi: str, msisdn: str, when: datetime, seconds: int) -> dict[str, Any]:
    return {
        "record_id": rid,
        "record_type": "voice",
        "served_imsi": imsi,
        "served_msisdn": msisdn,
        "record_opening_time": when,
        "duration": seconds,
    }


def sms(rid: str, imsi: str, msisdn: str, when: datetime) -> dict[str, Any]:
    return {
        "record_id": rid,
        "record_type": "sms",
        "served_imsi": imsi,
        "served_msisdn": msisdn,
        "record_opening_time": when,
    }


def rated(
    rid: str, usage: str, when: datetime, charge: float, billed: bool = True
) -> dict[str, Any]:
    return {
        "record_id": rid,
        "usage_type": usage,
        "start_time": when,
        "charge": charge,
        "billed": billed,
        "tariff": "MOBILE-M",
    }


# Two files of CDRs; r2 comes twice (once in each file), and counts once.
NETWORK_1 = [
    data("r1", "A", "mA", at(2025, 12, 31, 23, 30), 100, 900, "EUTRAN"),  # 1 Jan 00:30 local
    data("r2", "B", "mB", at(2026, 2, 10, 12), 1000, 4000, "NR"),
    voice("r3", "A", "mA", at(2026, 1, 15, 8), 90),
    voice("r4", "C", "mC", at(2026, 3, 29, 1, 30), 61),  # 03:30 CEST, just after the change
    data("r7", "E", "mE", at(2025, 12, 31, 22, 59), 5, 5, "NR"),  # 23:59 local: Q4 2025
]
NETWORK_2 = [
    data("r2", "B", "mB", at(2026, 2, 10, 12), 1000, 4000, "NR"),
    sms("r5", "C", "mC", at(2026, 3, 31, 21, 59)),  # 23:59 CEST: still Q1
    sms("r6", "D", "mD", at(2026, 3, 31, 22, 0)),  # 00:00 CEST 1 April: Q2
    sms("r8", "B", "mB", at(2026, 1, 1, 0, 0)),
    data("r9", "C", "mC", at(2026, 3, 1, 9), 7, 3, None),  # no RAT reported
]
BILLING = [
    # Data: 1.2200 + 0.0050 = 1.2250, exactly; half up is 1.23 (floats or half-even: 1.22).
    rated("r1", "data", at(2025, 12, 31, 23, 30), 1.22),
    rated("r2", "data", at(2026, 2, 10, 12), 0.005),
    rated("r2", "data", at(2026, 2, 10, 12), 0.005),  # billing got it twice: counts once
    rated("r3", "voice", at(2026, 1, 15, 8), 0.5),
    rated("r4", "voice", at(2026, 3, 29, 1, 30), 0.3, billed=False),  # never billed
    rated("r5", "sms", at(2026, 3, 31, 21, 59), 0.09),
    rated("r6", "sms", at(2026, 3, 31, 22, 0), 0.09),  # Q2
    rated("r7", "data", at(2025, 12, 31, 22, 59), 9.99),  # Q4 2025
    rated("r8", "sms", at(2026, 1, 1, 0, 0), 0.09),
]
SUBSCRIPTIONS = [
    {"msisdn": "mA", "plan": "MOBILE-M"},
    {"msisdn": "mB", "plan": "IOT-M2M"},
    {"msisdn": "mC", "plan": "MOBILE-L"},
    {"msisdn": "mD", "plan": "IOT-M2M"},  # M2M, but its only usage is in Q2
]


def write(rows: list[dict[str, Any]], schema: pa.Schema, path: Path) -> str:
    table = pa.Table.from_pylist(rows, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".parquet"):
        pq.write_table(table, path)
    elif path.name.endswith(".csv.gz"):
        with gzip.open(path, "wb") as out:
            pacsv.write_csv(table, out)
    else:
        pacsv.write_csv(table, path)
    return str(path)


def sources(tmp_path: Path, suffix: str = "parquet") -> tuple[list[str], list[str], str]:
    network = [
        write(NETWORK_1, NETWORK_SCHEMA, tmp_path / f"network/cdr-1.{suffix}"),
        write(NETWORK_2, NETWORK_SCHEMA, tmp_path / f"network/cdr-2.{suffix}"),
    ]
    billing = [write(BILLING, RATED_SCHEMA, tmp_path / f"billing/rated-1.{suffix}")]
    subscriptions = write(
        SUBSCRIPTIONS, SUBSCRIPTION_SCHEMA, tmp_path / "billing/subscriptions.parquet"
    )
    return network, billing, subscriptions


EXPECTED = kev.KevIndicators(
    sim_cards_in_use=3,  # A, B, C (D only in Q2, E only in Q4)
    m2m_sim_cards_in_use=1,  # B
    mobile_data_volume_bytes=1000 + 5000 + 10,
    data_volume_by_rat={"EUTRAN": 1000, "NR": 5000, "UNKNOWN": 10},
    voice_minutes="2.52",  # 151 s / 60 = 2.5166...
    sms_count=2,  # r5, r8
    retail_usage_revenue={"data": "1.23", "voice": "0.50", "sms": "0.18"},
    retail_usage_revenue_total="1.91",  # 1.2250 + 0.5 + 0.18 = 1.9050
    currency="EUR",
    employees=None,
    investments=None,
)


@pytest.mark.parametrize("suffix", ["parquet", "csv", "csv.gz"])
def test_indicators_match_the_hand_computed_figures(tmp_path: Path, suffix: str) -> None:
    network, billing, subscriptions = sources(tmp_path, suffix)
    indicators, _ = kev.compute(
        network, billing, subscriptions, Q1, tz=TZ, m2m_plans=M2M, currency="EUR"
    )
    assert indicators == EXPECTED


def test_the_time_zone_decides_the_quarter(tmp_path: Path) -> None:
    # In UTC, r1 (23:30 on 31 December) is Q4 2025 and r6 (22:00 on 31 March) is Q1.
    network, billing, subscriptions = sources(tmp_path)
    indicators, _ = kev.compute(
        network, billing, subscriptions, Q1, tz="UTC", m2m_plans=M2M, currency="EUR"
    )
    assert indicators.sim_cards_in_use == 4  # A (r3), B, C, D
    assert indicators.m2m_sim_cards_in_use == 2  # B, D
    assert indicators.data_volume_by_rat == {"NR": 5000, "UNKNOWN": 10}
    assert indicators.sms_count == 3  # r5, r6, r8
    assert indicators.retail_usage_revenue == {"data": "0.01", "voice": "0.50", "sms": "0.27"}


def test_m2m_plans_are_a_setting(tmp_path: Path) -> None:
    network, billing, subscriptions = sources(tmp_path)
    indicators, _ = kev.compute(
        network,
        billing,
        subscriptions,
        Q1,
        tz=TZ,
        m2m_plans=["IOT-M2M", "MOBILE-L"],
        currency="EUR",
    )
    assert indicators.m2m_sim_cards_in_use == 2  # B, C
    indicators, _ = kev.compute(network, billing, None, Q1, tz=TZ, m2m_plans=M2M, currency="EUR")
    assert indicators.m2m_sim_cards_in_use == 0


def test_manual_figures_are_carried_and_checked(tmp_path: Path) -> None:
    network, billing, subscriptions = sources(tmp_path)
    indicators, _ = kev.compute(
        network,
        billing,
        subscriptions,
        Q1,
        tz=TZ,
        m2m_plans=M2M,
        currency="EUR",
        manual={"employees": 412, "investments": "1250000.5"},
    )
    assert (indicators.employees, indicators.investments) == (412, "1250000.50")
    for manual, field in [
        ({"employees": -1}, "employees"),
        ({"investments": "lots"}, "investments"),
    ]:
        with pytest.raises(ValueError, match=f"manualFigures.{field}"):
            kev.compute([], [], None, Q1, tz=TZ, m2m_plans=M2M, currency="EUR", manual=manual)


def test_no_sources_is_zero_and_every_day_is_a_finding() -> None:
    indicators, findings = kev.compute([], [], None, Q1, tz=TZ, m2m_plans=M2M, currency="EUR")
    assert indicators.sim_cards_in_use == 0
    assert indicators.retail_usage_revenue == {"data": "0.00", "voice": "0.00", "sms": "0.00"}
    assert len(findings) == 90  # January 31 + February 28 + March 31


def test_completeness_names_each_local_day_without_cdrs(tmp_path: Path) -> None:
    # One CDR at 00:30 local time on every day of Q1 but 29 March (the 23-hour day), and
    # none on 14 February: 00:30 local on 29 March is 23:30 UTC on the 28th.
    zone = ZoneInfo(TZ)
    day = datetime(2026, 1, 1, 0, 30)
    rows = []
    while day < datetime(2026, 4, 1):
        if (day.month, day.day) != (2, 14):
            when = day.replace(tzinfo=zone).astimezone(UTC)
            rows.append(sms(f"s{len(rows)}", "A", "mA", when))
        day += timedelta(days=1)
    path = write(rows, NETWORK_SCHEMA, tmp_path / "cdr.parquet")
    indicators, findings = kev.compute([path], [], None, Q1, tz=TZ, m2m_plans=M2M, currency="EUR")
    assert indicators.sms_count == 89
    assert [(f.code, f.requires_ack) for f in findings] == [("day-without-cdrs", True)]
    assert "2026-02-14" in findings[0].message
    # Q2's first day and Q4 2025's last day are not Q1's: the full Q1 set has no findings.
    rows.append(sms("s-feb14", "A", "mA", datetime(2026, 2, 13, 23, 0, tzinfo=UTC)))
    path = write(rows, NETWORK_SCHEMA, tmp_path / "cdr.parquet")
    _, findings = kev.compute([path], [], None, Q1, tz=TZ, m2m_plans=M2M, currency="EUR")
    assert findings == []


def test_autumn_clock_change_keeps_the_25_hour_day(tmp_path: Path) -> None:
    # 25 October 2026 lasts 25 hours in Vienna: 22:00 UTC on the 24th to 23:00 UTC on the 25th.
    rows = [
        voice("v1", "A", "mA", at(2026, 10, 24, 22, 0), 60),  # 25 Oct 00:00 CEST
        voice("v2", "A", "mA", at(2026, 10, 25, 22, 59), 60),  # 25 Oct 23:59 CET
        voice("v3", "A", "mA", at(2026, 9, 30, 21, 59), 60),  # 30 Sep 23:59 CEST: Q3
    ]
    path = write(rows, NETWORK_SCHEMA, tmp_path / "cdr.parquet")
    indicators, findings = kev.compute(
        [path], [], None, Quarter(2026, 4), tz=TZ, m2m_plans=M2M, currency="EUR"
    )
    assert indicators.voice_minutes == "2.00"
    missing = {f.message.split()[5] for f in findings}
    assert "2026-10-25" not in missing and "2026-10-26" in missing and len(missing) == 91


def test_a_hash_collision_never_merges_two_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every record id hashes alike: only the ids themselves may decide what is a copy.
    def same_hash(ids: pa.Array) -> tuple[Any, Any]:
        zeros = np.zeros(len(ids), np.uint64)
        return zeros, zeros

    monkeypatch.setattr(reading, "hash_strings", same_hash)
    network, billing, subscriptions = sources(tmp_path)
    indicators, _ = kev.compute(
        network, billing, subscriptions, Q1, tz=TZ, m2m_plans=M2M, currency="EUR"
    )
    assert indicators == EXPECTED
