"""The report types the hub can produce: one entry per type, so another plugs in beside KEV.

A type is its engine: ``compute`` (sources to figures and findings), ``render`` (header and
figures to the document) and ``validate`` (the document against the type's contract).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub.reporting import kev
from hub.reporting.kev import Finding, ReportHeader


@dataclass(frozen=True)
class ReportType:
    name: str
    compute: Callable[..., tuple[Any, list[Finding]]]
    render: Callable[[ReportHeader, Any], bytes]
    validate: Callable[[bytes], None]


REPORT_TYPES: dict[str, ReportType] = {
    kev.REPORT_TYPE: ReportType(
        name=kev.REPORT_TYPE, compute=kev.compute, render=kev.render, validate=kev.validate
    ),
}


def report_type(name: str) -> ReportType:
    """The type called ``name``; an unknown name is a ValueError naming the field."""
    try:
        return REPORT_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(REPORT_TYPES))
        raise ValueError(f"reportType: unknown report type {name!r}; one of {known}") from None
