"""The files adapter on a real local filesystem: staging and publishing, roll-over, the XML
contract, and which destinations the hub accepts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adapters.files import (
    Destination,
    Files,
    InvalidExportFile,
    WriterOptions,
    XmlValidator,
    open_uri,
)
from hub.errors import NotFoundError, PermanentError
from hub.exports import allowed_roots, check_destination
from hub.paths import LocationRefused, parse_location
from tests.export_data import files_under, sha256_of

DAY = date(2026, 3, 1)
SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())])


def batch(ids: range, schema: pa.Schema = SCHEMA) -> pa.RecordBatch:
    columns: dict[str, Any] = {"id": list(ids), "name": [f"n{i}" for i in ids]}
    if "extra" in schema.names:
        columns["extra"] = [True] * len(ids)
    return pa.RecordBatch.from_pydict(columns, schema=schema)


def write_run(
    root: Path, run_id: str, fmt: str, *batches: tuple[date, pa.RecordBatch], **opts: Any
):  # type: ignore[no-untyped-def]
    writer = Destination(f"file://{root}").writer(
        dataset="things", export_id="e1", run_id=run_id, format=fmt, options=WriterOptions(**opts)
    )
    writer.start()
    for day, rows in batches:
        writer.write(day, rows)
    return writer


# --- Publishing -------------------------------------------------------------------------------


def test_parts_roll_over_by_size_and_schema_and_only_publish_makes_them_visible(
    tmp_path: Path,
) -> None:
    wider = pa.schema([*SCHEMA, pa.field("extra", pa.bool_())])
    writer = write_run(
        tmp_path,
        "r1",
        "parquet",
        (DAY, batch(range(0, 7))),
        (DAY, batch(range(7, 12))),
        (DAY, batch(range(12, 14), wider)),
        max_rows_per_file=5,
        row_group_rows=2,
    )
    assert not (tmp_path / "things").exists()  # nothing visible before publish
    assert all(p.endswith(".tmp") for p in files_under(tmp_path / "_staging"))

    published = writer.publish({"runId": "r1"}, SCHEMA)

    assert [f.rows for f in published.files] == [5, 5, 2, 2]
    assert published.rows == 14 and files_under(tmp_path) == sorted(
        [f.path for f in published.files] + ["things/_manifests/r1.json"]
    )
    manifest = json.loads((tmp_path / published.manifest_path).read_text())
    assert manifest["runId"] == "r1" and manifest["rows"] == 14
    assert "schema" not in manifest["files"][0]  # the run's schema
    assert [c["name"] for c in manifest["files"][3]["schema"]] == ["id", "name", "extra"]
    for entry in manifest["files"]:
        assert sha256_of(tmp_path / entry["path"]) == entry["sha256"]
    first = pq.ParquetFile(tmp_path / published.files[0].path)
    assert first.metadata.num_rows == 5 and first.metadata.num_row_groups == 3  # 2 + 2 + 1
    assert published.manifest_uri == f"file://{tmp_path}/things/_manifests/r1.json"


class _MoveFailsOnce:
    """A local filesystem whose second rename fails, once: a crash half-way through publish."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.moves = 0

    def move(self, source: str, target: str) -> None:
        self.moves += 1
        if self.moves == 2:
            raise OSError("connection reset")
        self._inner.move(source, target)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_retry_after_a_crash_mid_publish_replaces_the_parts_it_left(tmp_path: Path) -> None:
    rows = [(date(2026, 3, d), batch(range(d * 10, d * 10 + 3))) for d in (1, 2, 3)]
    crashing = write_run(tmp_path, "r2", "csv", *rows)
    crashing.destination.filesystem = _MoveFailsOnce(crashing.destination.filesystem)
    with pytest.raises(Exception, match="connection reset"):
        crashing.publish({}, SCHEMA)
    crashing.abort()
    half = [p for p in files_under(tmp_path) if not p.startswith("_staging")]
    assert len(half) == 1 and not any("_manifests" in p for p in half)  # no manifest: not a run

    retried = write_run(tmp_path, "r2", "csv", *rows).publish({}, SCHEMA)

    assert files_under(tmp_path) == sorted(
        [f.path for f in retried.files] + ["things/_manifests/r2.json"]
    )
    assert half[0] in [f.path for f in retried.files]
    for entry in retried.files:
        assert sha256_of(tmp_path / entry.path) == entry.sha256


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    writer = write_run(tmp_path, "r3", "parquet", (DAY, batch(range(5))))
    writer.abort()
    assert files_under(tmp_path) == []


def test_a_missing_source_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        list(Files().parquet_batches(str(tmp_path / "nope.parquet"), 10))


# --- XML ----------------------------------------------------------------------------------------


def test_written_xml_passes_and_round_trips_its_values(tmp_path: Path) -> None:
    schema = pa.schema(
        [
            pa.field("id", pa.int64()),
            pa.field("at", pa.timestamp("us", tz="UTC")),
            pa.field("ok", pa.bool_()),
            pa.field("ratio", pa.float64()),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("note", pa.string()),
        ]
    )
    rows = pa.RecordBatch.from_pydict(
        {
            "id": [1, 2],
            "at": [datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC), None],
            "ok": [True, False],
            "ratio": [float("nan"), 0.5],
            "tags": [["a", "b"], []],
            "note": ["", "bell \x07 & <tag>"],
        },
        schema=schema,
    )
    published = write_run(tmp_path, "r4", "xml", (DAY, rows)).publish({}, schema)
    path = tmp_path / published.files[0].path
    assert XmlValidator().validate(str(path)) == 2
    text = path.read_text(encoding="utf-8")
    assert '<field name="at">2026-03-01T10:00:00.123456Z</field>' in text
    assert '<field name="ratio">NaN</field>' in text and '<field name="ok">false</field>' in text
    assert '<field name="tags">["a", "b"]</field>' in text
    assert '<field name="note"></field>' in text  # empty, not null
    assert "bell \ufffd &amp; &lt;tag&gt;" in text
    assert text.count('<field name="at">') == 1  # the null is left out


