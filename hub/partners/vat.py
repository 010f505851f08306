"""VAT identification numbers of the EU (and Northern Ireland), as VIES knows them.

A VAT id is the country prefix (ISO 3166 alpha-2, but ``EL`` for Greece and ``XI`` for
Northern Ireland) followed by the national number, whose format the table below gives (the
formats the European Commission publishes for VIES). Only the format is checked here; whether
the number is registered is the VAT check's question (the ``vies.check_vat`` activity).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The national number's format, per VIES country prefix.
FORMATS: dict[str, str] = {
    "AT": r"U[0-9]{8}",
    "BE": r"[01][0-9]{9}",
    "BG": r"[0-9]{9,10}",
    "CY": r"[0-9]{8}[A-Z]",
    "CZ": r"[0-9]{8,10}",
    "DE": r"[0-9]{9}",
    "DK": r"[0-9]{8}",
    "EE": r"[0-9]{9}",
    "EL": r"[0-9]{9}",
    "ES": r"[A-Z0-9][0-9]{7}[A-Z0-9]",
    "FI": r"[0-9]{8}",
    "FR": r"[A-HJ-NP-Z0-9]{2}[0-9]{9}",
    "HR": r"[0-9]{11}",
    "HU": r"[0-9]{8}",
    "IE": r"[0-9]{7}[A-W][A-I]?|[0-9][A-Z+*][0-9]{5}[A-W]",
    "IT": r"[0-9]{11}",
    "LT": r"[0-9]{9}|[0-9]{12}",
    "LU": r"[0-9]{8}",
    "LV": r"[0-9]{11}",
    "MT": r"[0-9]{8}",
    "NL": r"[0-9]{9}B[0-9]{2}",
    "PL": r"[0-9]{10}",
    "PT": r"[0-9]{9}",
    "RO": r"[1-9][0-9]{1,9}",
    "SE": r"[0-9]{12}",
    "SI": r"[0-9]{8}",
    "SK": r"[0-9]{10}",
    "XI": r"[0-9]{9}|[0-9]{12}|GD[0-9]{3}|HA[0-9]{3}",
}
_COMPILED = {country: re.compile(pattern) for country, pattern in FORMATS.items()}
#: VIES prefixes that differ from the ISO 3166 code of the country.
ISO_OF_PREFIX = {"EL": "GR", "XI": "GB"}


@dataclass(frozen=True)
class VatId:
    country: str
    number: str

    def __str__(self) -> str:
        return f"{self.country}{self.number}"

    @property
    def iso_country(self) -> str:
        return ISO_OF_PREFIX.get(self.country, self.country)


def parse_vat_id(text: str) -> VatId:
    """The VAT id in ``text`` (spaces, dots and dashes are ignored); ``ValueError`` saying
    what is wrong with it, never accepting a number whose format its country does not use."""
    compact = re.sub(r"[\s.\-]", "", text).upper()
    country, number = compact[:2], compact[2:]
    pattern = _COMPILED.get(country)
    if pattern is None:
        raise ValueError(
            f"{text!r} does not start with an EU VAT country prefix ({', '.join(sorted(FORMATS))})"
        )
    if not pattern.fullmatch(number):
        raise ValueError(f"{text!r} is not a {country} VAT number (format {FORMATS[country]})")
    return VatId(country, number)
