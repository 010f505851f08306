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

from dataclasses import dataclass, field
from enum import StrEnum

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


def _prefixed(table: pa.Table, prefix: str) -> pa.Table:
    return table.rename_columns([c if c == "imsi" else f"{prefix}{c}" for c in table.column_names])


def _first_per_imsi(table: pa.Table) -> pa.Table:
    """One row per IMSI (the first), rows without an IMSI dropped."""
    table = table.filter(pc.is_valid(table["imsi"]))
    if table.num_rows == 0:
        return table
    index = pa.array(range(table.num_rows), pa.int64())
    firsts = (
        table.select(["imsi"])
        .append_column("_row", index)
        .group_by("imsi", use_threads=False)
        .aggregate([("_row", "min")])
    )
    rows = firsts["_row_min"]
    return table.take(pc.take(rows, pc.sort_indices(rows)))


def _side(table: pa.Table, prefix: str, flag: str) -> pa.Table:
    table = _prefixed(_first_per_imsi(table), prefix)
    return table.append_column(flag, pa.array([True] * table.num_rows, pa.bool_()))


def _wide(
    hub: pa.Table, hss: pa.Table, billing: pa.Table, crm: pa.Table, catalogue: pa.Table
) -> pa.Table:
    """Every IMSI any side knows, with each side's columns (``hub_``, ``hss_``, ``bill_``,
    ``crm_``) and the fees of the hub's and billing's plans."""
    hub = hub.set_column(hub.schema.get_field_index("msisdn"), "msisdn", _digits(hub["msisdn"]))
    hss = hss.set_column(hss.schema.get_field_index("msisdn"), "msisdn", _digits(hss["msisdn"]))
    active = billing.filter(pc.equal(billing["status"], "active"))
    active = active.set_column(
        active.schema.get_field_index("msisdn"), "msisdn", _digits(active["msisdn"])
    )
    crm = crm.set_column(crm.schema.get_field_index("msisdn"), "msisdn", _digits(crm["msisdn"]))
    sides = [
        _side(hub, "hub_", "in_hub"),
        _side(hss, "hss_", "in_hss"),
        _side(active, "bill_", "in_billing"),
        _side(crm, "crm_", "in_crm"),
    ]
    wide = sides[0]
    for side in sides[1:]:
        wide = wide.join(side, "imsi", join_type="full outer", coalesce_keys=True)
    for flag in ("in_hub", "in_hss", "in_billing", "in_crm"):
        wide = wide.set_column(
            wide.schema.get_field_index(flag), flag, pc.fill_null(wide[flag], False)
        )
    fees = catalogue.select(["plan", "monthly_fee"])
    wide = wide.join(
        fees.rename_columns(["hub_plan", "hub_fee"]), "hub_plan", join_type="left outer"
    )
    wide = wide.join(
        fees.rename_columns(["crm_plan", "crm_fee"]), "crm_plan", join_type="left outer"
    )
    # The plan whose QoS the HSS grants: a leak's price when neither the hub nor the CRM knows.
    by_qos = catalogue.select(["qci", "ambr_downlink", "ambr_uplink", "monthly_fee"])
    by_qos = _first_qos(by_qos).rename_columns(
        ["hss_qci", "hss_ambr_downlink", "hss_ambr_uplink", "qos_fee"]
    )
    wide = wide.join(
        by_qos, ["hss_qci", "hss_ambr_downlink", "hss_ambr_uplink"], join_type="left outer"
    )
    return wide.combine_chunks()


def _first_qos(table: pa.Table) -> pa.Table:
    """One catalogue row per QoS (several plans can grant the same)."""
    if table.num_rows == 0:
        return table
    return table.group_by(["qci", "ambr_downlink", "ambr_uplink"], use_threads=False).aggregate(
        [("monthly_fee", "first")]
    )


