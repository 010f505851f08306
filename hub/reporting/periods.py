"""Reporting periods: calendar quarters in the operator's time zone, not UTC.

A call at 23:30 UTC on 31 December is already 1 January in Vienna, so it belongs to Q1 of the
next year; :meth:`Quarter.bounds` answers the quarter's edges as UTC instants for that reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

_PATTERN = re.compile(r"(\d{4})-Q([1-4])")
_MESSAGE = "period: expected YYYY-Qn, e.g. 2026-Q3"


@dataclass(frozen=True)
class Quarter:
    year: int
    quarter: int  # 1..4

    def __post_init__(self) -> None:
        if not 1 <= self.quarter <= 4 or not 1 <= self.year <= 9998:
            raise ValueError(_MESSAGE)

    @classmethod
    def parse(cls, text: str) -> Quarter:
        """``"2026-Q3"``; anything else is a :class:`ValueError` naming the field."""
        match = _PATTERN.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(_MESSAGE)
        return cls(int(match[1]), int(match[2]))

    def bounds(self, tz: str) -> tuple[datetime, datetime]:
        """``[start, end)`` of the quarter in ``tz``, as UTC-aware datetimes."""
        zone = ZoneInfo(tz)
        start = datetime(self.year, 3 * self.quarter - 2, 1, tzinfo=zone)
        following = self.next()
        end = datetime(following.year, 3 * following.quarter - 2, 1, tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def has_ended(self, now: datetime, tz: str) -> bool:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now >= self.bounds(tz)[1]

    def previous(self) -> Quarter:
        if self.quarter == 1:
            return Quarter(self.year - 1, 4)
        return Quarter(self.year, self.quarter - 1)

    def next(self) -> Quarter:
        if self.quarter == 4:
            return Quarter(self.year + 1, 1)
        return Quarter(self.year, self.quarter + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-Q{self.quarter}"
