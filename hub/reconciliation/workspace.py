"""Where reconciliation runs keep their files: a local folder, or a prefix on S3-compatible
object storage that every worker on every host reaches.

A :class:`Store` holds every run's workspace under one root and answers by *key*, a relative
name such as ``<run id>/work/network/00000.arrow``. Two kinds:

- :class:`LocalStore` (``HUB_RECONCILIATION_DIR``, the default): a folder; every path is
  checked with :func:`hub.paths.require_within` each time it is used (no symlink leads out),
  files are published by an atomic rename, splits are read memory-mapped. Only workers that
  share that folder can share a run.
- :class:`S3Store` (``HUB_RECONCILIATION_WORKSPACE=s3://bucket/prefix``): the objects under
  the prefix, through ``pyarrow.fs.S3FileSystem`` (endpoint, region and credentials from
  ``HUB_RECONCILIATION_S3_*``, or the AWS default chain), so consecutive activities of a run
  may run on workers with different disks. An object is published whole when its upload
  completes (a worker that dies mid-upload leaves none); one whose writing failed is removed.

Keys are checked where they are turned into paths (:func:`check_key`): relative, no ``.``,
``..`` or empty segments, no backslash, ``%`` or control character; so no key names anything
outside the root. A key a store refuses is a :class:`~hub.errors.PermanentError`.

What a run records (its result's URI) is the store's :meth:`Store.uri`: the absolute path of a
local file, ``s3://bucket/prefix/<key>`` on S3 (no endpoint and no credentials in it: whoever
reads it, the API or an export, reads it through :func:`store_of` and :meth:`Store.locate`).
"""

from __future__ import annotations

import os
import re
import shutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from hub.errors import PermanentError
from hub.paths import Location, LocationRefused, parse_location, require_within

if TYPE_CHECKING:
    from hub.settings import Settings

SYSTEM = "files"
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def check_key(key: str) -> str:
    """``key`` if it names something inside a store's root; else a :class:`PermanentError`."""
    problem = None
    if not key or key.startswith("/"):
        problem = "must be a relative name"
    elif _CONTROL.search(key) or "\\" in key or "%" in key:
        problem = "has a control character, a backslash or a '%'"
    elif any(segment in ("", ".", "..") for segment in key.split("/")):
        problem = "has an empty, '.' or '..' segment"
    if problem:
        raise PermanentError(f"workspace key {key!r} {problem}", system=SYSTEM)
    return key


@dataclass(frozen=True)
class StoredFile:
    """A file of a store, as :meth:`Store.list` answers it."""

    key: str
    #: Relative to the folder listed.
    name: str
    size: int


