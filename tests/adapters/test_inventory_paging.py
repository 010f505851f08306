"""The simulators page their inventories and the adapters read the pages (an audit's reads)."""

from __future__ import annotations

import uuid

from adapters.billing import BillingClient
from adapters.crm import CrmClient
from adapters.hss import HssClient
from hub.settings import CONTRACTS_DIR
from simulators.hss import example_subscriber
from tests.conftest import Simulators
from tests.factories import new_identity


async def test_every_inventory_reads_in_pages(sims: Simulators) -> None:
    for system in ("hss", "crm", "billing"):
        assert (await sims.http.post(f"{sims.urls[system]}/_sim/reset")).status_code < 300
    identities = [new_identity() for _ in range(5)]
    hss = HssClient(sims.urls["hss"], timeout=5)
    crm = CrmClient(sims.urls["crm"], timeout=5)
    billing = BillingClient(CONTRACTS_DIR / "billing.wsdl", sims.urls["billing"] + "/billing")
    try:
        account, _ = await billing.create_account(
            customer_id="C-PAGE", name="Paging", currency="EUR", idempotency_key=uuid.uuid4().hex
        )
        await crm.upsert_customer(
            "C-PAGE", name="Paging", email=None, phone=None, idempotency_key=uuid.uuid4().hex
        )
        for identity in identities:
            document = example_subscriber(identity["imsi"], msisdn=[identity["msisdn"][1:]])
            await hss.create_subscriber(document, idempotency_key=uuid.uuid4().hex)
            await billing.create_subscription(
                account_id=account,
                msisdn=identity["msisdn"],
                imsi=identity["imsi"],
                plan="BASIC-4G",
                idempotency_key=uuid.uuid4().hex,
            )
            await crm.upsert_service(
                "C-PAGE",
                f"svc-{identity['imsi']}",
                status="active",
                imsi=identity["imsi"],
                plan="BASIC-4G",
                idempotency_key=uuid.uuid4().hex,
            )
        imsis = {identity["imsi"] for identity in identities}
        for read in (hss.list_subscribers, crm.list_services, billing.list_subscriptions):
            seen: list[str] = []
            for offset in range(0, 6, 2):
                items, total = await read(offset, 2)
                assert total == 5
                assert len(items) == min(2, 5 - offset)
                seen += [item["imsi"] for item in items]
            assert sorted(seen) == sorted(imsis), read
        items, _ = await billing.list_subscriptions(0, 1)
        assert items[0]["planCode"] == "BASIC-4G" and items[0]["monthlyFee"] == 9.9
        assert items[0]["status"] == "active"
        hss_items, _ = await hss.list_subscribers(0, 1)
        assert hss_items[0]["security"]["k"] == "***"
    finally:
        for client in (hss, crm, billing):
            await client.aclose()