HEADER = (
    '<export xmlns="urn:telecom-hub:export:1" dataset="d" exportId="e" runId="r" '
    'partition="2026-03-01"><columns>'
    '<column name="a" type="string" arrowType="string" nullable="true"/></columns>'
)


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (
            HEADER + '<row><field name="a">1</field><field name="a">2</field></row></export>',
            "Duplicate",
        ),
        (HEADER.replace('partition="2026-03-01"', 'partition="March"') + "</export>", "partition"),
        (HEADER.replace('type="string"', 'type="text"') + "</export>", "type"),
        (HEADER + "<rows/></export>", "unexpected"),
        (HEADER + "stray text<row/></export>", "text"),
        (HEADER + '<row><field name="a">1</field>', "well-formed"),
        ('<export xmlns="urn:other"/>', "root"),
        (HEADER.split("<columns>")[0] + "<row/></export>", "unexpected"),
    ],
)
def test_the_validator_refuses_what_the_xsd_refuses(
    tmp_path: Path, document: str, why: str
) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(InvalidExportFile, match=why):
        XmlValidator().validate(str(path))


# --- A destination changed under the writer --------------------------------------------------


def test_a_symlink_swapped_in_after_the_check_is_not_written_through(tmp_path: Path) -> None:
    root, outside = tmp_path / "exports", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    destination = Destination(f"file://{root}")  # checked and opened: now the folder changes
    (root / "things").symlink_to(outside)
    writer = destination.writer(dataset="things", export_id="e1", run_id="r1", format="csv")
    writer.start()
    writer.write(DAY, batch(range(3)))
    with pytest.raises(PermanentError, match="outside"):
        writer.publish({}, SCHEMA)
    writer.abort()
    assert files_under(outside) == []


def test_a_symlinked_staging_folder_is_neither_cleared_nor_written(tmp_path: Path) -> None:
    root, outside = tmp_path / "exports", tmp_path / "elsewhere"
    (outside / "r1").mkdir(parents=True)
    (outside / "r1" / "precious.txt").write_text("keep me")
    root.mkdir()
    destination = Destination(f"file://{root}")
    (root / "_staging").symlink_to(outside)
    writer = destination.writer(dataset="things", export_id="e1", run_id="r1", format="csv")
    with pytest.raises(PermanentError, match="outside"):
        writer.start()
    with pytest.raises(PermanentError, match="outside"):
        writer.write(DAY, batch(range(3)))
    writer.abort()
    assert files_under(outside) == ["r1/precious.txt"]


def test_a_part_file_planted_as_a_symlink_is_not_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "exports", tmp_path / "elsewhere"
    outside.mkdir()
    staged = root / "_staging" / "r1" / "things" / f"date={DAY.isoformat()}"
    staged.mkdir(parents=True)
    (staged / "part-r1-00000.csv.tmp").symlink_to(outside / "stolen.csv")
    writer = Destination(f"file://{root}").writer(
        dataset="things", export_id="e1", run_id="r1", format="csv"
    )  # no start(): as if the link appeared after staging was cleared
    with pytest.raises(PermanentError, match="symbolic link"):
        writer.write(DAY, batch(range(3)))
    assert files_under(outside) == []


# --- Destinations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("/srv/exports/", "file:///srv/exports"),
        ("file:///srv/exports/a/./b", "file:///srv/exports/a/b"),
        ("s3://warehouse/hub/?region=eu-central-1", "s3://warehouse/hub?region=eu-central-1"),
        ("GS://bucket", "gs://bucket"),
    ],
)
def test_destinations_are_normalized(given: str, normalized: str) -> None:
    assert parse_location(given).uri == normalized


@pytest.mark.parametrize(
    "refused",
    [
        "relative/dir",
        "ftp://host/dir",
        "s3://key:secret@bucket/x",
        "s3://bucket/x?secret_key=abc",
        "s3:///no-bucket",
        "s3://bucket/../other",
        "file://otherhost/x",
    ],
)
def test_destinations_that_are_refused(refused: str) -> None:
    with pytest.raises(LocationRefused):
        parse_location(refused)


def test_only_destinations_under_an_allowed_root_pass(tmp_path: Path) -> None:
    default = allowed_roots([], tmp_path)
    assert default == [f"file://{tmp_path.resolve()}/exports"]
    assert check_destination(str(tmp_path / "exports" / "x"), default).endswith("/exports/x")
    for outside in (str(tmp_path / "exports-evil"), str(tmp_path / "exports/../x"), "/etc"):
        with pytest.raises(LocationRefused):
            check_destination(outside, default)
    roots = allowed_roots(["s3://warehouse/hub", "/srv/exports"], tmp_path)
    assert check_destination("s3://warehouse/hub/orders", roots) == "s3://warehouse/hub/orders"
    with pytest.raises(LocationRefused):
        check_destination("s3://warehouse/hubby", roots)


def test_open_uri_takes_paths_and_file_uris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path = open_uri(f"file://{tmp_path}")
    assert path == str(tmp_path)
    # A reconciliation keeps its file under data/, relative to the worker's directory.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"x": [1, 2, 3]}), tmp_path / "data" / "d.parquet")
    batches = list(Files().parquet_batches("data/d.parquet", 2))
    assert [b.num_rows for b in batches] == [2, 1]
