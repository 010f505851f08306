"""The inventory audit's engine on hand-made tables: each category, its system, its price."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from hub.inventory.engine import (
    BILLING_SCHEMA,
    CATALOGUE_SCHEMA,
    CRM_SCHEMA,
    DIFFERENCE_SCHEMA,
    HSS_SCHEMA,
    HUB_SCHEMA,
    Category,
    compare,
    latest_record,
)

CATALOGUE = pa.Table.from_pylist(
    [
        {"plan": "BASIC-4G", "monthly_fee": 9.9, "qci": 9, "ambr_downlink": 20, "ambr_uplink": 5},
        {
            "plan": "STANDARD-5G",
            "monthly_fee": 24.9,
            "qci": 9,
            "ambr_downlink": 300,
            "ambr_uplink": 50,
        },
        {
            "plan": "UNLIMITED-5G",
            "monthly_fee": 49.9,
            "qci": 8,
            "ambr_downlink": 1000,
            "ambr_uplink": 100,
        },
    ],
    schema=CATALOGUE_SCHEMA,
)
STANDARD = {"qci": 9, "ambr_downlink": 300, "ambr_uplink": 50}


def imsi(n: int) -> str:
    return f"0010100000{n:05d}"


def hub_row(
    n: int, status: str = "active", plan: str = "STANDARD-5G", **qos: Any
) -> dict[str, Any]:
    return {
        "imsi": imsi(n),
        "msisdn": f"+43660000{n:04d}",
        "customer_id": f"C{n}",
        "status": status,
        "plan": plan,
        **(qos or STANDARD),
    }


def hss_row(n: int, barred: bool = False, **qos: Any) -> dict[str, Any]:
    return {"imsi": imsi(n), "msisdn": f"43660000{n:04d}", "barred": barred, **(qos or STANDARD)}


def bill_row(
    n: int, plan: str = "STANDARD-5G", status: str = "active", fee: float = 24.9
) -> dict[str, Any]:
    return {
        "subscription_id": f"sub-{n}-{status}",
        "imsi": imsi(n),
        "msisdn": f"43660000{n:04d}",
        "plan": plan,
        "status": status,
        "monthly_fee": fee,
    }


def crm_row(n: int, plan: str | None = "STANDARD-5G", status: str = "active") -> dict[str, Any]:
    return {
        "service_id": f"svc-{imsi(n)}",
        "customer_id": f"C{n}",
        "imsi": imsi(n),
        "msisdn": f"+43660000{n:04d}",
        "plan": plan,
        "status": status,
    }


def consistent(n: int) -> tuple[dict[str, Any], ...]:
    return hub_row(n), hss_row(n), bill_row(n), crm_row(n)


def run(
    hub: list[dict[str, Any]],
    hss: list[dict[str, Any]],
    billing: list[dict[str, Any]],
    crm: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], Any]:
    found, summary = compare(
        pa.Table.from_pylist(hub, schema=HUB_SCHEMA),
        pa.Table.from_pylist(hss, schema=HSS_SCHEMA),
        pa.Table.from_pylist(billing, schema=BILLING_SCHEMA),
        pa.Table.from_pylist(crm, schema=CRM_SCHEMA),
        CATALOGUE,
    )
    assert found.schema == DIFFERENCE_SCHEMA
    return found.to_pylist(), summary


def keyed(rows: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(row["imsi"], row["category"], row["system"]) for row in rows}


def test_consistent_systems_have_no_differences() -> None:
    sides = [consistent(n) for n in range(1, 4)]
    rows, summary = run(*(list(side) for side in zip(*sides, strict=True)))
    assert rows == []
    assert (summary.hub_records, summary.hss_records) == (3, 3)
    assert (summary.billing_records, summary.crm_records) == (3, 3)
    assert summary.differences == 0 and summary.categories == {}


def test_in_hss_not_billed_is_priced_with_the_hubs_plan() -> None:
    rows, summary = run(
        [hub_row(1, plan="UNLIMITED-5G", qci=8, ambr_downlink=1000, ambr_uplink=100)],
        [hss_row(1, qci=8, ambr_downlink=1000, ambr_uplink=100)],
        [bill_row(1, plan="UNLIMITED-5G", status="terminated", fee=49.9)],
        [crm_row(1, plan="UNLIMITED-5G")],
    )
    assert keyed(rows) == {(imsi(1), Category.IN_HSS_NOT_BILLED, "billing")}
    assert rows[0]["revenue_at_stake"] == 49.9
    assert rows[0]["msisdn"] == "436600000001"
    assert summary.categories[Category.IN_HSS_NOT_BILLED].revenue_at_stake == 49.9
    assert summary.revenue_at_stake == 49.9


def test_a_leak_unknown_to_the_hub_is_priced_by_the_qos_the_hss_grants() -> None:
    rows, summary = run([], [hss_row(7, qci=9, ambr_downlink=20, ambr_uplink=5)], [], [])
    assert keyed(rows) == {
        (imsi(7), Category.IN_HSS_NOT_BILLED, "billing"),
        (imsi(7), Category.UNKNOWN_TO_HUB, "hss"),
    }
    leak = next(row for row in rows if row["category"] == Category.IN_HSS_NOT_BILLED)
    assert leak["revenue_at_stake"] == 9.9
    assert summary.differences == 2


def test_billed_not_in_hss() -> None:
    rows, _ = run([hub_row(2)], [], [bill_row(2)], [crm_row(2)])
    assert keyed(rows) == {(imsi(2), Category.BILLED_NOT_IN_HSS, "hss")}
    assert rows[0]["revenue_at_stake"] == 24.9


def test_not_provisioned_anywhere() -> None:
    rows, _ = run([hub_row(3)], [], [], [crm_row(3)])
    assert keyed(rows) == {(imsi(3), Category.NOT_PROVISIONED, "hss,billing")}
    assert rows[0]["revenue_at_stake"] == 24.9


def test_missing_in_crm() -> None:
    rows, _ = run([hub_row(4)], [hss_row(4)], [bill_row(4)], [])
    assert keyed(rows) == {(imsi(4), Category.MISSING_IN_CRM, "crm")}
    assert rows[0]["revenue_at_stake"] == 0.0


def test_plan_and_qos_mismatches_name_each_system() -> None:
    rows, summary = run(
        [hub_row(5)],
        [hss_row(5, qci=8, ambr_downlink=300, ambr_uplink=50)],
        [bill_row(5, plan="BASIC-4G", fee=9.9)],
        [crm_row(5, plan="UNLIMITED-5G")],
    )
    assert keyed(rows) == {
        (imsi(5), Category.PLAN_OR_QOS_MISMATCH, "hss"),
        (imsi(5), Category.PLAN_OR_QOS_MISMATCH, "billing"),
        (imsi(5), Category.PLAN_OR_QOS_MISMATCH, "crm"),
    }
    by_system = {row["system"]: row for row in rows}
    assert by_system["hss"]["expected"] == "qci 9 ambr 300/50"
    assert by_system["hss"]["observed"] == "qci 8 ambr 300/50"
    assert (by_system["billing"]["expected"], by_system["billing"]["observed"]) == (
        "STANDARD-5G",
        "BASIC-4G",
    )
    assert by_system["billing"]["revenue_at_stake"] == 15.0
    assert summary.categories[Category.PLAN_OR_QOS_MISMATCH].count == 3


def test_a_crm_service_without_a_plan_is_no_plan_mismatch() -> None:
    rows, _ = run([hub_row(6)], [hss_row(6)], [bill_row(6)], [crm_row(6, plan=None)])
    assert rows == []


def test_status_mismatches() -> None:
    rows, _ = run(
        [hub_row(8, status="terminated"), hub_row(9)],
        [hss_row(8), hss_row(9, barred=True)],
        [bill_row(8), bill_row(9)],
        [crm_row(8), crm_row(9, status="pendingActivation")],
    )
    assert keyed(rows) == {
        (imsi(8), Category.STATUS_MISMATCH, "hss"),
        (imsi(8), Category.STATUS_MISMATCH, "billing"),
        (imsi(8), Category.STATUS_MISMATCH, "crm"),
        (imsi(9), Category.STATUS_MISMATCH, "hss"),
        (imsi(9), Category.STATUS_MISMATCH, "crm"),
    }
    billing = next(row for row in rows if row["system"] == "billing")
    assert billing["revenue_at_stake"] == 24.9
    hss_9 = next(row for row in rows if row["imsi"] == imsi(9) and row["system"] == "hss")
    assert (hss_9["expected"], hss_9["observed"]) == ("active", "barred")


def test_a_terminated_subscriber_gone_everywhere_is_consistent() -> None:
    rows, summary = run(
        [hub_row(10, status="terminated")], [], [bill_row(10, status="terminated")], []
    )
    assert rows == []
    assert summary.hub_records == 0 and summary.billing_records == 0


def test_unknown_to_hub_lists_where_it_was_found() -> None:
    rows, _ = run([], [hss_row(11)], [bill_row(11)], [crm_row(11)])
    assert keyed(rows) == {(imsi(11), Category.UNKNOWN_TO_HUB, "billing,crm,hss")}
    assert rows[0]["customer_id"] == "C11"


def test_empty_inputs() -> None:
    rows, summary = run([], [], [], [])
    assert rows == [] and summary.differences == 0


def test_the_latest_change_of_each_imsi_is_the_record() -> None:
    at = [datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
    base = {"msisdn": "+1", "customer_id": "C", "qci": 9, "ambr_downlink": 1, "ambr_uplink": 1}
    changes = pa.Table.from_pylist(
        [
            {
                **base,
                "imsi": imsi(1),
                "status": "active",
                "plan": "A",
                "changed_at": at[0],
                "order_id": "o1",
                "item_id": "1",
            },
            {
                **base,
                "imsi": imsi(1),
                "status": "active",
                "plan": "B",
                "changed_at": at[2],
                "order_id": "o3",
                "item_id": "1",
            },
            {
                **base,
                "imsi": imsi(2),
                "status": "active",
                "plan": "A",
                "changed_at": at[0],
                "order_id": "o1",
                "item_id": "2",
            },
            {
                **base,
                "imsi": imsi(2),
                "status": "terminated",
                "plan": None,
                "changed_at": at[1],
                "order_id": "o2",
                "item_id": "1",
            },
            {
                **base,
                "imsi": None,
                "status": "active",
                "plan": "A",
                "changed_at": at[2],
                "order_id": "o4",
                "item_id": "1",
            },
        ]
    )
    record = {row["imsi"]: row for row in latest_record(changes).to_pylist()}
    assert set(record) == {imsi(1), imsi(2)}
    assert record[imsi(1)]["plan"] == "B"
    assert record[imsi(2)]["status"] == "terminated"


def test_imsis_that_are_not_15_digits_are_compared_as_text() -> None:
    odd = {**crm_row(12), "imsi": "12345"}
    rows, _ = run([hub_row(12)], [hss_row(12)], [bill_row(12)], [crm_row(12), odd])
    assert keyed(rows) == {("12345", Category.UNKNOWN_TO_HUB, "crm")}
