"""Quarters are calendar quarters in the operator's time zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.reporting.periods import Quarter


def test_parse_and_str_round_trip() -> None:
    quarter = Quarter.parse("2026-Q3")
    assert quarter == Quarter(2026, 3)
    assert str(quarter) == "2026-Q3"


@pytest.mark.parametrize(
    "text", ["2026-Q5", "2026-Q0", "2026Q3", "26-Q1", "2026-q3", "", "Q3-2026"]
)
def test_parse_refuses_what_is_not_a_quarter(text: str) -> None:
    with pytest.raises(ValueError, match=r"^period: expected YYYY-Qn, e.g. 2026-Q3$"):
        Quarter.parse(text)


def test_bounds_are_local_midnights_as_utc() -> None:
    # Winter time (UTC+1) at the start of Q1, summer time (UTC+2) from 29 March.
    start, end = Quarter(2026, 1).bounds("Europe/Vienna")
    assert start == datetime(2025, 12, 31, 23, tzinfo=UTC)
    assert end == datetime(2026, 3, 31, 22, tzinfo=UTC)
    assert start.tzinfo is not None and start.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    # Q4 starts in summer time and ends in winter time (clocks go back on 25 October).
    start, end = Quarter(2026, 4).bounds("Europe/Vienna")
    assert (start, end) == (
        datetime(2026, 9, 30, 22, tzinfo=UTC),
        datetime(2026, 12, 31, 23, tzinfo=UTC),
    )
    assert Quarter(2026, 1).bounds("UTC") == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
    )


def test_has_ended_at_the_local_end() -> None:
    quarter = Quarter(2026, 4)
    assert not quarter.has_ended(datetime(2026, 12, 31, 22, 59, tzinfo=UTC), "Europe/Vienna")
    assert quarter.has_ended(datetime(2026, 12, 31, 23, 0, tzinfo=UTC), "Europe/Vienna")
    assert not quarter.has_ended(datetime(2026, 12, 31, 23, 0, tzinfo=UTC), "UTC")


def test_previous_crosses_the_year() -> None:
    assert Quarter(2026, 1).previous() == Quarter(2025, 4)
    assert Quarter(2026, 3).previous() == Quarter(2026, 2)
