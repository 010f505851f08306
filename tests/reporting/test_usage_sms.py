"""The usage generator writes SMS on request, and the report counts them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from hub.reporting import kev
from hub.reporting.periods import Quarter
from simulators.usage import SMS_PRICE, UsageSpec, generate

Q1 = Quarter(2026, 1)


def _spec(**overrides: object) -> UsageSpec:
    start, end = Q1.bounds("Europe/Vienna")
    return UsageSpec(start, end, records=4000, records_per_file=1500, **overrides)  # type: ignore[arg-type]


def test_sms_on_both_sides_and_counted_once(tmp_path: Path) -> None:
    manifest = generate(_spec(sms_share=0.25), tmp_path)
    network = pq.read_table(tmp_path / "network")
    billing = pa.concat_tables(pq.read_table(tmp_path / f) for f in manifest.billing_files)
    sms = network.filter(pc.equal(network["record_type"], "sms"))
    assert 800 < sms.num_rows < 1200
    assert sms["duration"].null_count == sms["uplink_volume"].null_count == sms.num_rows
    assert sms["rat_type"].null_count == sms.num_rows
    assert pc.all(pc.starts_with(sms["node_id"], "msc-")).as_py()
    rated = billing.filter(pc.equal(billing["usage_type"], "sms"))
    assert rated.num_rows > 0
    assert rated["volume"].null_count == rated["duration"].null_count == rated.num_rows
    # Every SMS is rated at the SMS price, but those whose charge was injected as misrated.
    at_price = pc.sum(pc.equal(rated["charge"], SMS_PRICE)).as_py()
    assert rated.num_rows - 5 <= at_price < rated.num_rows + 1
    indicators, _ = kev.compute(
        [str(tmp_path / f) for f in manifest.network_files],
        [],
        None,
        Q1,
        tz="Europe/Vienna",
        m2m_plans=["IOT-M2M"],
        currency="EUR",
    )
    # The generator delivers some records twice: each counts once.
    assert indicators.sms_count == len(pc.unique(sms["record_id"]))


def test_no_sms_by_default(tmp_path: Path) -> None:
    generate(_spec(), tmp_path)
    network = pq.read_table(tmp_path / "network")
    assert "sms" not in pc.unique(network["record_type"]).to_pylist()


def test_shares_must_fit() -> None:
    with pytest.raises(ValueError, match="sms_share"):
        _spec(voice_share=0.8, sms_share=0.3)
