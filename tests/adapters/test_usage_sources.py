"""Where reconciliation's data comes from: billing's tariffs (SOAP), its usage export (HTTP
file drop) and usage files on a filesystem, against the simulators on loopback."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adapters.billing import BillingClient
from adapters.billing_export import BillingExportClient, ExportFile
from adapters.crm import CrmClient
from adapters.usage_files import _uri, list_files, read_batches
from hub.errors import NotFoundError, PermanentError, TransientError
from hub.redact import redact_uri
from hub.settings import CONTRACTS_DIR
from hub.usage import NETWORK_SCHEMA, RATED_SCHEMA
from simulators import billing as billing_sim
from simulators.billing import PLANS
from simulators.serving import serve_in_background
from simulators.usage import UsageSpec, generate
from tests.conftest import Simulators

PERIOD = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))


async def test_tariffs_come_from_billing_over_soap(sims: Simulators) -> None:
    client = BillingClient(CONTRACTS_DIR / "billing.wsdl", sims.urls["billing"] + "/billing")
    try:
        currency, tariffs = await client.get_tariffs()
    finally:
        await client.aclose()
    assert currency == "EUR"
    assert {t.plan: t.data_price_per_mb for t in tariffs} == {
        code: float(plan.data_price_per_mb) for code, plan in PLANS.items()
    }
    assert all(t.voice_price_per_minute > 0 for t in tariffs)
    assert {t.plan: t.sms_price_per_message for t in tariffs} == {
        code: float(billing_sim.SMS_PRICE) for code in PLANS
    }


async def test_a_plan_without_an_sms_price_reads_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """A billing that sends no SMS price (the element is optional) is read, not refused."""
    monkeypatch.setitem(PLANS, "IOT-M2M", replace(PLANS["IOT-M2M"], sms_price_per_message=None))
    async with serve_in_background(billing_sim.create_app()) as url:
        client = BillingClient(CONTRACTS_DIR / "billing.wsdl", url + "/billing")
        try:
            _, tariffs = await client.get_tariffs()
        finally:
            await client.aclose()
    by_plan = {t.plan: t for t in tariffs}
    assert by_plan["IOT-M2M"].sms_price_per_message is None
    assert by_plan["IOT-M2M"].voice_price_per_minute == 0.2
    assert by_plan["BASIC-4G"].sms_price_per_message == float(billing_sim.SMS_PRICE)


async def test_crm_cases_through_the_adapter(sims: Simulators) -> None:
    crm = CrmClient(sims.urls["crm"])
    try:
        opened = await crm.open_case(
            subject="leakage",
            description="d",
            category="revenue-assurance",
            priority="high",
            reference="rec-x",
            idempotency_key="rec-x/case",
        )
        again = await crm.open_case(
            subject="leakage",
            description="d",
            category="revenue-assurance",
            priority="high",
            reference="rec-x",
            idempotency_key="rec-x/case",
        )
    finally:
        await crm.aclose()
    assert opened == again
    cases = (await sims.state("crm"))["cases"]
    assert [case["reference"] for case in cases if case["id"] == opened] == ["rec-x"]


@pytest.fixture
async def export(tmp_path: Path) -> AsyncIterator[tuple[BillingExportClient, Path]]:
    folder = tmp_path / "export"
    spec = UsageSpec(*PERIOD, records=2_000, records_per_file=800)
    generate(spec, tmp_path / "generated")
    (tmp_path / "generated" / "billing").rename(folder)
    async with serve_in_background(billing_sim.create_app(export_dir=folder)) as url:
        client = BillingExportClient(url)
        yield client, folder
        await client.aclose()


async def test_the_usage_export_is_copied_with_checksums(
    export: tuple[BillingExportClient, Path], tmp_path: Path
) -> None:
    client, folder = export
    files = await client.list_files()
    assert sorted(f.name for f in files) == sorted(p.name for p in folder.iterdir())
    seen: list[int] = []
    for item in files:
        copied = await client.fetch(item, tmp_path / "copy", progress=seen.append)
        assert copied.read_bytes() == (folder / item.name).read_bytes()
    assert seen and seen[-1] == files[-1].size


async def test_a_corrupt_or_missing_export_file_is_an_error(
    export: tuple[BillingExportClient, Path], tmp_path: Path
) -> None:
    client, _ = export
    item = (await client.list_files())[0]
    with pytest.raises(TransientError, match="sha256"):
        await client.fetch(ExportFile(item.name, item.size, "0" * 64), tmp_path / "copy")
    assert not list((tmp_path / "copy").glob("*"))  # nothing half-written is left
    with pytest.raises(NotFoundError):
        await client.fetch(ExportFile("nope.parquet", 1, "0" * 64), tmp_path / "copy")
    with pytest.raises(PermanentError, match="unsafe"):
        await client.fetch(ExportFile("../etc/passwd", 1, "0" * 64), tmp_path / "copy")


async def test_the_copy_follows_no_symlink_planted_in_the_workspace(
    export: tuple[BillingExportClient, Path], tmp_path: Path
) -> None:
    client, _ = export
    item = (await client.list_files())[0]
    copy, outside = tmp_path / "copy", tmp_path / "elsewhere"
    copy.mkdir()
    outside.mkdir()
    # A link where the partial download goes, and a folder of the copy that leads out.
    (copy / f"{item.name}.part").symlink_to(outside / "stolen")
    with pytest.raises(PermanentError, match="symbolic link"):
        await client.fetch(item, copy)
    (copy / "nested").symlink_to(outside)
    nested = ExportFile(f"nested/{item.name}", item.size, item.sha256)
    with pytest.raises(PermanentError, match="outside"):
        await client.fetch(nested, copy)
    assert list(outside.iterdir()) == []


def test_usage_files_in_every_format_read_the_same(tmp_path: Path) -> None:
    tables = {}
    for fmt in ("parquet", "csv", "csv.gz"):
        spec = UsageSpec(*PERIOD, records=500, network_format=fmt)  # type: ignore[arg-type]
        generate(spec, tmp_path / fmt)
        files = list_files(str(tmp_path / fmt / "network"))
        assert [Path(f.uri).name for f in files] == [f"cdr-00001.{fmt}"]
        tables[fmt] = pa.concat_tables(read_batches(files[0].uri, NETWORK_SCHEMA))
    assert tables["csv"].equals(tables["parquet"])
    assert tables["csv.gz"].equals(tables["parquet"])


def test_low_cardinality_text_comes_from_parquet_as_its_dictionary(tmp_path: Path) -> None:
    spec = UsageSpec(*PERIOD, records=500)
    generate(spec, tmp_path)
    [item] = list_files(str(tmp_path / "network"))
    [plain] = read_batches(item.uri, NETWORK_SCHEMA)
    [encoded] = read_batches(item.uri, NETWORK_SCHEMA, dictionaries=("record_type", "apn"))
    assert pa.types.is_dictionary(encoded["record_type"].type)
    assert encoded.schema.field("record_type").type == pa.dictionary(pa.int32(), pa.string())
    assert encoded["record_type"].cast(pa.string()).equals(plain["record_type"])
    assert encoded["apn"].cast(pa.string()).equals(plain["apn"])
    assert encoded.drop_columns(["record_type", "apn"]).equals(
        plain.drop_columns(["record_type", "apn"])
    )


def test_bad_usage_files_name_the_file_and_the_problem(tmp_path: Path) -> None:
    (tmp_path / "broken.csv").write_text("record_id,usage_type\nr1,data\n")
    with pytest.raises(PermanentError, match=r"broken\.csv: .*start_time"):
        list(read_batches(str(tmp_path / "broken.csv"), RATED_SCHEMA))
    with gzip.open(tmp_path / "garbled.csv.gz", "wb") as out:
        out.write(b"record_id,start_time\nr1,yesterday\n")
    with pytest.raises(PermanentError, match=r"garbled\.csv\.gz"):
        list(read_batches(str(tmp_path / "garbled.csv.gz"), RATED_SCHEMA))
    with pytest.raises(NotFoundError):
        list_files(str(tmp_path / "absent"))


def test_an_empty_drop_file_has_no_rows_and_fine_timestamps_are_cut(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    with gzip.open(tmp_path / "empty.csv.gz", "wb"):
        pass
    assert list(read_batches(str(tmp_path / "empty.csv"), RATED_SCHEMA)) == []
    assert list(read_batches(str(tmp_path / "empty.csv.gz"), RATED_SCHEMA)) == []
    # Microsecond timestamps (another mediation's precision) come back in milliseconds.
    micro = pa.table(
        {
            "record_id": ["r1"],
            "usage_type": ["data"],
            "start_time": pa.array([1_793_491_200_123_456], pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(micro, tmp_path / "micro.parquet")
    (tmp_path / "micro.csv").write_text(
        "record_id,usage_type,start_time\nr1,data,2026-11-01T00:00:00.123456Z\n"
    )
    for name in ("micro.parquet", "micro.csv"):
        [table] = list(read_batches(str(tmp_path / name), RATED_SCHEMA))
        assert table["start_time"].type == pa.timestamp("ms", tz="UTC")
        assert table["start_time"][0].value % 1000 == 123


def test_file_uris_keep_the_storage_options_and_logs_drop_the_secrets() -> None:
    location = "s3://KEY:SECRET@bucket/cdr?endpoint_override=minio.local:9000&region=eu"
    uri = _uri(location, "bucket/cdr", "bucket/cdr/2026/x.parquet")
    assert uri == (
        "s3://KEY:SECRET@bucket/cdr/2026/x.parquet?endpoint_override=minio.local:9000&region=eu"
    )
    assert _uri("/srv/cdr", "/srv/cdr", "/srv/cdr/x.csv") == "/srv/cdr/x.csv"
    shown = redact_uri(uri + "&secret_key=S2")
    assert "SECRET" not in shown and "S2" not in shown and "KEY" not in shown
    assert shown.startswith("s3://***@bucket/cdr/2026/x.parquet?endpoint_override=")
    assert redact_uri("/srv/cdr") == "/srv/cdr"
