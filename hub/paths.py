"""Whether a file location lies inside the allowed roots, decided as the filesystem opens it.

Export destinations (``HUB_EXPORT_DESTINATIONS``), reconciliation sources
(``HUB_RECONCILIATION_SOURCE_ROOTS``) and the reconciliation workspace are checked here: in
the API (a 400 naming the field) and again in the worker right where the files are opened (a
permanent, non-retryable failure), so a schedule created before a check, or a symlink made
after it, is refused where it would do harm.

A location is read exactly as ``pyarrow.fs`` and the adapters read it:

- a URI (``file://``, ``s3://``, ``gs://``, ``abfs://``, ``hdfs://``; the scheme in any case)
  has its path percent-decoded once, as ``FileSystem.from_uri`` does: ``%2e%2e`` becomes
  ``..``, ``%2f`` a ``/``, ``%00`` a NUL;
- a plain path (``/srv/exports``; relative only where the caller allows it) is not decoded:
  ``Path`` and ``LocalFileSystem`` take it literally.

What cannot be read one way only is refused, not guessed: malformed percent-encoding, bytes
that are not UTF-8, control characters (NUL...), backslashes, an encoded slash (``%2F``), a
``%`` left after decoding (double encoding: whoever decodes once more sees another path),
``..`` segments after decoding, credentials, fragments, a query or a host other than
``localhost`` on ``file://``; on object storage also ``.`` and empty segments (keys of their
own there).

A local path then has every symlink followed (``os.path.realpath``), and so have the roots (a
root may itself be a link), and is compared by path components: ``/srv/exports-evil`` is not
inside ``/srv/exports``. Object storage is compared by scheme, bucket and key segments, and by
its options: a location names its root's options (``?region=``, ``?endpoint_override=``) or
none, and then takes the root's, as another endpoint is other storage.

:func:`check_location` answers a :class:`Location` whose :attr:`~Location.uri` is canonical:
resolved, and percent-encoded so that pyarrow decodes it back to exactly the path checked.

What remains: checking and opening are two steps. Where the hub writes local files itself (the
export writer, the reconciliation workspace, billing's usage export copy) it re-checks the
resolved parent with :func:`require_within` right before each write and refuses a final
component that is a link (``O_NOFOLLOW`` where it opens the file itself), so a symlink swapped in
after the check is caught; one swapped in during the microseconds between that re-check and
pyarrow's own open is not, nor, for reads through pyarrow, one swapped in between the check of
a file and its opening. Closing that needs ``openat2(RESOLVE_BENEATH)``, which pyarrow does not
offer; it takes write access inside the root to try. A reconciliation workspace on S3 has no
links: its keys are checked by ``hub.reconciliation.workspace.check_key`` instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urlencode, urlsplit

LOCAL = "file"
#: URI schemes ``pyarrow.fs`` opens.
SCHEMES = frozenset({LOCAL, "s3", "gs", "gcs", "abfs", "abfss", "hdfs"})
#: Query options of ``pyarrow.fs`` URIs that carry credentials: the worker takes those from its
#: environment (AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS...), never from a URI that
#: ends up in schedules, run records and API answers.
CREDENTIAL_OPTIONS = frozenset(
    {"access_key", "secret_key", "session_token", "sas_token", "account_key", "client_secret"}
)

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_BAD_ESCAPE = re.compile("%(?![0-9A-Fa-f]{2})")
_ENCODED_SLASH = re.compile("%2f", re.IGNORECASE)
#: Bucket, container, account or name node: what object storage names hosts with.
_HOST = re.compile(r"[A-Za-z0-9._\-]+(:[0-9]+)?")


class LocationRefused(ValueError):
    """A location the hub will not open; the message says why."""


@dataclass(frozen=True)
class Location:
    """A location as the filesystem opens it: decoded segments, no ``.``, ``..`` or empty ones."""

    scheme: str
    #: Bucket, container or name node; empty for a local path.
    host: str = ""
    segments: tuple[str, ...] = ()
    #: The URI's query options (``region``, ``endpoint_override``...), as given.
    options: tuple[tuple[str, str], ...] = ()

    @property
    def local(self) -> bool:
        return self.scheme == LOCAL

    @property
    def path(self) -> str:
        """The path the filesystem opens: ``/a/b`` locally, ``bucket/a/b`` on object storage."""
        key = "/".join(self.segments)
        if self.local:
            return "/" + key
        return f"{self.host}/{key}" if key else self.host

    @property
    def uri(self) -> str:
        """The canonical URI: pyarrow's ``from_uri`` decodes it back to :attr:`path`."""
        key = quote("/".join(self.segments), safe="/")
        if self.local:
            return f"file:///{key}"
        query = f"?{urlencode(self.options)}" if self.options else ""
        return f"{self.scheme}://{self.host}{'/' + key if key else ''}{query}"

    def is_within(self, root: Location) -> bool:
        """Whether this is ``root`` or below it, by components (options aside)."""
        same_store = (self.scheme, self.host) == (root.scheme, root.host)
        return same_store and self.segments[: len(root.segments)] == root.segments


