"""The inventory audit's comparison: the HSS, billing and the CRM against the hub's record.

Pure and columnar: every input is an Arrow table (schemas below), the comparison is a handful
of joins on the IMSI and vectorised masks, and no row is ever visited in Python, so a million
subscribers per system take seconds (``bench/inventory.py``).

Each difference is one row ``(imsi, category, system)``; a subscriber can be in several
categories (its HSS entry and its billing subscription can both be wrong). The categories:

=======================  ===========  ========================================================
category                 system       when; revenue at stake (per month)
=======================  ===========  ========================================================
``in_hss_not_billed``    billing      the HSS serves the IMSI, billing has no active
                                      subscription for it: a revenue leak, priced with the
                                      monthly fee of its plan (the hub's, else the CRM's, else
                                      the catalogue plan whose QoS the HSS grants)
``billed_not_in_hss``    hss          billing charges an active subscription the HSS does not
                                      serve: the customer pays for nothing (billed fee)
``not_provisioned``      hss,billing  the hub's record says active, neither the HSS nor
                                      billing has it (the plan's fee is not being billed)
``missing_in_crm``       crm          the hub's record says active, the CRM has no service
``plan_or_qos_mismatch`` hss|billing  the hub's record says active and the system has another
                         |crm         plan (billing, CRM) or QoS (HSS: QCI, AMBR); billing's
                                      revenue at stake is the difference of the monthly fees
``status_mismatch``      hss|billing  the hub's record says terminated and the system still
                         |crm         has it live (HSS entry, active subscription, CRM
                                      service; billing's fee is at stake), or says active and
                                      the HSS bars it / the CRM's service is not ``active``
``unknown_to_hub``       where found  no completed order ever named the IMSI, but a system has
                                      it (``system`` lists which)
=======================  ===========  ========================================================

MSISDNs are compared as digits (billing and the HSS store them without ``+``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc


class Category(StrEnum):
    IN_HSS_NOT_BILLED = "in_hss_not_billed"
    BILLED_NOT_IN_HSS = "billed_not_in_hss"
    NOT_PROVISIONED = "not_provisioned"
    MISSING_IN_CRM = "missing_in_crm"
    PLAN_OR_QOS_MISMATCH = "plan_or_qos_mismatch"
    STATUS_MISMATCH = "status_mismatch"
    UNKNOWN_TO_HUB = "unknown_to_hub"


#: The hub's record: one row per IMSI a completed order ever named, its latest state.
HUB_SCHEMA = pa.schema(
    [
        pa.field("imsi", pa.string(), nullable=False),
        pa.field("msisdn", pa.string()),
        pa.field("customer_id", pa.string()),
        pa.field("status", pa.string(), nullable=False),  # active | terminated
        pa.field("plan", pa.string()),
        pa.field("qci", pa.int32()),
        pa.field("ambr_downlink", pa.int64()),
        pa.field("ambr_uplink", pa.int64()),
    ]
)
#: The HSS's subscribers; ``barred``: Open5GS ``subscriber_status`` 1 (operator barring).
HSS_SCHEMA = pa.schema(
    [
        pa.field("imsi", pa.string(), nullable=False),
        pa.field("msisdn", pa.string()),
        pa.field("barred", pa.bool_(), nullable=False),
        pa.field("qci", pa.int32()),
        pa.field("ambr_downlink", pa.int64()),
        pa.field("ambr_uplink", pa.int64()),
    ]
)
#: Billing's subscriptions, every status (terminated ones are history).
BILLING_SCHEMA = pa.schema(
    [
        pa.field("subscription_id", pa.string(), nullable=False),
        pa.field("imsi", pa.string()),
        pa.field("msisdn", pa.string()),
        pa.field("plan", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("monthly_fee", pa.float64()),
    ]
)
#: The CRM's services of every customer.
CRM_SCHEMA = pa.schema(
    [
        pa.field("service_id", pa.string(), nullable=False),
        pa.field("customer_id", pa.string()),
        pa.field("imsi", pa.string()),
        pa.field("msisdn", pa.string()),
        pa.field("plan", pa.string()),
        pa.field("status", pa.string()),
    ]
)
#: Billing's catalogue: each plan's monthly fee and the QoS it grants.
CATALOGUE_SCHEMA = pa.schema(
    [
        pa.field("plan", pa.string(), nullable=False),
        pa.field("monthly_fee", pa.float64(), nullable=False),
        pa.field("qci", pa.int32()),
        pa.field("ambr_downlink", pa.int64()),
        pa.field("ambr_uplink", pa.int64()),
    ]
)
DIFFERENCE_SCHEMA = pa.schema(
    [
        pa.field("imsi", pa.string(), nullable=False),
        pa.field("msisdn", pa.string()),
        pa.field("customer_id", pa.string()),
        pa.field("category", pa.string(), nullable=False),
        pa.field("system", pa.string(), nullable=False),
        pa.field("hub_status", pa.string()),
        pa.field("plan", pa.string()),
        #: What the hub's record says, and what the system has (plan, QoS or status).
        pa.field("expected", pa.string()),
        pa.field("observed", pa.string()),
        #: Per month, in the catalogue's currency; 0 where no revenue is at stake.
        pa.field("revenue_at_stake", pa.float64(), nullable=False),
    ]
)


@dataclass
class CategoryTotal:
    count: int = 0
    revenue_at_stake: float = 0.0


@dataclass
class AuditSummary:
    hub_records: int = 0
    hss_records: int = 0
    billing_records: int = 0
    crm_records: int = 0
    differences: int = 0
    revenue_at_stake: float = 0.0
    categories: dict[str, CategoryTotal] = field(default_factory=dict)


def _digits(values: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.utf8_ltrim(values, characters="+")


Column: TypeAlias = pa.ChunkedArray | pa.Array


def _aligned(
    universe: pa.Array, keys: Column, table: pa.Table, prefix: str, flag: str
) -> dict[str, Column]:
    """``table``'s columns lined up with ``universe`` (the first row of each IMSI, nulls where
    it has none), and ``flag``: whether it has the IMSI. A hash lookup, not a join: no payload
    column is copied more than once."""
    rows = pc.index_in(universe, value_set=pa.chunked_array(keys).combine_chunks())
    columns: dict[str, Column] = {flag: pc.is_valid(rows)}
    for name in table.column_names:
        if name != "imsi":
            values = _digits(table[name]) if name == "msisdn" else table[name]
            columns[f"{prefix}{name}"] = values.take(rows)
    return columns


IMSI_DIGITS = 15


def _keys(imsis: list[pa.ChunkedArray]) -> tuple[list[Column], bool]:
    """The IMSIs as the lookups' keys: 64-bit integers when every one is 15 digits (hashing a
    number is several times faster than hashing its text), else the text itself."""
    numeric = all(
        pc.all(
            pc.fill_null(
                pc.and_(pc.equal(pc.utf8_length(column), IMSI_DIGITS), pc.utf8_is_digit(column)),
                True,
            )
        ).as_py()
        is not False
        for column in imsis
    )
    if not numeric:
        return list(imsis), False
    return [pc.cast(column, pa.int64()) for column in imsis], True


def _fee(catalogue: pa.Table, plans: Column) -> Column:
    """The monthly fee of each plan (null for a plan the catalogue does not have)."""
    return catalogue["monthly_fee"].take(pc.index_in(plans, value_set=catalogue["plan"]))


def _wide(
    hub: pa.Table, hss: pa.Table, billing: pa.Table, crm: pa.Table, catalogue: pa.Table
) -> pa.Table:
    """Every IMSI any side knows, with each side's columns (``hub_``, ``hss_``, ``bill_``,
    ``crm_``, nulls where it has none) and the fees of the hub's and the CRM's plans."""
    active = billing.filter(pc.equal(billing["status"], "active"))
    sides = [
        (hub, "hub_", "in_hub"),
        (hss, "hss_", "in_hss"),
        (active, "bill_", "in_billing"),
        (crm, "crm_", "in_crm"),
    ]
    keys, numeric = _keys([table["imsi"] for table, _, _ in sides])
    kind = pa.int64() if numeric else pa.string()
    everything = pa.chunked_array(
        [chunk for column in keys for chunk in pa.chunked_array(column).chunks], kind
    )
    universe = pc.drop_null(pc.unique(everything))
    imsi = pc.utf8_lpad(pc.cast(universe, pa.string()), IMSI_DIGITS, "0") if numeric else universe
    columns: dict[str, Column] = {"imsi": imsi}
    for (table, prefix, flag), key in zip(sides, keys, strict=True):
        columns |= _aligned(universe, key, table, prefix, flag)
    columns["hub_fee"] = _fee(catalogue, columns["hub_plan"])
    columns["crm_fee"] = _fee(catalogue, columns["crm_plan"])
    return pa.table(columns)


def _qos_fee(part: pa.Table, catalogue: pa.Table) -> pa.ChunkedArray:
    """The fee of the catalogue plan whose QoS the HSS grants (the cheapest of several):
    a leak's price where neither the hub nor the CRM names a plan. Only for ``part``'s rows."""
    keys = ["qci", "ambr_downlink", "ambr_uplink"]
    by_qos = (
        catalogue.group_by(keys, use_threads=False)
        .aggregate([("monthly_fee", "min")])
        .rename_columns([*(f"hss_{k}" for k in keys), "qos_fee"])
    )
    numbered = part.select([f"hss_{k}" for k in keys]).append_column(
        "_row", pa.array(range(part.num_rows), pa.int64())
    )
    joined = numbered.join(by_qos, [f"hss_{k}" for k in keys], join_type="left outer")
    return joined.sort_by("_row")["qos_fee"]


def _text(values: Column) -> Column:
    return pc.cast(values, pa.string())


def _qos_text(part: pa.Table, prefix: str) -> Column:
    return pc.binary_join_element_wise(
        pc.binary_join_element_wise("qci ", _text(part[f"{prefix}qci"]), ""),
        pc.binary_join_element_wise(
            _text(part[f"{prefix}ambr_downlink"]), _text(part[f"{prefix}ambr_uplink"]), "/"
        ),
        " ambr ",
    )


Derived: TypeAlias = Callable[[pa.Table], Column | str | None]


def _value(part: pa.Table, derive: Derived | str | None, kind: pa.DataType) -> Column:
    value = derive(part) if callable(derive) else derive
    if value is None:
        return pa.nulls(part.num_rows, kind)
    if isinstance(value, str):
        return pa.array([value] * part.num_rows, kind)
    return value


def _rows(
    wide: pa.Table,
    mask: Column,
    category: Category,
    system: Derived | str,
    *,
    plan: Derived | None = None,
    expected: Derived | str | None = None,
    observed: Derived | str | None = None,
    revenue: Derived | None = None,
) -> pa.Table:
    """The differences of one category: ``wide``'s rows under ``mask``, each value derived
    from those rows only (a category is a small part of an inventory)."""
    part = wide.filter(pc.fill_null(mask, False))
    columns = {
        "imsi": part["imsi"],
        "msisdn": pc.coalesce(
            part["hub_msisdn"], part["hss_msisdn"], part["bill_msisdn"], part["crm_msisdn"]
        ),
        "customer_id": pc.coalesce(part["hub_customer_id"], part["crm_customer_id"]),
        "category": _value(part, category.value, pa.string()),
        "system": _value(part, system, pa.string()),
        "hub_status": part["hub_status"],
        "plan": _value(part, plan or (lambda p: p["hub_plan"]), pa.string()),
        "expected": _value(part, expected, pa.string()),
        "observed": _value(part, observed, pa.string()),
        "revenue_at_stake": pc.round(
            pc.fill_null(pc.cast(_value(part, revenue, pa.float64()), pa.float64()), 0.0), 4
        ),
    }
    return pa.table(columns).cast(DIFFERENCE_SCHEMA)


def compare(
    hub: pa.Table, hss: pa.Table, billing: pa.Table, crm: pa.Table, catalogue: pa.Table
) -> tuple[pa.Table, AuditSummary]:
    """Every difference (``DIFFERENCE_SCHEMA``, ordered by category and IMSI) and the totals."""
    hub, hss, crm = hub.cast(HUB_SCHEMA), hss.cast(HSS_SCHEMA), crm.cast(CRM_SCHEMA)
    billing, catalogue = billing.cast(BILLING_SCHEMA), catalogue.cast(CATALOGUE_SCHEMA)
    wide = _wide(hub, hss, billing, crm, catalogue)
    in_hub, in_hss = wide["in_hub"], wide["in_hss"]
    in_billing, in_crm = wide["in_billing"], wide["in_crm"]
    hub_active = pc.and_(in_hub, pc.equal(wide["hub_status"], "active"))
    hub_gone = pc.and_(in_hub, pc.not_equal(wide["hub_status"], "active"))
    barred = pc.fill_null(wide["hss_barred"], False)
    neq = _differs

    parts = [
        _rows(
            wide,
            pc.and_(in_hss, pc.invert(in_billing)),
            Category.IN_HSS_NOT_BILLED,
            "billing",
            plan=lambda p: pc.coalesce(p["hub_plan"], p["crm_plan"]),
            expected="active subscription",
            observed="none",
            revenue=lambda p: pc.coalesce(p["hub_fee"], p["crm_fee"], _qos_fee(p, catalogue)),
        ),
        _rows(
            wide,
            pc.and_(in_billing, pc.invert(in_hss)),
            Category.BILLED_NOT_IN_HSS,
            "hss",
            plan=lambda p: p["bill_plan"],
            expected="subscriber",
            observed="none",
            revenue=lambda p: p["bill_monthly_fee"],
        ),
        _rows(
            wide,
            pc.and_(hub_active, pc.and_(pc.invert(in_hss), pc.invert(in_billing))),
            Category.NOT_PROVISIONED,
            "hss,billing",
            expected="active",
            observed="none",
            revenue=lambda p: p["hub_fee"],
        ),
        _rows(
            wide,
            pc.and_(hub_active, pc.invert(in_crm)),
            Category.MISSING_IN_CRM,
            "crm",
            expected="service",
            observed="none",
        ),
        # Plans and QoS, where both sides have the subscriber.
        _rows(
            wide,
            pc.and_(
                pc.and_(hub_active, in_hss),
                pc.or_(
                    neq(wide["hub_qci"], wide["hss_qci"]),
                    pc.or_(
                        neq(wide["hub_ambr_downlink"], wide["hss_ambr_downlink"]),
                        neq(wide["hub_ambr_uplink"], wide["hss_ambr_uplink"]),
                    ),
                ),
            ),
            Category.PLAN_OR_QOS_MISMATCH,
            "hss",
            expected=lambda p: _qos_text(p, "hub_"),
            observed=lambda p: _qos_text(p, "hss_"),
        ),
        _rows(
            wide,
            pc.and_(pc.and_(hub_active, in_billing), neq(wide["hub_plan"], wide["bill_plan"])),
            Category.PLAN_OR_QOS_MISMATCH,
            "billing",
            expected=lambda p: p["hub_plan"],
            observed=lambda p: p["bill_plan"],
            revenue=lambda p: pc.abs(pc.subtract(p["hub_fee"], p["bill_monthly_fee"])),
        ),
        _rows(
            wide,
            pc.and_(
                pc.and_(hub_active, in_crm),
                pc.and_(pc.is_valid(wide["crm_plan"]), neq(wide["hub_plan"], wide["crm_plan"])),
            ),
            Category.PLAN_OR_QOS_MISMATCH,
            "crm",
            expected=lambda p: p["hub_plan"],
            observed=lambda p: p["crm_plan"],
        ),
        # Statuses: terminated in the hub's record but still live, or active but not served.
        _rows(
            wide,
            pc.or_(pc.and_(hub_gone, in_hss), pc.and_(pc.and_(hub_active, in_hss), barred)),
            Category.STATUS_MISMATCH,
            "hss",
            expected=lambda p: p["hub_status"],
            observed=lambda p: pc.if_else(
                pc.fill_null(p["hss_barred"], False), "barred", "subscriber"
            ),
        ),
        _rows(
            wide,
            pc.and_(hub_gone, in_billing),
            Category.STATUS_MISMATCH,
            "billing",
            plan=lambda p: p["bill_plan"],
            expected=lambda p: p["hub_status"],
            observed="active",
            revenue=lambda p: p["bill_monthly_fee"],
        ),
        _rows(
            wide,
            pc.or_(
                pc.and_(hub_gone, in_crm),
                pc.and_(pc.and_(hub_active, in_crm), neq(wide["crm_status"], pa.scalar("active"))),
            ),
            Category.STATUS_MISMATCH,
            "crm",
            expected=lambda p: p["hub_status"],
            observed=lambda p: p["crm_status"],
        ),
        _rows(
            wide,
            pc.and_(pc.invert(in_hub), pc.or_(in_hss, pc.or_(in_billing, in_crm))),
            Category.UNKNOWN_TO_HUB,
            _where,
            plan=lambda p: pc.coalesce(p["bill_plan"], p["crm_plan"]),
            observed="present",
        ),
    ]
    found = pa.concat_tables(parts).sort_by([("category", "ascending"), ("imsi", "ascending")])
    return found, _summary(found, hub, hss, billing, crm)


def _differs(left: Column, right: Column | pa.Scalar) -> Column:
    """``left != right``, a null on one side only counting as different."""
    return pc.fill_null(pc.not_equal(left, right), True)


def _where(part: pa.Table) -> Column:
    """``billing,crm,hss``: the systems that have the IMSI."""
    names = [("billing", part["in_billing"]), ("crm", part["in_crm"]), ("hss", part["in_hss"])]
    pieces = [pc.if_else(flag, f"{name},", "") for name, flag in names]
    return pc.utf8_rtrim(pc.binary_join_element_wise(*pieces, ""), characters=",")


def _summary(
    found: pa.Table, hub: pa.Table, hss: pa.Table, billing: pa.Table, crm: pa.Table
) -> AuditSummary:
    summary = AuditSummary(
        hub_records=int(pc.sum(pc.equal(hub["status"], "active")).as_py() or 0),
        hss_records=hss.num_rows,
        billing_records=int(pc.sum(pc.equal(billing["status"], "active")).as_py() or 0),
        crm_records=crm.num_rows,
        differences=found.num_rows,
    )
    if found.num_rows:
        grouped = found.group_by("category").aggregate(
            [("category", "count"), ("revenue_at_stake", "sum")]
        )
        for row in grouped.to_pylist():
            summary.categories[row["category"]] = CategoryTotal(
                row["category_count"], round(row["revenue_at_stake_sum"], 4)
            )
    summary.categories = dict(sorted(summary.categories.items()))
    summary.revenue_at_stake = round(
        sum(total.revenue_at_stake for total in summary.categories.values()), 4
    )
    return summary


def latest_record(changes: pa.Table) -> pa.Table:
    """The hub's record (``HUB_SCHEMA``) from ``subscriber_inventory`` rows: the latest change
    of each IMSI (by ``changed_at``, then order and item), columnar."""
    changes = changes.filter(pc.is_valid(changes["imsi"]))
    if changes.num_rows == 0:
        return HUB_SCHEMA.empty_table()
    ordered = changes.sort_by(
        [("changed_at", "ascending"), ("order_id", "ascending"), ("item_id", "ascending")]
    )
    index = pa.array(range(ordered.num_rows), pa.int64())
    last = (
        ordered.select(["imsi"])
        .append_column("_row", index)
        .group_by("imsi", use_threads=False)
        .aggregate([("_row", "max")])
    )
    rows = last["_row_max"]
    latest = ordered.take(pc.take(rows, pc.sort_indices(rows)))
    return latest.select(HUB_SCHEMA.names).cast(HUB_SCHEMA)
