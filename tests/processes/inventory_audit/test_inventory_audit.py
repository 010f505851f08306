"""The inventory audit end to end: subscribers provisioned through orders, drift injected
straight into the simulators (behind the hub's back), an audit through the API that finds
each drift in its category, with its count and the revenue at stake."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from adapters.billing import BillingClient
from adapters.hss import QosProfile, qos_document
from hub.settings import CONTRACTS_DIR
from simulators.hss import example_subscriber
from tests.conftest import Hub, Simulators, eventually
from tests.factories import item, new_identity, order

ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
AUDITS = "/inventoryAudits"


async def completed_order(hub: Hub, body: dict[str, Any]) -> None:
    created = await hub.api.post(ORDERS, json=body)
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]

    async def done() -> dict[str, Any] | None:
        state = (await hub.api.get(f"{ORDERS}/{order_id}")).json()
        return state if state["state"] in {"completed", "failed", "cancelled"} else None

    final = await eventually(done, timeout=90)
    assert final["state"] == "completed", final


async def finished_audit(hub: Hub, audit_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        body = (await hub.api.get(f"{AUDITS}/{audit_id}")).json()
        return body if body["status"] != "running" else None

    return await eventually(done, timeout=60)


async def test_an_audit_finds_every_drift_in_its_category(hub: Hub, sims: Simulators) -> None:
    for system in ("hss", "billing", "crm"):
        (await sims.http.post(f"{sims.urls[system]}/_sim/reset")).raise_for_status()
    people = {name: new_identity() for name in "ABCDEFG"}
    await asyncio.gather(*(completed_order(hub, order(who)) for who in people.values()))
    # G leaves through the hub: terminated everywhere, which is consistent.
    await completed_order(hub, order(people["G"], item(people["G"], "delete")))

    hss, crm = sims.urls["hss"], sims.urls["crm"]
    billing = BillingClient(CONTRACTS_DIR / "billing.wsdl", sims.urls["billing"] + "/billing")
    key = lambda: uuid.uuid4().hex  # noqa: E731
    try:
        # A: billing stops charging a subscriber the network still serves.
        await billing.terminate_subscription(msisdn=people["A"]["msisdn"], idempotency_key=key())
        # D: billing moves to a cheaper plan than the one sold.
        await billing.change_plan(
            msisdn=people["D"]["msisdn"], plan="BASIC-4G", idempotency_key=key()
        )
    finally:
        await billing.aclose()
    # B: gone from the HSS, still billed.
    (await sims.http.delete(f"{hss}/subscribers/{people['B']['imsi']}")).raise_for_status()
    # C: the CRM lost the service.
    customer, imsi_c = people["C"]["customer"], people["C"]["imsi"]
    (await sims.http.delete(f"{crm}/customers/{customer}/services/svc-{imsi_c}")).raise_for_status()
    # E: the HSS grants more than the plan.
    faster = {"ambr": {"downlink": {"value": 1, "unit": 3}, "uplink": {"value": 50, "unit": 2}}}
    (
        await sims.http.patch(f"{hss}/subscribers/{people['E']['imsi']}", json=faster)
    ).raise_for_status()
    # F: barred in the HSS while the hub's record says active.
    barred = {"subscriber_status": 1}
    (
        await sims.http.patch(f"{hss}/subscribers/{people['F']['imsi']}", json=barred)
    ).raise_for_status()
    # X: provisioned in the HSS by hand, with the QoS of BASIC-4G, never ordered nor billed.
    stranger = new_identity()
    document = example_subscriber(
        stranger["imsi"],
        msisdn=[stranger["msisdn"][1:]],
        **qos_document(QosProfile(qci=9, ambr_downlink=20_000_000, ambr_uplink=5_000_000)),
    )
    (await sims.http.post(f"{hss}/subscribers", json=document)).raise_for_status()

    started = await hub.api.post(AUDITS, json={"id": "audit-1", "pageSize": 2})
    assert started.status_code == 201, started.text
    again = await hub.api.post(AUDITS, json={"id": "audit-1", "pageSize": 2})
    assert again.status_code == 200 and again.json()["id"] == "audit-1"

    audit = await finished_audit(hub, "audit-1")
    assert audit["status"] == "completed", audit.get("errorMessage")
    assert audit["records"] == {"hub": 6, "hss": 6, "billing": 5, "crm": 5}
    categories = {c["category"]: (c["count"], c["revenueAtStake"]) for c in audit["categories"]}
    assert categories == {
        "in_hss_not_billed": (2, 34.8),  # A at STANDARD-5G, X at BASIC-4G (by its QoS)
        "billed_not_in_hss": (1, 24.9),
        "missing_in_crm": (1, 0.0),
        "plan_or_qos_mismatch": (2, 15.0),  # D billed 9.90 instead of 24.90; E's AMBR
        "status_mismatch": (1, 0.0),
        "unknown_to_hub": (1, 0.0),
    }
    assert audit["differenceCount"] == 8 and audit["revenueAtStake"] == 74.7

    def found(rows: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {(row["imsi"], row["category"], row["system"]) for row in rows}

    listing = await hub.api.get(f"{AUDITS}/audit-1/differences", params={"limit": 100})
    assert listing.headers["X-Total-Count"] == "8"
    assert found(listing.json()) == {
        (people["A"]["imsi"], "in_hss_not_billed", "billing"),
        (stranger["imsi"], "in_hss_not_billed", "billing"),
        (people["B"]["imsi"], "billed_not_in_hss", "hss"),
        (people["C"]["imsi"], "missing_in_crm", "crm"),
        (people["D"]["imsi"], "plan_or_qos_mismatch", "billing"),
        (people["E"]["imsi"], "plan_or_qos_mismatch", "hss"),
        (people["F"]["imsi"], "status_mismatch", "hss"),
        (stranger["imsi"], "unknown_to_hub", "hss"),
    }
    mismatches = await hub.api.get(
        f"{AUDITS}/audit-1/differences",
        params={"category": "plan_or_qos_mismatch", "limit": 1, "offset": 1},
    )
    assert mismatches.headers["X-Total-Count"] == "2" and len(mismatches.json()) == 1
    by_msisdn = await hub.api.get(
        f"{AUDITS}/audit-1/differences", params={"msisdn": people["D"]["msisdn"]}
    )
    [d] = by_msisdn.json()
    assert (d["expected"], d["observed"], d["revenueAtStake"]) == ("STANDARD-5G", "BASIC-4G", 15.0)
    by_imsi = await hub.api.get(f"{AUDITS}/audit-1/differences", params={"imsi": stranger["imsi"]})
    assert {row["category"] for row in by_imsi.json()} == {"in_hss_not_billed", "unknown_to_hub"}
    unknown = await hub.api.get(f"{AUDITS}/audit-1/differences", params={"category": "nonsense"})
    assert unknown.status_code == 400

    # Only the result stays in the workspace.
    workspace = hub.settings.data_dir / "inventory" / "audit-1"
    assert sorted(p.name for p in workspace.iterdir()) == ["differences.parquet"]

    # The obvious repair is one task: approved, the stranger leaves the HSS, nothing else.
    async def repair_task() -> list[dict[str, Any]]:
        found = await hub.api.get(
            "/tasks", params={"process": "inventory-audit", "reference": "audit-1", "open": "true"}
        )
        return list(found.json())

    [task] = await eventually(repair_task, timeout=30)
    assert task["title"] == "Approve repairs for 1 differences"
    assert task["evidence"]["subscribers"] == 1 and task["decisions"] == ["approve", "reject"]
    decided = await hub.api.post(f"/tasks/{task['id']}/complete", json={"decision": "approve"})
    assert decided.status_code == 200, decided.text

    async def stranger_gone() -> bool:
        imsis = {s["imsi"] for s in (await sims.state("hss"))["subscribers"]}
        return stranger["imsi"] not in imsis

    await eventually(stranger_gone, timeout=30)
    left = {s["imsi"] for s in (await sims.state("hss"))["subscribers"]}
    assert left == {people[name]["imsi"] for name in "ACDEF"}


async def test_a_system_that_refuses_its_inventory_fails_the_audit(
    hub: Hub, sims: Simulators
) -> None:
    await sims.fault("crm", operation="listServices", kind="permanent", status=422)
    started = await hub.api.post(AUDITS, json={"id": "audit-refused"})
    assert started.status_code == 201, started.text

    audit = await finished_audit(hub, "audit-refused")

    assert audit["status"] == "failed"
    assert audit["errorMessage"].startswith("crm.read_inventory: ")
    assert audit["differences"] is None and audit["categories"] == []
    listing = await hub.api.get(f"{AUDITS}/audit-refused/differences")
    assert listing.status_code == 409
    workspace = hub.settings.data_dir / "inventory" / "audit-refused"
    assert not (workspace / "work").exists()


async def test_the_daily_schedule_is_a_temporal_schedule(hub: Hub) -> None:
    created = await hub.api.put(
        f"{AUDITS}/schedule", json={"cron": "0 3 * * *", "paused": True, "note": "quiet night"}
    )
    assert created.status_code == 200, created.text
    assert created.json()["cron"] == ["0 3 * * *"] and created.json()["paused"] is True
    changed = await hub.api.put(f"{AUDITS}/schedule", json={"cron": "30 4 * * *"})
    assert changed.json()["cron"] == ["30 4 * * *"] and changed.json()["paused"] is False
    described = await hub.client.get_schedule_handle("inventory-audit-daily").describe()
    action = described.schedule.action
    assert getattr(action, "workflow", None) == "InventoryAudit"
    assert getattr(action, "id", None) == "inventory-audit-daily"
    assert (await hub.api.delete(f"{AUDITS}/schedule")).status_code == 204
    assert (await hub.api.get(f"{AUDITS}/schedule")).status_code == 404
    assert (await hub.api.put(f"{AUDITS}/schedule", json={"cron": "not cron"})).status_code == 400