def _text(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return pc.cast(values, pa.string())


def _qos_text(wide: pa.Table, prefix: str) -> pa.ChunkedArray:
    return pc.binary_join_element_wise(
        pc.binary_join_element_wise("qci ", _text(wide[f"{prefix}qci"]), ""),
        pc.binary_join_element_wise(
            _text(wide[f"{prefix}ambr_downlink"]), _text(wide[f"{prefix}ambr_uplink"]), "/"
        ),
        " ambr ",
    )


def _rows(
    wide: pa.Table,
    mask: pa.ChunkedArray | pa.Array,
    category: Category,
    system: str | pa.ChunkedArray,
    *,
    plan: pa.ChunkedArray | None = None,
    expected: pa.ChunkedArray | None = None,
    observed: pa.ChunkedArray | None = None,
    revenue: pa.ChunkedArray | None = None,
) -> pa.Table:
    mask = pc.fill_null(mask, False)
    n = wide.num_rows
    columns = {
        "imsi": wide["imsi"],
        "msisdn": pc.coalesce(
            wide["hub_msisdn"], wide["hss_msisdn"], wide["bill_msisdn"], wide["crm_msisdn"]
        ),
        "customer_id": pc.coalesce(wide["hub_customer_id"], wide["crm_customer_id"]),
        "category": pa.array([category.value] * n, pa.string()),
        "system": system if not isinstance(system, str) else pa.array([system] * n, pa.string()),
        "hub_status": wide["hub_status"],
        "plan": plan if plan is not None else wide["hub_plan"],
        "expected": expected if expected is not None else pa.nulls(n, pa.string()),
        "observed": observed if observed is not None else pa.nulls(n, pa.string()),
        "revenue_at_stake": pc.round(
            pc.fill_null(revenue if revenue is not None else pa.array([0.0] * n), 0.0), 4
        ),
    }
    table = pa.table(columns).filter(mask)
    return table.cast(DIFFERENCE_SCHEMA)


def compare(
    hub: pa.Table, hss: pa.Table, billing: pa.Table, crm: pa.Table, catalogue: pa.Table
) -> tuple[pa.Table, AuditSummary]:
    """Every difference (``DIFFERENCE_SCHEMA``, ordered by category and IMSI) and the totals."""
    hub, hss, crm = hub.cast(HUB_SCHEMA), hss.cast(HSS_SCHEMA), crm.cast(CRM_SCHEMA)
    billing, catalogue = billing.cast(BILLING_SCHEMA), catalogue.cast(CATALOGUE_SCHEMA)
    wide = _wide(hub, hss, billing, crm, catalogue)
    if wide.num_rows == 0:
        return DIFFERENCE_SCHEMA.empty_table(), _summary(
            DIFFERENCE_SCHEMA.empty_table(), hub, hss, billing, crm
        )
    in_hub, in_hss = wide["in_hub"], wide["in_hss"]
    in_billing, in_crm = wide["in_billing"], wide["in_crm"]
    hub_active = pc.and_(in_hub, pc.equal(wide["hub_status"], "active"))
    hub_gone = pc.and_(in_hub, pc.not_equal(wide["hub_status"], "active"))
    neq = _differs

    leak_plan = pc.coalesce(wide["hub_plan"], wide["crm_plan"])
    parts = [
        _rows(
            wide,
            pc.and_(in_hss, pc.invert(in_billing)),
            Category.IN_HSS_NOT_BILLED,
            "billing",
            plan=leak_plan,
            expected=pa.array(["active subscription"] * wide.num_rows),
            observed=pa.array(["none"] * wide.num_rows),
            revenue=pc.coalesce(wide["hub_fee"], wide["crm_fee"], wide["qos_fee"]),
        ),
        _rows(
            wide,
            pc.and_(in_billing, pc.invert(in_hss)),
            Category.BILLED_NOT_IN_HSS,
            "hss",
            plan=wide["bill_plan"],
            expected=pa.array(["subscriber"] * wide.num_rows),
            observed=pa.array(["none"] * wide.num_rows),
            revenue=wide["bill_monthly_fee"],
        ),
        _rows(
            wide,
            pc.and_(hub_active, pc.and_(pc.invert(in_hss), pc.invert(in_billing))),
            Category.NOT_PROVISIONED,
            "hss,billing",
            expected=pa.array(["active"] * wide.num_rows),
            observed=pa.array(["none"] * wide.num_rows),
            revenue=wide["hub_fee"],
        ),
        _rows(
            wide,
            pc.and_(hub_active, pc.invert(in_crm)),
            Category.MISSING_IN_CRM,
            "crm",
            expected=pa.array(["service"] * wide.num_rows),
            observed=pa.array(["none"] * wide.num_rows),
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
            expected=_qos_text(wide, "hub_"),
            observed=_qos_text(wide, "hss_"),
        ),
        _rows(
            wide,
            pc.and_(pc.and_(hub_active, in_billing), neq(wide["hub_plan"], wide["bill_plan"])),
            Category.PLAN_OR_QOS_MISMATCH,
            "billing",
            expected=wide["hub_plan"],
            observed=wide["bill_plan"],
            revenue=pc.abs(pc.subtract(wide["hub_fee"], wide["bill_monthly_fee"])),
        ),
        _rows(
            wide,
            pc.and_(
                pc.and_(hub_active, in_crm),
                pc.and_(pc.is_valid(wide["crm_plan"]), neq(wide["hub_plan"], wide["crm_plan"])),
            ),
            Category.PLAN_OR_QOS_MISMATCH,
            "crm",
            expected=wide["hub_plan"],
            observed=wide["crm_plan"],
        ),
        # Statuses: terminated in the hub's record but still live, or active but not served.
        _rows(
            wide,
            pc.or_(
                pc.and_(hub_gone, in_hss),
                pc.and_(pc.and_(hub_active, in_hss), pc.fill_null(wide["hss_barred"], False)),
            ),
            Category.STATUS_MISMATCH,
            "hss",
            expected=wide["hub_status"],
            observed=pc.if_else(pc.fill_null(wide["hss_barred"], False), "barred", "subscriber"),
        ),
        _rows(
            wide,
            pc.and_(hub_gone, in_billing),
            Category.STATUS_MISMATCH,
            "billing",
            plan=wide["bill_plan"],
            expected=wide["hub_status"],
            observed=pa.array(["active"] * wide.num_rows),
            revenue=wide["bill_monthly_fee"],
        ),
        _rows(
            wide,
            pc.or_(
                pc.and_(hub_gone, in_crm),
                pc.and_(pc.and_(hub_active, in_crm), neq(wide["crm_status"], pa.scalar("active"))),
            ),
            Category.STATUS_MISMATCH,
            "crm",
            expected=wide["hub_status"],
            observed=wide["crm_status"],
        ),
        _rows(
            wide,
            pc.and_(pc.invert(in_hub), pc.or_(in_hss, pc.or_(in_billing, in_crm))),
            Category.UNKNOWN_TO_HUB,
            _where(wide),
            plan=pc.coalesce(wide["bill_plan"], wide["crm_plan"]),
            observed=pa.array(["present"] * wide.num_rows),
        ),
    ]
    found = pa.concat_tables(parts).sort_by([("category", "ascending"), ("imsi", "ascending")])
    return found, _summary(found, hub, hss, billing, crm)


def _differs(left: pa.ChunkedArray, right: pa.ChunkedArray | pa.Scalar) -> pa.ChunkedArray:
    """``left != right``, a null on one side only counting as different."""
    return pc.fill_null(pc.not_equal(left, right), True)


def _where(wide: pa.Table) -> pa.ChunkedArray:
    """``billing,crm,hss``: the systems that have the IMSI."""
    names = [("billing", wide["in_billing"]), ("crm", wide["in_crm"]), ("hss", wide["in_hss"])]
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
