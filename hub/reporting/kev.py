"""``kev-mobile-quarterly``: the mobile statistics of the Austrian KEV 2022 (RTR's
Kommunikations-Erhebungs-Verordnung, §1(2)), one report per operator and quarter.

:func:`compute` reduces a quarter of mediation's CDRs and billing's rated usage to the
indicators, columnar (no Python loop over rows); :func:`plausibility` compares them with the
last accepted report; :func:`render` writes the XML that :func:`validate` checks against the
contract ``contracts/kev-mobile-quarterly.xsd``.

The figures, as the regulator asks for them:

- ``simCardsInUse``: distinct ``served_imsi`` with at least one CDR (data, voice or SMS) in
  the quarter; ``m2mSimCardsInUse``: those whose MSISDN's billing subscription is on an M2M plan.
- ``mobileDataVolumeBytes``: uplink + downlink octets of data CDRs, exact, and by ``rat_type``.
- ``voiceMinutes``: the voice CDRs' duration / 60; ``smsCount``: SMS CDRs.
- ``retailUsageRevenue``: billing's *billed* charges by usage type, summed exactly in units of
  10^-CHARGE_DECIMALS, then rounded half up to cents (the total is rounded once, from the
  exact sum, so it may differ from the sum of the rounded parts by a cent). Usage types other
  than data, voice and SMS are not counted.

A record mediation (or billing) delivered twice, the same ``record_id``, counts once. A
record belongs to the quarter by its time in the operator's time zone: the network's opening
time for CDRs, billing's start time for rated usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
from lxml import etree

from hub.reporting.periods import Quarter
from hub.reporting.sources import Part, Totals, codes, numpy, read_table, reduce_files
from hub.usage import CHARGE_DECIMALS, NETWORK_SCHEMA, RATED_SCHEMA, SUBSCRIPTION_SCHEMA

REPORT_TYPE = "kev-mobile-quarterly"
NAMESPACE = "urn:hub:regulatory:kev-mobile-quarterly:1"
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "contracts" / "kev-mobile-quarterly.xsd"
USAGE_TYPES = ("data", "voice", "sms")
CENT = Decimal("0.01")

#: How far an indicator may move against the previous accepted report (relative) before the
#: approver must acknowledge it. Keys are the indicators' names in the API and the XML.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "simCardsInUse": 0.1,
    "m2mSimCardsInUse": 0.2,
    "mobileDataVolumeBytes": 0.25,
    "voiceMinutes": 0.2,
    "smsCount": 0.3,
    "retailUsageRevenue": 0.2,
    "employees": 0.1,
    "investments": 0.5,
}


class DocumentInvalid(ValueError):
    """The document does not validate against the report type's XSD (the schema's message)."""


@dataclass
class Finding:
    code: str  # "moved", "no-previous-report", "day-without-cdrs"
    message: str
    indicator: str | None = None
    requires_ack: bool = True  # the approver must acknowledge it with a comment


@dataclass
class KevIndicators:
    """JSON-friendly: amounts and minutes are decimal strings with two decimals."""

    sim_cards_in_use: int
    m2m_sim_cards_in_use: int
    mobile_data_volume_bytes: int
    data_volume_by_rat: dict[str, int]
    voice_minutes: str
    sms_count: int
    retail_usage_revenue: dict[str, str]
    retail_usage_revenue_total: str
    currency: str
    employees: int | None = None
    investments: str | None = None


@dataclass
class ReportHeader:
    report_type: str
    operator_id: str
    period: str
    version: int
    generated_at: datetime
    supersedes: str | None = None  # receipt id of the version this one supersedes


# --- Compute -------------------------------------------------------------------------------

_NETWORK_INPUT = pa.schema(
    [
        NETWORK_SCHEMA.field(name)
        for name in (
            "record_id",
            "record_type",
            "served_imsi",
            "served_msisdn",
            "record_opening_time",
            "duration",
            "uplink_volume",
            "downlink_volume",
            "rat_type",
        )
    ]
)
_NETWORK_DICTIONARIES = ("record_type", "served_imsi", "served_msisdn", "rat_type")
_RATED_INPUT = pa.schema(
    [RATED_SCHEMA.field(n) for n in ("record_id", "usage_type", "start_time", "charge", "billed")]
)
_KINDS = {"data": 0, "voice": 1, "sms": 2}


def _kind_codes(column: pa.ChunkedArray) -> np.ndarray:
    """0 data, 1 voice, 2 SMS, -1 anything else, per row (mapped on the dictionary)."""
    row_codes, values = codes(column)
    lookup = np.array([_KINDS.get(str(v), -1) for v in values] + [-1], np.int8)
    return lookup[row_codes]


def _day_edges(quarter: Quarter, tz: str) -> np.ndarray:
    """The UTC milliseconds of each local midnight of the quarter, and of its end (DST-aware:
    a day is 23 or 25 hours long when the clocks change)."""
    zone = ZoneInfo(tz)
    first = datetime(quarter.year, 3 * quarter.quarter - 2, 1)
    end = quarter.bounds(tz)[1]
    edges = []
    day = first
    while True:
        instant = day.replace(tzinfo=zone)
        edges.append(int(instant.timestamp() * 1000))
        if instant >= end:
            return np.array(edges, np.int64)
        day += timedelta(days=1)


def _millis(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(
        numpy(pc.cast(pc.cast(column, pa.timestamp("ms", tz="UTC")), pa.int64())), np.int64
    )


def _in_quarter(table: pa.Table, column: str, edges: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    times = _millis(table[column])
    inside = (times >= edges[0]) & (times < edges[-1])
    if inside.all():
        return table, times
    return table.filter(pa.array(inside)), times[inside]


@dataclass
class _NetworkPart:
    days: np.ndarray
    sims: pa.Array
    m2m_sims: pa.Array
    usage: Part


def _network_file(table: pa.Table, edges: np.ndarray, m2m_msisdns: pa.Array) -> _NetworkPart:
    """What one CDR file adds up to (pure: files are reduced in parallel)."""
    table, times = _in_quarter(table, "record_opening_time", edges)
    # Row groups may carry dictionaries of their own: one per column, so codes compare.
    table = table.unify_dictionaries()
    day = np.searchsorted(edges, times, side="right") - 1
    days = np.bincount(day, minlength=len(edges) - 1)
    # SIM cards: a duplicate adds no SIM, so every row counts here.
    imsi, imsis = codes(table["served_imsi"])
    msisdn, msisdns = codes(table["served_msisdn"])
    imsi_values = pa.array(imsis, pa.string())
    sims = imsi_values.take(pa.array(np.unique(imsi[imsi >= 0])))
    on_m2m = pc.fill_null(pc.is_in(pa.array(msisdns, pa.string()), value_set=m2m_msisdns), False)
    m2m_row = np.append(np.asarray(numpy(on_m2m), bool), False)[msisdn]
    m2m_sims = imsi_values.take(pa.array(np.unique(imsi[m2m_row & (imsi >= 0)])))
    # Usage by bucket: data by RAT, voice seconds, one per SMS.
    kind = _kind_codes(table["record_type"])
    rat, rats = codes(table["rat_type"])
    volume = numpy(
        pc.add(pc.fill_null(table["uplink_volume"], 0), pc.fill_null(table["downlink_volume"], 0))
    )
    duration = numpy(pc.fill_null(table["duration"], 0))
    quantity = np.where(kind == 0, volume, np.where(kind == 1, duration, 1)).astype(np.int64)
    # Buckets: each RAT of the file, then data without a RAT, voice, SMS, other.
    others = len(rats) + 1
    bucket = np.where(rat >= 0, rat, len(rats))
    bucket = np.where(kind == 0, bucket, others + np.where(kind < 0, 2, kind - 1))
    names = [f"data:{r}" for r in rats] + ["data:UNKNOWN", "voice", "sms", "other"]
    return _NetworkPart(days, sims, m2m_sims, Part.of(table["record_id"], bucket, names, quantity))


def _rated_file(table: pa.Table, edges: np.ndarray) -> Part:
    """What one rated usage file adds up to: billed charges in 10^-CHARGE_DECIMALS units."""
    billed = pc.fill_null(table["billed"], False)
    table, _ = _in_quarter(table.filter(billed), "start_time", edges)
    table = table.unify_dictionaries()
    charge = np.asarray(numpy(pc.fill_null(table["charge"], 0.0)), np.float64)
    units = np.rint(charge * 10**CHARGE_DECIMALS).astype(np.int64)
    kinds, names = codes(table["usage_type"])
    bucket = np.where(kinds >= 0, kinds, len(names))
    return Part.of(table["record_id"], bucket, [str(n) for n in names] + ["other"], units)


def compute(
    network: list[str],
    billing: list[str],
    subscriptions: str | None,
    quarter: Quarter,
    *,
    tz: str,
    m2m_plans: list[str],
    currency: str,
    manual: dict[str, Any] | None = None,
    filesystem: pafs.FileSystem | None = None,
) -> tuple[KevIndicators, list[Finding]]:
    """The quarter's indicators from CDR files, rated usage files and billing's subscriptions,
    with the completeness findings (each local day of the quarter without any CDR)."""
    edges = _day_edges(quarter, tz)
    employees, investments = _manual(manual or {})
    m2m_msisdns = _m2m_msisdns(subscriptions, m2m_plans, filesystem)

    def network_file(path: str) -> _NetworkPart:
        table = read_table(
            path, _NETWORK_INPUT, dictionaries=_NETWORK_DICTIONARIES, filesystem=filesystem
        )
        return _network_file(table, edges, m2m_msisdns)

    days = np.zeros(len(edges) - 1, np.int64)
    sims: list[pa.Array] = [pa.array([], pa.string())]
    m2m_sims: list[pa.Array] = [pa.array([], pa.string())]
    totals = Totals()
    for part in reduce_files(network, network_file):
        days += part.days
        sims.append(part.sims)
        m2m_sims.append(part.m2m_sims)
        totals.add(part.usage)
    usage = totals.result()
    del totals
    by_rat = {
        name.removeprefix("data:"): volume
        for name, volume in sorted(usage.items())
        if name.startswith("data:")
    }
    revenue_units = _revenue_units(billing, edges, filesystem)
    scale = Decimal(10) ** CHARGE_DECIMALS
    revenue = {t: _cents(Decimal(units) / scale) for t, units in revenue_units.items()}
    indicators = KevIndicators(
        sim_cards_in_use=len(pc.unique(pa.concat_arrays(sims))),
        m2m_sim_cards_in_use=len(pc.unique(pa.concat_arrays(m2m_sims))),
        mobile_data_volume_bytes=sum(by_rat.values()),
        data_volume_by_rat=by_rat,
        voice_minutes=_cents(Decimal(usage.get("voice", 0)) / 60),
        sms_count=usage.get("sms", 0),
        retail_usage_revenue=revenue,
        retail_usage_revenue_total=_cents(Decimal(sum(revenue_units.values())) / scale),
        currency=currency,
        employees=employees,
        investments=investments,
    )
    zone = ZoneInfo(tz)
    findings = []
    for index in np.flatnonzero(days == 0):
        day = datetime.fromtimestamp(edges[index] / 1000, zone).date().isoformat()
        findings.append(
            Finding("day-without-cdrs", f"no CDRs at all on {day} ({tz})", "simCardsInUse")
        )
    return indicators, findings


def _cents(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


#: The figures no system the hub reads holds, as a task's form asks for them:
#: name, form type, label, pattern (a string's), minimum (a number's).
MANUAL_FIGURES: tuple[tuple[str, str, str, str | None, float | None], ...] = (
    ("employees", "integer", "Employees (head count)", None, 0),
    ("investments", "string", "Investments, 2 decimals", r"[0-9]{1,15}(\.[0-9]{1,2})?", None),
)


def _manual(manual: dict[str, Any]) -> tuple[int | None, str | None]:
    unknown = set(manual) - {name for name, *_ in MANUAL_FIGURES}
    if unknown:
        raise ValueError(f"manualFigures: unknown figure(s) {sorted(unknown)}")
    employees = manual.get("employees")
    if employees is not None and (
        isinstance(employees, bool) or not isinstance(employees, int) or employees < 0
    ):
        raise ValueError("manualFigures.employees: expected a whole number, at least 0")
    investments = manual.get("investments")
    if investments is not None:
        try:
            amount = Decimal(str(investments))
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite():
            raise ValueError("manualFigures.investments: expected an amount, e.g. 1250000.00")
        investments = _cents(amount)
    return employees, investments


def _m2m_msisdns(
    subscriptions: str | None, m2m_plans: list[str], filesystem: pafs.FileSystem | None
) -> pa.Array:
    """The MSISDNs whose billing subscription is on an M2M plan."""
    if subscriptions is None or not m2m_plans:
        return pa.array([], pa.string())
    plans = read_table(subscriptions, SUBSCRIPTION_SCHEMA, filesystem=filesystem)
    on_m2m = plans.filter(pc.is_in(plans["plan"], value_set=pa.array(m2m_plans, pa.string())))
    return on_m2m["msisdn"].combine_chunks()


def _revenue_units(
    billing: list[str], edges: np.ndarray, filesystem: pafs.FileSystem | None
) -> dict[str, int]:
    """Billed charges by usage type in units of 10^-CHARGE_DECIMALS (exact integers)."""

    def rated_file(path: str) -> Part:
        table = read_table(path, _RATED_INPUT, dictionaries=("usage_type",), filesystem=filesystem)
        return _rated_file(table, edges)

    totals = Totals()
    for part in reduce_files(billing, rated_file):
        totals.add(part)
    found = totals.result()
    # The report's usage types; billing's others are not retail usage.
    return {name: found.get(name, 0) for name in USAGE_TYPES}


# --- Plausibility --------------------------------------------------------------------------


def _figures(indicators: KevIndicators) -> dict[str, Decimal | None]:
    def number(value: int | str | None) -> Decimal | None:
        return None if value is None else Decimal(value)

    return {
        "simCardsInUse": number(indicators.sim_cards_in_use),
        "m2mSimCardsInUse": number(indicators.m2m_sim_cards_in_use),
        "mobileDataVolumeBytes": number(indicators.mobile_data_volume_bytes),
        "voiceMinutes": number(indicators.voice_minutes),
        "smsCount": number(indicators.sms_count),
        "retailUsageRevenue": number(indicators.retail_usage_revenue_total),
        "employees": number(indicators.employees),
        "investments": number(indicators.investments),
    }


def plausibility(
    current: KevIndicators, previous: KevIndicators | None, thresholds: dict[str, float]
) -> list[Finding]:
    """An indicator that moved more than its threshold (relative) against the previous
    accepted report is a finding; so is having no previous report to compare with. Only the
    indicators ``thresholds`` names are checked."""
    if previous is None:
        return [
            Finding(
                "no-previous-report",
                "no accepted report of the previous quarter: nothing to compare the figures with",
            )
        ]
    findings = []
    now, before = _figures(current), _figures(previous)
    for name, limit in thresholds.items():
        value, old = now.get(name), before.get(name)
        if value is None or old is None or value == old:
            continue
        if old == 0:
            findings.append(Finding("moved", f"{name} is {value}, was 0", name))
            continue
        change = (value - old) / abs(old)
        if abs(change) > Decimal(str(limit)):
            percent = (change * 100).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
            findings.append(
                Finding(
                    "moved",
                    f"{name} moved {percent:+}% ({old} to {value}); threshold {limit:.0%}",
                    name,
                )
            )
    return findings


# --- XML -----------------------------------------------------------------------------------


def _element(parent: etree._Element, name: str, value: object, **attributes: str) -> None:
    child = etree.SubElement(parent, f"{{{NAMESPACE}}}{name}", attributes)
    child.text = str(value)


def render(header: ReportHeader, indicators: KevIndicators) -> bytes:
    """The report as XML (UTF-8), every figure with its unit, in the contract's order."""
    q = f"{{{NAMESPACE}}}"
    root = etree.Element(f"{q}kevReport", nsmap={None: NAMESPACE})
    head = etree.SubElement(root, f"{q}header")
    _element(head, "reportType", header.report_type)
    _element(head, "operatorId", header.operator_id)
    _element(head, "period", header.period)
    _element(head, "version", header.version)
    _element(head, "generatedAt", header.generated_at.isoformat())
    if header.supersedes is not None:
        _element(head, "supersedes", header.supersedes)
    sims = etree.SubElement(root, f"{q}simCards")
    _element(sims, "simCardsInUse", indicators.sim_cards_in_use, unit="count")
    _element(sims, "m2mSimCardsInUse", indicators.m2m_sim_cards_in_use, unit="count")
    data = etree.SubElement(root, f"{q}mobileDataVolume")
    _element(data, "total", indicators.mobile_data_volume_bytes, unit="byte")
    for rat, volume in indicators.data_volume_by_rat.items():
        _element(data, "byRat", volume, unit="byte", ratType=rat)
    voice = etree.SubElement(root, f"{q}voiceTraffic")
    _element(voice, "minutes", indicators.voice_minutes, unit="minute")
    sms = etree.SubElement(root, f"{q}smsTraffic")
    _element(sms, "count", indicators.sms_count, unit="count")
    revenue = etree.SubElement(root, f"{q}retailUsageRevenue")
    for usage, amount in indicators.retail_usage_revenue.items():
        _element(revenue, "byUsageType", amount, unit=indicators.currency, usageType=usage)
    _element(revenue, "total", indicators.retail_usage_revenue_total, unit=indicators.currency)
    if indicators.employees is not None:
        staff = etree.SubElement(root, f"{q}employees")
        _element(staff, "headcount", indicators.employees, unit="person")
    if indicators.investments is not None:
        invest = etree.SubElement(root, f"{q}investments")
        _element(invest, "amount", indicators.investments, unit=indicators.currency)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


@cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH)))


def validate(document: bytes) -> None:
    """Raise :class:`DocumentInvalid` with the schema's message unless ``document`` validates."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        tree = etree.fromstring(document, parser)
    except etree.XMLSyntaxError as exc:
        raise DocumentInvalid(f"not well-formed XML: {exc}") from exc
    schema = _schema()
    if not schema.validate(tree):
        errors = "; ".join(f"line {e.line}: {e.message}" for e in schema.error_log)
        raise DocumentInvalid(errors)


__all__ = [
    "DEFAULT_THRESHOLDS",
    "REPORT_TYPE",
    "DocumentInvalid",
    "Finding",
    "KevIndicators",
    "ReportHeader",
    "compute",
    "plausibility",
    "render",
    "validate",
]
