"""The usage generator's promises about its own output (reconciliation checks the rest)."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hub.usage import Category
from simulators.usage import INJECTABLE, USAGE_MISMATCH, UsageSpec, generate

START, END = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)

#: The content of :func:`_spec`'s files as the generator wrote them before SMS existed.
#: Parquet is compared by content (its bytes name the pyarrow version that wrote them); a new
#: pyarrow that formats CSV differently changes this digest too: check that, then update it.
BEFORE_SMS = "e9769c0f08424fefb04faf4bbca8a6042d0053030f1de16173fe0c2316a23a6e"


def _spec(records: int = 3_000, **overrides: object) -> UsageSpec:
    return UsageSpec(
        START,
        END,
        records=records,
        seed=5,
        network_format="csv",
        billing_format="csv",
        records_per_file=1_000,
        rates={name: 0.02 for name in INJECTABLE},
        **overrides,  # type: ignore[arg-type]
    )


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".csv", ".json"):
            digest.update(path.read_bytes())
        elif path.suffix == ".parquet":
            text = io.BytesIO()
            pacsv.write_csv(pq.read_table(path), text)
            digest.update(text.getvalue())
    return digest.hexdigest()


def test_without_sms_the_files_are_what_they_were_before_sms(tmp_path: Path) -> None:
    generate(_spec(), tmp_path)
    assert _digest(tmp_path) == BEFORE_SMS


def test_no_usage_mismatch_is_injected_on_an_sms(tmp_path: Path) -> None:
    """An SMS is one message on both sides: reconciliation could never find the mismatch."""
    generate(_spec(sms_share=0.5, records=10_000), tmp_path)
    sms: set[str] = set()
    for side, kind in (("network", "record_type"), ("billing", "usage_type")):
        for path in (tmp_path / side).glob("*-*.csv"):
            table = pacsv.read_csv(path)
            sms |= set(pc.filter(table["record_id"], pc.equal(table[kind], "sms")).to_pylist())
    truth = pq.read_table(tmp_path / "ground_truth.parquet").to_pylist()
    on_sms = {row["category"] for row in truth if row["record_id"] in sms}
    on_the_rest = {row["category"] for row in truth if row["record_id"] not in sms}
    assert on_sms == set(INJECTABLE) - {USAGE_MISMATCH}
    assert {Category.VOLUME_MISMATCH, Category.DURATION_MISMATCH} <= on_the_rest
