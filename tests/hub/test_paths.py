"""Whether a location is inside the allowed roots, decided as the filesystem will open it.

Every escape that reached the worker before (percent-encoded dot segments, encoded slashes,
double encoding, symlinks inside a root) is refused; what is legitimately inside is accepted,
and the URI the check answers opens, through ``pyarrow.fs``, exactly the path it checked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from hub.paths import LocationRefused, check_location, parse_location, require_within


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """``exports/`` with a folder, a symlink that stays inside and one that leads out."""
    root = tmp_path / "exports"
    (root / "inner").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "exports-evil").mkdir()
    (root / "out-link").symlink_to(tmp_path / "elsewhere")
    (root / "in-link").symlink_to(root / "inner")
    return root


def check(location: str, root: Path, **options: str) -> str:
    """The path the checked location opens, as pyarrow decodes the URI the check answers."""
    checked = check_location(
        location, [str(root)], what="an allowed destination", setting="HUB_X", **options
    )
    filesystem, path = pafs.FileSystem.from_uri(checked.uri)
    assert isinstance(filesystem, pafs.LocalFileSystem)
    assert path == checked.path, (checked.uri, path)
    return path


# --- Local folders -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "{R}/%2e%2e/elsewhere",
        "{R}/%2E%2E/elsewhere",
        "{R}/.%2e/elsewhere",
        "{R}/%2e./elsewhere",
        "{R}/%2e%2e%2felsewhere",
        "{R}/..%2felsewhere",
        "{R}/..%2Felsewhere",
        "{R}/inner%2f..%2f..%2felsewhere",
        "{R}/inner%2fdeeper",  # an encoded slash, even one that stays inside
        "{R}/%252e%252e/elsewhere",  # double encoding: a '%' is left after decoding
        "{R}/%25252e%25252e/elsewhere",
        "{P}/%2e%2e/elsewhere",  # a plain path is not decoded: the '%' stays, refused
        "{R}/x%00",
        "{R}/x%00/../../elsewhere",
        "{R}/x%0a",
        "{R}/x%7f",
        "{R}/inner/..",  # a trailing '..', even one that lands back inside
        "{R}/inner/../..",
        "{R}/..",
        "{R}/inner/../../elsewhere",
        "{P}/../elsewhere",
        "{P}/inner/..",
        "{R}-evil",  # a sibling whose name starts with the root's
        "{R}-evil/x",
        "{P}-evil",
        "{R}/out-link",  # a symlink inside the root that leads out of it
        "{R}/out-link/deeper",
        "{R}/in-link/../../elsewhere",
        "file://evil{P}/inner",  # a host: another machine's share
        "file://127.0.0.1{P}/inner",
        "file:relative/inner",
        "relative/inner",
        "exports/inner",
        "./exports",
        "{R}/x%5cy",  # a backslash, encoded or not
        "{P}/x\\y",
        "{R}/x%zz",  # percent-encoding that does not decode
        "{R}/x%2",
        "{R}/%ff",  # bytes that are not UTF-8
        "{R}/inner?x=1",  # a query or fragment a file:// URI cannot carry
        "{R}/inner#x",
        "FILE://{P}/%2e%2e/elsewhere",
        "File://{P}/..%2felsewhere",
        "ftp://host{P}",
        "file:///",
        "{P}\x00/inner",
        "",
    ],
)
def test_locations_that_leave_the_root_or_are_ambiguous_are_refused(
    root: Path, location: str
) -> None:
    given = location.format(R=f"file://{root}", P=str(root))
    with pytest.raises(LocationRefused):
        check(given, root)
    # Nothing about the refusal is a crash of the OS layer either (NUL, undecodable bytes).


@pytest.mark.parametrize(
    ("location", "opened"),
    [
        ("{R}", ""),
        ("{P}", ""),
        ("{P}/", ""),
        ("{R}/inner", "/inner"),
        ("{R}//inner//", "/inner"),
        ("{P}//inner", "/inner"),
        ("{R}/./inner/.", "/inner"),
        ("{R}/%2e/inner", "/inner"),
        ("FILE://{P}/inner", "/inner"),
        ("File://{P}/inner", "/inner"),
        ("file://localhost{P}/inner", "/inner"),
        ("file://LOCALHOST{P}/inner", "/inner"),
        ("file:{P}/inner", "/inner"),
        ("{R}/in-link", "/inner"),  # a symlink that stays inside is followed
        ("{R}/in-link/new", "/inner/new"),
        ("{R}/new/deeper", "/new/deeper"),  # a folder the export will create
        ("{R}/a%20b", "/a b"),
        ("{P}/a b", "/a b"),
        ("{R}/caf%C3%A9", "/café"),
        ("{P}/café", "/café"),
        ("{P}/what?#x", "/what?#x"),  # a plain path is literal: no query, no fragment
        ("{R}/a%3Fb%23c%3Bd+e", "/a?b#c;d+e"),
        ("{P}/..x/x..", "/..x/x.."),  # dots that are no dot segment
        ("  {P}/inner  ", "/inner"),
    ],
)
def test_locations_inside_the_root_open_what_was_checked(
    root: Path, location: str, opened: str
) -> None:
    given = location.format(R=f"file://{root}", P=str(root))
    assert check(given, root) == str(root) + opened
    if given.startswith("file://"):
        # Where pyarrow takes the given URI itself, it opens the same file as the check's.
        try:
            _, decoded = pafs.FileSystem.from_uri(given)
        except pa.ArrowInvalid:
            return  # pyarrow refuses it (``FILE:``, ``localhost``); the canonical URI opens it
        assert os.path.realpath(decoded) == str(root) + opened


def test_a_symlinked_root_is_resolved_too(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "x").mkdir(parents=True)
    link = tmp_path / "link-root"
    link.symlink_to(real)
    assert check(f"{link}/x", link) == f"{real}/x"
    assert check(f"file://{real}/x", link) == f"{real}/x"  # the same folder, by either name
    for outside in (str(tmp_path), f"{tmp_path}/real-evil", f"file://{link}/%2e%2e/real"):
        with pytest.raises(LocationRefused):
            check(outside, link)


def test_relative_paths_are_taken_from_the_given_folder(root: Path, tmp_path: Path) -> None:
    assert check("exports/inner", root, relative_to=str(tmp_path)) == f"{root}/inner"
    assert check("./exports/./inner", root, relative_to=str(tmp_path)) == f"{root}/inner"
    for outside in ("elsewhere", "exports/../elsewhere", "exports/%2e%2e", "exports/out-link"):
        with pytest.raises(LocationRefused):
            check(outside, root, relative_to=str(tmp_path))


def test_a_refusal_says_what_and_where(root: Path, tmp_path: Path) -> None:
    with pytest.raises(LocationRefused, match=r"is not under an allowed destination .* HUB_X"):
        check(f"file://{tmp_path}/elsewhere", root)
    with pytest.raises(LocationRefused, match=r"out-link .*symbolic link.*elsewhere"):
        check(f"file://{root}/out-link", root)
    with pytest.raises(LocationRefused, match=r"'\.\.'"):
        check(f"file://{root}/%2e%2e/elsewhere", root)
    with pytest.raises(LocationRefused, match="encoded '/'"):
        check(f"file://{root}/..%2felsewhere", root)
    with pytest.raises(LocationRefused, match="double"):
        check(f"file://{root}/%252e%252e", root)


def test_a_root_that_is_itself_ambiguous_admits_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(LocationRefused):
        check_location(f"{tmp_path}/a", [f"file://{tmp_path}/a/%2e%2e"], what="w", setting="S")


# --- Object storage ------------------------------------------------------------------------

S3_ROOT = "s3://warehouse/hub?region=eu-central-1"


@pytest.mark.parametrize(
    ("location", "uri", "opened"),
    [
        ("s3://warehouse/hub", S3_ROOT, "warehouse/hub"),
        ("s3://warehouse/hub/", S3_ROOT, "warehouse/hub"),
        ("S3://warehouse/hub/orders", "s3://warehouse/hub/orders?region=eu-central-1", None),
        ("s3://warehouse/hub/orders?region=eu-central-1", None, "warehouse/hub/orders"),
        ("s3://warehouse/hub/a%20b", "s3://warehouse/hub/a%20b?region=eu-central-1", None),
        ("s3://warehouse/hub/a%20b", None, "warehouse/hub/a b"),
        ("s3://warehouse/hub/..x", None, "warehouse/hub/..x"),
    ],
)
def test_object_storage_inside_the_prefix_takes_the_roots_options(
    location: str, uri: str | None, opened: str | None
) -> None:
    checked = check_location(location, [S3_ROOT], what="w", setting="S")
    if uri is not None:
        assert checked.uri == uri
    if opened is not None:
        _, path = pafs.FileSystem.from_uri(checked.uri)
        assert path == opened


@pytest.mark.parametrize(
    "location",
    [
        "s3://warehouse/hub/../other",
        "s3://warehouse/hub/%2e%2e/other",
        "s3://warehouse/hub/%2E%2E/other",
        "s3://warehouse/hub/.%2e/other",
        "s3://warehouse/hub/x/..",
        "s3://warehouse/hub/./x",  # '.' is a key of its own on object storage: ambiguous
        "s3://warehouse/hub/%2e/x",
        "s3://warehouse/hub//x",
        "s3://warehouse/hub/x%2f..%2f..%2fother",
        "s3://warehouse/hub%2fx",
        "s3://warehouse/hub/%252e%252e/other",
        "s3://warehouse/hub/x%00",
        "s3://warehouse/hub/x%5cy",
        "s3://warehouse/hubby",
        "s3://warehouse/hub-evil/x",
        "s3://warehouse",
        "s3://other/hub",
        "s3://ware%2fhouse/hub",
        "s3://warehouse%2fhub/x",
        "s3://warehouse:9000/hub/x",
        "gs://warehouse/hub/x",
        "s3://warehouse/hub/x?region=us-east-1",
        "s3://warehouse/hub/x?endpoint_override=evil.example",
        "s3://warehouse/hub/x?region=eu-central-1&endpoint_override=evil.example",
        "s3://key:secret@warehouse/hub/x",
        "s3://warehouse/hub/x?secret_key=abc",
        "s3://warehouse/hub/x#fragment",
        "s3:///hub",
    ],
)
def test_object_storage_outside_the_prefix_or_ambiguous_is_refused(location: str) -> None:
    with pytest.raises(LocationRefused):
        check_location(location, [S3_ROOT], what="w", setting="S")


def test_canonical_uris_parse_back_to_themselves() -> None:
    for text in ("/srv/a b/café", "s3://warehouse/hub/a%20b?region=eu-central-1", "gs://b/x"):
        once = parse_location(text)
        assert parse_location(once.uri) == once


# --- Paths the hub builds itself (workspace, staged files) ---------------------------------


def test_require_within_follows_symlinks_and_compares_components(
    root: Path, tmp_path: Path
) -> None:
    assert require_within(root / "inner" / "new.parquet", root) == root / "inner" / "new.parquet"
    assert require_within(root / "in-link" / "x", root) == root / "inner" / "x"
    assert require_within(root, root) == root
    for outside in (
        root / "out-link",
        root / "out-link" / "x",
        tmp_path / "exports-evil" / "x",
        root / ".." / "elsewhere",
    ):
        with pytest.raises(LocationRefused, match="outside"):
            require_within(outside, root)
    # The root may be a symlink itself: it is resolved too.
    link = tmp_path / "root-link"
    link.symlink_to(root)
    assert require_within(link / "inner", link) == root / "inner"
    assert os.path.realpath(link) == str(root)