def parse_location(text: str, *, relative_to: str | None = None) -> Location:
    """``text`` decoded as ``pyarrow.fs`` will decode it, or :class:`LocationRefused`.

    A relative local path is refused unless ``relative_to`` names the folder it is taken from.
    Nothing is resolved here: see :func:`resolve`.
    """
    text = text.strip()
    if not text:
        raise LocationRefused("is empty: give an absolute path or a URI")
    if _CONTROL.search(text):
        raise LocationRefused("a control character (NUL, newline...) has no place in a location")
    if text.startswith("/") or not _SCHEME.match(text):
        return _plain_path(text, relative_to)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise LocationRefused(
            f"scheme {scheme!r} is not supported; one of {', '.join(sorted(SCHEMES))}"
        )
    if "@" in parts.netloc:
        raise LocationRefused("credentials do not belong in the URI; the worker reads them")
    if parts.fragment or "#" in text:
        raise LocationRefused("a URI fragment (#...) has no meaning here")
    options = _options(parts.query)
    if scheme == LOCAL:
        if parts.netloc.lower() not in ("", "localhost"):
            raise LocationRefused("a file:// URI names no host: file:///absolute/path")
        if parts.query:
            raise LocationRefused("a file:// URI takes no query (?...)")
        path = _decoded(parts.path)
        if not path.startswith("/"):
            raise LocationRefused("must be an absolute path: file:///absolute/path")
        return Location(LOCAL, "", _local_segments(path))
    if not parts.netloc:
        raise LocationRefused(f"{scheme}:// needs a bucket or container")
    if not _HOST.fullmatch(parts.netloc):
        raise LocationRefused(
            f"{parts.netloc!r} is not a bucket or host name (letters, digits, '.', '-', '_')"
        )
    return Location(scheme, parts.netloc, _key_segments(_decoded(parts.path)), options)


def resolve(location: Location) -> Location:
    """A local location with every symlink followed (``os.path.realpath``); object storage
    as it is. The resolved path must be as unambiguous as a given one."""
    if not location.local:
        return location
    real = os.path.realpath(location.path)
    try:
        _check_literal(real, decoded=False)
    except LocationRefused as exc:
        raise LocationRefused(f"{location.uri} resolves to {real!r}: {exc}") from None
    return Location(LOCAL, "", _local_segments(real))


def check_location(
    location: str,
    roots: Sequence[str],
    *,
    what: str,
    setting: str,
    relative_to: str | None = None,
) -> Location:
    """``location`` as the filesystem will open it (decoded, resolved), if that lies within
    one of ``roots`` (decoded and resolved the same way); else :class:`LocationRefused`,
    naming ``what`` the roots are and the ``setting`` that holds them.

    On object storage a location without options takes its root's; with options they must be
    the root's.
    """
    given = parse_location(location, relative_to=relative_to)
    opened = resolve(given)
    allowed = [_root(root, setting, relative_to) for root in roots]
    other_options: Location | None = None
    for root in allowed:
        if not opened.is_within(root):
            continue
        if not opened.options:
            return replace(opened, options=root.options)
        if sorted(opened.options) == sorted(root.options):
            return opened
        other_options = root
    if other_options is not None:
        raise LocationRefused(
            f"{given.uri} has other options than {other_options.uri} (another endpoint or "
            f"region is other storage): give the root's, or none; see {setting}"
        )
    listing = ", ".join(root.uri for root in allowed)
    if opened != given:
        raise LocationRefused(
            f"{given.uri} resolves (through a symbolic link) to {opened.uri}, which is not "
            f"under {what} ({listing}); see {setting}"
        )
    raise LocationRefused(f"{given.uri} is not under {what} ({listing}); see {setting}")


