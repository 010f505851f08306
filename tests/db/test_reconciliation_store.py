"""The reconciliation recorder on SQLite and on the machine's PostgreSQL: a run is created,
finished with its totals and categories, and recording it again changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlmodel import select

from activities.reconciliation import ReconciliationStore, RecordReconciliationInput
from hub.models import ReconciliationCategory, ReconciliationRun
from hub.reconciliation.engine import CategoryTotal, PartitionSummary

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 2, tzinfo=UTC)


async def test_a_run_is_recorded_with_its_totals(sessions) -> None:  # type: ignore[no-untyped-def]
    store = ReconciliationStore(sessions)
    running = RecordReconciliationInput(
        run_id="rec-1",
        workflow_id="reconciliation-rec-1",
        period_start=START,
        period_end=END,
        status="running",
        parameters={"partitions": 4},
    )
    await store.record(running)
    summary = PartitionSummary(
        network_records=1000,
        billing_records=990,
        matched_records=980,
        billed_revenue=2000.0,
        categories={
            "missing_in_billing": CategoryTotal(10, 12.34565),
            "duplicate_in_billing": CategoryTotal(2, -0.5),
        },
    )
    done = RecordReconciliationInput(
        **{**running.__dict__, "status": "completed", "summary": summary, "case_id": "case-9"}
    )
    await store.record(done)
    await store.record(done)  # a retried activity: same rows, no duplicate categories

    async with sessions() as session:
        run = await session.get(ReconciliationRun, "rec-1")
        categories = list(
            await session.exec(
                select(ReconciliationCategory).where(ReconciliationCategory.run_id == "rec-1")
            )
        )
    assert run is not None and run.status == "completed" and run.finished_at is not None
    assert (run.network_records, run.discrepancy_count, run.case_id) == (1000, 12, "case-9")
    assert run.leakage_amount == Decimal("12.3457") and run.overbilled_amount == Decimal("0.5")
    assert run.leakage_pct == round(12.34565 / 2000 * 100, 4)
    assert run.period_start == START and run.parameters == {"partitions": 4}
    assert sorted((c.category, c.count, c.revenue_impact) for c in categories) == [
        ("duplicate_in_billing", 2, Decimal("-0.5000")),
        ("missing_in_billing", 10, Decimal("12.3457")),
    ]
