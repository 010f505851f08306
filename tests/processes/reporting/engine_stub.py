"""TEMPORARY: a stand-in for the report engine (``hub.reporting``, branch reporting-engine)
until it is merged; installed by this folder's conftest only when the real one is absent.
Its figures are simple counts, its XSD a small one: enough to drive the process."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
from lxml import etree

STUB_XSD = """<?xml version="1.0" encoding="UTF-8"?>
<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    targetNamespace="urn:stub:kev" xmlns="urn:stub:kev" elementFormDefault="qualified">
  <xsd:element name="report">
    <xsd:complexType>
      <xsd:sequence>
        <xsd:element name="simCardsInUse" type="xsd:nonNegativeInteger"/>
      </xsd:sequence>
      <xsd:attribute name="period" type="xsd:string" use="required"/>
      <xsd:attribute name="version" type="xsd:positiveInteger" use="required"/>
    </xsd:complexType>
  </xsd:element>
</xsd:schema>
"""


def install(xsd_dir: Path) -> None:
    (xsd_dir / "kev-mobile-quarterly.xsd").write_text(STUB_XSD)
    schema = etree.XMLSchema(etree.fromstring(STUB_XSD.encode()))

    @dataclass(frozen=True)
    class Quarter:
        year: int
        quarter: int

        @classmethod
        def parse(cls, text: str) -> Quarter:
            try:
                year, q = text.split("-Q")
                value = cls(int(year), int(q))
            except ValueError:
                raise ValueError(f"{text!r} is not a quarter like 2026-Q3") from None
            if not 1 <= value.quarter <= 4:
                raise ValueError(f"{text!r} is not a quarter like 2026-Q3")
            return value

        def bounds(self, tz: Any) -> tuple[datetime, datetime]:
            tz = ZoneInfo(tz)
            start = datetime(self.year, 3 * self.quarter - 2, 1, tzinfo=tz)
            nxt = (self.year + 1, 1) if self.quarter == 4 else (self.year, 3 * self.quarter + 1)
            end = datetime(nxt[0], nxt[1], 1, tzinfo=tz)
            return start.astimezone(UTC), end.astimezone(UTC)

        def has_ended(self, now: datetime, tz: Any) -> bool:
            return now >= self.bounds(tz)[1]

        def previous(self) -> Quarter:
            if self.quarter == 1:
                return Quarter(self.year - 1, 4)
            return Quarter(self.year, self.quarter - 1)

        def __str__(self) -> str:
            return f"{self.year}-Q{self.quarter}"

    @dataclass
    class Finding:
        code: str
        message: str
        indicator: str | None = None
        requires_ack: bool = True

    @dataclass
    class KevIndicators:
        sim_cards_in_use: int
        m2m_sim_cards_in_use: int = 0
        mobile_data_volume_bytes: int = 0
        data_volume_by_rat: dict[str, int] = field(default_factory=dict)
        voice_minutes: str = "0.00"
        sms_count: int = 0
        retail_usage_revenue: dict[str, str] = field(default_factory=dict)
        retail_usage_revenue_total: str = "0.00"
        currency: str = "EUR"
        employees: int | None = None
        investments: str | None = None

    @dataclass
    class ReportHeader:
        report_type: str
        operator_id: str
        period: str
        version: int
        generated_at: datetime
        supersedes: str | None = None

    class DocumentInvalid(ValueError):
        pass

    def compute(
        network,
        billing,
        subscriptions,
        quarter,
        *,
        tz,
        m2m_plans,
        currency,
        manual=None,
        filesystem=None,
    ):  # type: ignore[no-untyped-def]
        import pyarrow.parquet as pq

        imsis = pa.chunked_array(
            [pq.read_table(uri, columns=["served_msisdn"])["served_msisdn"] for uri in network]
        )
        count = len(pc.unique(imsis))
        manual = manual or {}
        return (
            KevIndicators(count, currency=currency, employees=manual.get("employees"),
                          investments=manual.get("investments")),
            [Finding("stub-completeness", "stub engine: no completeness check", None, False)],
        )  # fmt: skip

    def plausibility(current, previous, thresholds):  # type: ignore[no-untyped-def]
        if previous is None:
            return [Finding("no-previous-report", "no accepted report to compare with")]
        return []

    def render(header, indicators) -> bytes:  # type: ignore[no-untyped-def]
        root = etree.Element("{urn:stub:kev}report", nsmap={None: "urn:stub:kev"})
        root.set("period", header.period)
        root.set("version", str(header.version))
        etree.SubElement(root, "{urn:stub:kev}simCardsInUse").text = str(
            indicators.sim_cards_in_use
        )
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def validate(document: bytes) -> None:
        if not schema.validate(etree.fromstring(document)):
            raise DocumentInvalid(str(schema.error_log))

    @dataclass(frozen=True)
    class ReportType:
        name: str
        compute: Any
        render: Any
        validate: Any

    report_types = {
        "kev-mobile-quarterly": ReportType("kev-mobile-quarterly", compute, render, validate)
    }

    def report_type(name: str) -> ReportType:
        if name not in report_types:
            raise ValueError(f"unknown report type {name!r}; known: {', '.join(report_types)}")
        return report_types[name]

    package = types.ModuleType("hub.reporting")
    package.__path__ = []  # type: ignore[attr-defined]
    periods = types.ModuleType("hub.reporting.periods")
    periods.Quarter = Quarter  # type: ignore[attr-defined]
    kev = types.ModuleType("hub.reporting.kev")
    for name, value in {
        "REPORT_TYPE": "kev-mobile-quarterly",
        "Finding": Finding,
        "KevIndicators": KevIndicators,
        "ReportHeader": ReportHeader,
        "DocumentInvalid": DocumentInvalid,
        "compute": compute,
        "plausibility": plausibility,
        "render": render,
        "validate": validate,
        "DEFAULT_THRESHOLDS": {},
    }.items():
        setattr(kev, name, value)
    registry = types.ModuleType("hub.reporting.registry")
    registry.ReportType = ReportType  # type: ignore[attr-defined]
    registry.REPORT_TYPES = report_types  # type: ignore[attr-defined]
    registry.report_type = report_type  # type: ignore[attr-defined]
    for module in (package, periods, kev, registry):
        sys.modules[module.__name__] = module
    package.periods, package.kev, package.registry = periods, kev, registry  # type: ignore[attr-defined]
