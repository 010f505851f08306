"""Screening against a sanctions list in the EU Financial Sanctions Files (FSF) XML format.

The European Commission publishes the consolidated list of persons, groups and entities
subject to EU financial sanctions as XML (namespace ``http://eu.europa.ec/fpi/fsd/export``):
an ``export`` of ``sanctionEntity`` elements, each with its ``subjectType`` (``person`` or
``enterprise``), its ``regulation`` and its ``nameAlias`` elements (``wholeName``, or
``firstName`` / ``middleName`` / ``lastName``). Only those parts are read; the rest of an
entry (addresses, birth dates, identifications) is left alone. The list is read once per
file version (its path and modification time) and kept in memory.

:func:`screen` compares each name (the company's, its trading name, its representatives')
with every alias, both normalised (:mod:`hub.partners.names`), and answers the hits whose
similarity reaches the threshold: a person decides what a hit means (a compliance review).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from hub.partners.names import normalise, similarity

#: A small list in the FSF format, with invented entries, for tests and the demo.
SAMPLE_LIST = Path(__file__).with_name("sanctions-sample.xml")


@dataclass(frozen=True)
class ListedName:
    name: str
    normalised: str
    subject_type: str
    eu_reference: str
    logical_id: str
    programme: str


@dataclass(frozen=True)
class Hit:
    """A screened name that resembles a listed one."""

    screened: str
    listed: str
    score: float
    subject_type: str
    eu_reference: str
    logical_id: str
    programme: str

    def as_dict(self) -> dict[str, object]:
        return {
            "screened": self.screened,
            "listed": self.listed,
            "score": round(self.score, 1),
            "subjectType": self.subject_type,
            "euReferenceNumber": self.eu_reference,
            "logicalId": self.logical_id,
            "programme": self.programme,
        }


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def parse_list(path: Path) -> list[ListedName]:
    """Every alias of every entry of an FSF XML file. Raises ``ValueError`` for a file that
    is not one (so a wrong path is an error, not an empty list that clears everyone)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    try:
        root = etree.parse(str(path), parser).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise ValueError(f"sanctions list {path}: cannot read it: {exc}") from exc
    if _local(root) != "export":
        raise ValueError(f"sanctions list {path}: not an FSF export (root <{_local(root)}>)")
    names: list[ListedName] = []
    for entity in root:
        if not isinstance(entity.tag, str) or _local(entity) != "sanctionEntity":
            continue
        subject_type, programme = "", ""
        aliases: list[str] = []
        for child in entity:
            if not isinstance(child.tag, str):
                continue
            kind = _local(child)
            if kind == "subjectType":
                subject_type = child.get("code", "")
            elif kind == "regulation" and not programme:
                programme = child.get("programme", "")
            elif kind == "nameAlias":
                whole = (child.get("wholeName") or "").strip()
                if not whole:
                    parts = (child.get(part) for part in ("firstName", "middleName", "lastName"))
                    whole = " ".join(part.strip() for part in parts if part and part.strip())
                if whole:
                    aliases.append(whole)
        for alias in dict.fromkeys(aliases):
            names.append(
                ListedName(
                    alias,
                    normalise(alias),
                    subject_type,
                    entity.get("euReferenceNumber", ""),
                    entity.get("logicalId", ""),
                    programme,
                )
            )
    if not names:
        raise ValueError(f"sanctions list {path}: no sanctionEntity with a name")
    return names


@functools.lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int) -> tuple[ListedName, ...]:
    return tuple(parse_list(Path(path)))


def load_list(path: Path) -> tuple[ListedName, ...]:
    """The list at ``path``, parsed once per version of the file."""
    resolved = path.resolve()
    return _cached(str(resolved), resolved.stat().st_mtime_ns)


def screen(names: list[str], listed: tuple[ListedName, ...], threshold: float) -> list[Hit]:
    """The hits of ``names`` against ``listed`` at or above ``threshold``, best first."""
    hits: list[Hit] = []
    for name in dict.fromkeys(n for n in names if n and n.strip()):
        for entry in listed:
            score = similarity(name, entry.name)
            if score >= threshold:
                hits.append(
                    Hit(
                        name,
                        entry.name,
                        score,
                        entry.subject_type,
                        entry.eu_reference,
                        entry.logical_id,
                        entry.programme,
                    )
                )
    return sorted(hits, key=lambda hit: -hit.score)
