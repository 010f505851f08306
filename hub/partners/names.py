"""Names normalised for comparison, and how similar two of them are.

A company is ``Müller Telekom GmbH`` in one register, ``MUELLER TELEKOM`` in another and
``Telekom Müller G.m.b.H.`` in a third. :func:`normalise` makes them comparable: Unicode
compatibility forms, diacritics and case removed (``ß`` as ``ss``), punctuation as spaces,
legal-form words dropped (GmbH, Ltd, SA...), the words sorted (word order does not matter).
:func:`similarity` is RapidFuzz's token-sort ratio (0-100) of two normalised names.
"""

from __future__ import annotations

import re
import unicodedata

from rapidfuzz import fuzz

#: Legal forms, as words after punctuation is removed (``G.m.b.H.`` is ``g m b h``, joined
#: back below): dropped from company names, which are compared without them.
LEGAL_FORMS = frozenset(
    {
        "ab", "ag", "aps", "as", "asa", "bv", "bvba", "co", "company", "corp", "corporation",
        "cv", "doo", "eg", "ek", "eirl", "ev", "gbr", "gmbh", "group", "holding", "inc",
        "incorporated", "kft", "kg", "kgaa", "limited", "llc", "llp", "lp", "ltd", "mbh", "nv",
        "ohg", "oy", "oyj", "plc", "sa", "sae", "sarl", "sas", "se", "sl", "spa", "sp", "sro",
        "srl", "zoo", "ug",
    }
)  # fmt: skip
#: Dotted abbreviations written letter by letter, joined into the word they stand for.
_DOTTED = re.compile(r"\b(?:[a-z]\s){1,5}[a-z]\b")
#: Letters that decomposition does not separate from a base letter.
_SPECIAL = str.maketrans({"ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "ð": "d", "þ": "th", "ł": "l"})


def fold(text: str) -> str:
    """``text`` without case, diacritics or punctuation: lowercase ASCII-ish words."""
    text = unicodedata.normalize("NFKD", text.casefold().translate(_SPECIAL))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[^\w]+|_", " ", text).strip()
    # "g m b h" (from G.m.b.H.) -> "gmbh", "s a" -> "sa"
    return _DOTTED.sub(lambda m: m.group(0).replace(" ", ""), text)


def normalise(name: str) -> str:
    """The comparable form of a company's or person's name (see the module's docstring)."""
    words = [word for word in fold(name).split() if word not in LEGAL_FORMS]
    return " ".join(sorted(words))


def similarity(a: str, b: str) -> float:
    """0 (nothing alike) to 100 (the same name) for two names, normalised first."""
    left, right = normalise(a), normalise(b)
    if not left or not right:
        return 0.0
    return float(fuzz.token_sort_ratio(left, right))