def require_within(
    path: str | os.PathLike[str], root: str | os.PathLike[str], *, follow_last: bool = True
) -> Path:
    """``path`` with every symlink followed, if that is ``root`` (resolved too) or below it,
    by components; else :class:`LocationRefused`. For local paths the hub builds itself
    (a workspace's files, a staged part), checked right before they are written.

    With ``follow_last=False`` the last component must not be a symlink at all (it is about to
    be created or replaced): only its folder is resolved.
    """
    real_root = Path(os.path.realpath(root))
    if follow_last:
        real = Path(os.path.realpath(path))
    else:
        if os.path.islink(path):
            target = os.readlink(path)
            raise LocationRefused(
                f"{os.fspath(path)} is a symbolic link (to {target}): not followed"
            )
        real = Path(os.path.realpath(os.path.dirname(os.fspath(path)))) / os.path.basename(path)
    if not real.is_relative_to(real_root):
        raise LocationRefused(f"{os.fspath(path)} resolves to {real}, outside {real_root}")
    return real


# --- Parsing ---------------------------------------------------------------------------------


def _root(text: str, setting: str, relative_to: str | None) -> Location:
    try:
        return resolve(parse_location(text, relative_to=relative_to))
    except LocationRefused as exc:
        raise LocationRefused(
            f"{setting} holds {text!r}, which the hub cannot use: {exc}"
        ) from None


def _plain_path(text: str, relative_to: str | None) -> Location:
    _check_literal(text, decoded=False)
    segments = _local_segments(text)
    if text.startswith("/"):
        return Location(LOCAL, "", segments)
    if relative_to is None:
        raise LocationRefused(
            "must be an absolute path or a URI (file://, s3://, gs://, abfs://, hdfs://)"
        )
    base = _local_segments(os.path.abspath(relative_to))
    return Location(LOCAL, "", base + segments)


def _decoded(raw: str) -> str:
    """A URI's path decoded once, as pyarrow does, refused where that is ambiguous."""
    if _BAD_ESCAPE.search(raw):
        raise LocationRefused("malformed percent-encoding: '%' must be followed by two hex digits")
    if _ENCODED_SLASH.search(raw):
        raise LocationRefused("an encoded '/' (%2F) is not allowed: write the '/' itself")
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise LocationRefused("the path is not UTF-8 once percent-decoded") from None
    _check_literal(text, decoded=True)
    return text


def _check_literal(text: str, *, decoded: bool) -> None:
    if _CONTROL.search(text):
        raise LocationRefused("a control character (NUL, newline...) has no place in a location")
    if "\\" in text:
        raise LocationRefused("a backslash is not allowed in a location")
    if "%" in text:
        raise LocationRefused(
            "a '%' is left after percent-decoding (double encoding) and is not allowed"
            if decoded
            else "a '%' is not allowed in a path (percent-encoding is for file:// URIs)"
        )


def _local_segments(path: str) -> tuple[str, ...]:
    segments = path.split("/")
    if ".." in segments:
        raise LocationRefused("'..' is not allowed in the path (nor %2e%2e)")
    return tuple(segment for segment in segments if segment not in ("", "."))


def _key_segments(path: str) -> tuple[str, ...]:
    key = path.removeprefix("/").removesuffix("/")
    if not key:
        return ()
    segments = key.split("/")
    if ".." in segments:
        raise LocationRefused("'..' is not allowed in the path (nor %2e%2e)")
    if "." in segments or "" in segments:
        raise LocationRefused("'.' and empty segments ('//') are keys of their own here: refused")
    return tuple(segments)


def _options(query: str) -> tuple[tuple[str, str], ...]:
    if not query:
        return ()
    if _BAD_ESCAPE.search(query):
        raise LocationRefused("malformed percent-encoding in the query")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise LocationRefused("the query is not name=value&...") from None
    for name, value in pairs:
        if name.lower() in CREDENTIAL_OPTIONS:
            raise LocationRefused("credentials do not belong in the URI; the worker reads them")
        if _CONTROL.search(name + value):
            raise LocationRefused("a control character has no place in a location")
    return tuple(pairs)