class Store(ABC):
    """Every run's workspace under one root, by key (see the module's docstring)."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """What the hub records and checks for ``key``: a path, or an ``s3://`` URI."""

    @abstractmethod
    def locate(self, uri: str) -> tuple[pafs.FileSystem, str] | None:
        """The filesystem and path to open ``uri`` with, if it names a file of this store
        (as :meth:`uri` answers); None if it is elsewhere."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The file's size, None if there is none."""

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    @abstractmethod
    def open_input(self, key: str) -> pa.NativeFile:
        """The file, for random access (a missing one: ``FileNotFoundError``)."""

    @abstractmethod
    @contextmanager
    def open_output(self, key: str) -> Iterator[pa.NativeFile]:
        """A new file at ``key``, there for readers only once the block has ended without an
        error (it replaces what was there); on an error, nothing is left at ``key``."""

    @abstractmethod
    def list(self, key: str) -> list[StoredFile]:
        """Every file under the folder ``key``, recursively, by key (none if it is absent)."""

    @abstractmethod
    def remove(self, key: str) -> None:
        """The folder ``key`` and all below it, or the file ``key``; nothing if absent."""

    @abstractmethod
    def local_folder(self, key: str) -> Path | None:
        """The checked local path of the folder ``key``, created; None off the local disk."""

    def read_text(self, key: str) -> str:
        with self.open_input(key) as source:
            return bytes(source.read()).decode()

    def write_text(self, key: str, text: str) -> None:
        with self.open_output(key) as sink:
            sink.write(text.encode())

    def download(self, key: str, path: Path) -> None:
        """Copy ``key`` to the local file ``path`` (its folder is made)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.open_input(key) as source, path.open("wb") as sink:
            shutil.copyfileobj(source, sink, length=8 << 20)

    def upload(self, path: Path, key: str) -> None:
        """Copy the local file ``path`` to ``key``."""
        with path.open("rb") as source, self.open_output(key) as sink:
            shutil.copyfileobj(source, sink, length=8 << 20)


class LocalStore(Store):
    """A folder; every path checked where it is used (see :func:`hub.paths.require_within`)."""

    def __init__(self, root: Path) -> None:
        # Absolute: the result's path is recorded, and read by the API and the exports, which
        # need not share the worker's working directory.
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        """``root/key``, once it is sure to resolve inside the root now."""
        path = self.root / check_key(key)
        try:
            require_within(path, self.root)
        except LocationRefused as exc:
            raise PermanentError(f"workspace: {exc}", system=SYSTEM) from exc
        return path

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def locate(self, uri: str) -> tuple[pafs.FileSystem, str] | None:
        if "://" in uri or not Path(uri).is_absolute():
            return None
        path = Path(uri)
        if not path.is_relative_to(self.root):
            return None
        return pafs.LocalFileSystem(), str(self.path(path.relative_to(self.root).as_posix()))

    def size(self, key: str) -> int | None:
        path = self.path(key)
        return path.stat().st_size if path.is_file() else None

    def open_input(self, key: str) -> pa.NativeFile:
        return pa.memory_map(str(self.path(key)), "r")

    @contextmanager
    def open_output(self, key: str) -> Iterator[pa.NativeFile]:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path(key + ".tmp")
        try:
            with pa.OSFile(str(tmp), "wb") as sink:
                yield sink
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(path)

    def list(self, key: str) -> list[StoredFile]:
        folder = self.path(key)
        if not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                name = path.relative_to(folder).as_posix()
                found.append(StoredFile(f"{key}/{name}", name, path.stat().st_size))
        return found

    def remove(self, key: str) -> None:
        path = self.path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def local_folder(self, key: str) -> Path:
        folder = self.path(key)
        folder.mkdir(parents=True, exist_ok=True)
        return folder


class S3Store(Store):
    """The objects under ``s3://bucket/prefix``, through one ``pyarrow.fs.S3FileSystem``."""

    def __init__(self, root: Location, filesystem: pafs.FileSystem) -> None:
        if root.scheme != "s3" or root.options:
            raise ValueError(f"not an s3:// location without options: {root.uri}")
        self.root = root
        self.filesystem = filesystem

    def _path(self, key: str) -> str:
        return "/".join([self.root.host, *self.root.segments, *check_key(key).split("/")])

    def uri(self, key: str) -> str:
        return Location("s3", self.root.host, (*self.root.segments, *key.split("/"))).uri

    def locate(self, uri: str) -> tuple[pafs.FileSystem, str] | None:
        try:
            location = parse_location(uri)
        except LocationRefused:
            return None
        if location.options or not location.is_within(self.root):
            return None
        key = "/".join(location.segments[len(self.root.segments) :])
        return self.filesystem, self._path(key)

    def size(self, key: str) -> int | None:
        info = self.filesystem.get_file_info(self._path(key))
        return info.size if info.type == pafs.FileType.File else None

    def open_input(self, key: str) -> pa.NativeFile:
        return self.filesystem.open_input_file(self._path(key))

    @contextmanager
    def open_output(self, key: str) -> Iterator[pa.NativeFile]:
        path = self._path(key)
        try:
            # Uploaded as it is written; the object appears when the stream is closed.
            with self.filesystem.open_output_stream(path) as sink:
                yield sink
        except BaseException:
            # Closing the stream published what was written so far: take it back.
            with suppress(OSError):
                self.filesystem.delete_file(path)
            raise

    def list(self, key: str) -> list[StoredFile]:
        base = self._path(key)
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        found = []
        for info in self.filesystem.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            name = info.path[len(base) :].lstrip("/")
            found.append(StoredFile(f"{key}/{name}", name, info.size or 0))
        return sorted(found, key=lambda item: item.key)

    def remove(self, key: str) -> None:
        path = self._path(key)
        info = self.filesystem.get_file_info(path)
        if info.type == pafs.FileType.File:
            self.filesystem.delete_file(path)
        elif info.type == pafs.FileType.Directory:
            with suppress(FileNotFoundError):
                self.filesystem.delete_dir(path)

    def local_folder(self, key: str) -> None:
        return None


def s3_filesystem(settings: Settings) -> pafs.S3FileSystem:
    """The workspace's S3 client, from ``HUB_RECONCILIATION_S3_*``; keys left empty are
    found by the AWS default chain (``AWS_ACCESS_KEY_ID``..., a profile, an instance role)."""
    options: dict[str, object] = {"region": settings.reconciliation_s3_region}
    if settings.reconciliation_s3_endpoint:
        endpoint = urlsplit(settings.reconciliation_s3_endpoint)
        options["endpoint_override"] = endpoint.netloc
        options["scheme"] = endpoint.scheme
    access_key = settings.reconciliation_s3_access_key_id.get_secret_value()
    secret_key = settings.reconciliation_s3_secret_access_key.get_secret_value()
    if access_key or secret_key:
        options["access_key"] = access_key
        options["secret_key"] = secret_key
    return pafs.S3FileSystem(**options)  # type: ignore[arg-type]


def store_of(settings: Settings) -> Store:
    """The store ``settings`` name: ``HUB_RECONCILIATION_WORKSPACE``, else the local folder."""
    if settings.reconciliation_workspace:
        return S3Store(parse_location(settings.reconciliation_workspace), s3_filesystem(settings))
    return LocalStore(settings.resolved_reconciliation_dir)


def open_result(store: Store, uri: str) -> tuple[pafs.FileSystem, str]:
    """Where to read a run's recorded result: through the store if it is one of its files,
    else as a local path (results recorded before the store was configured)."""
    located = store.locate(uri)
    if located is not None:
        return located
    if "://" in uri:
        raise PermanentError(
            f"{uri} is not in the reconciliation workspace (HUB_RECONCILIATION_WORKSPACE)",
            system=SYSTEM,
        )
    return pafs.LocalFileSystem(), os.path.abspath(uri)
