from __future__ import annotations

import pytest

from hub.reporting import kev
from hub.reporting.registry import REPORT_TYPES, report_type


def test_kev_is_registered() -> None:
    kind = report_type("kev-mobile-quarterly")
    assert kind is REPORT_TYPES[kev.REPORT_TYPE]
    assert (kind.name, kind.compute, kind.render, kind.validate) == (
        "kev-mobile-quarterly",
        kev.compute,
        kev.render,
        kev.validate,
    )


def test_unknown_type_names_the_field() -> None:
    with pytest.raises(ValueError) as raised:
        report_type("x")
    assert str(raised.value) == ("reportType: unknown report type 'x'; one of kev-mobile-quarterly")
