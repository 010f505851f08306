"""The ``inventory_differences`` export dataset: completed audits' differences, by day."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq

from hub.inventory.engine import DIFFERENCE_SCHEMA
from hub.models import InventoryAudit
from tests.export_data import manifest_at
from tests.test_exports import Exporter, exporter, files, settings  # noqa: F401  (fixtures)


async def test_completed_audits_differences_are_exported_with_the_audit_id(
    exporter: Exporter,  # noqa: F811
) -> None:
    source = exporter.settings.data_dir / "differences.parquet"
    rows = [
        {
            "imsi": "001010000000001",
            "msisdn": "436600000001",
            "customer_id": "C1",
            "category": "in_hss_not_billed",
            "system": "billing",
            "hub_status": "active",
            "plan": "STANDARD-5G",
            "expected": "active subscription",
            "observed": "none",
            "revenue_at_stake": 24.9,
        }
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=DIFFERENCE_SCHEMA), source)
    finished = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    async with exporter.sessions() as session:
        for audit_id, status in (("a-1", "completed"), ("a-2", "running"), ("a-3", "failed")):
            session.add(
                InventoryAudit(
                    id=audit_id,
                    workflow_id=f"inventory-audit-{audit_id}",
                    status=status,
                    finished_at=finished if status != "running" else None,
                    differences_uri=str(source),
                    revenue_at_stake=Decimal("24.9"),
                )
            )
        await session.commit()

    result = await exporter.run("inv", "inventory_differences")

    manifest = manifest_at(result.manifest_uri)
    assert {f["partition"]["date"] for f in manifest["files"]} == {"2026-03-01"}
    copied = pa.concat_tables(pq.read_table(exporter.root / f["path"]) for f in manifest["files"])
    assert copied.column("inventory_audit_id").to_pylist() == ["a-1"]
    assert copied.drop(["inventory_audit_id"]).to_pylist() == rows
