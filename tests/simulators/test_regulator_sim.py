"""The regulator portal simulator through the hub's own adapter (zeep on the same WSDL):
validation against the report type's XSD, periods, versions, idempotency, verdicts, faults."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.regulator import Receipt, RegulatorClient
from hub.errors import NotFoundError, ReportRejected, TransientError
from hub.settings import CONTRACTS_DIR
from simulators import regulator
from simulators.serving import serve_in_background

XSD = """<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <xsd:element name="report" type="xsd:nonNegativeInteger"/>
</xsd:schema>"""
GOOD, BAD = b"<report>12</report>", b"<report>twelve</report>"


Portal = tuple[RegulatorClient, httpx.AsyncClient]


@pytest.fixture
async def portal(tmp_path: Path) -> AsyncIterator[Portal]:
    (tmp_path / "test-report.xsd").write_text(XSD)
    app = regulator.create_app(tmp_path / "state.json", schemas_dir=tmp_path)
    async with serve_in_background(app) as url:
        client = RegulatorClient(CONTRACTS_DIR / "regulator.wsdl", f"{url}/regulator")
        async with httpx.AsyncClient(base_url=url) as control:
            yield client, control
        await client.aclose()


async def submit(client: RegulatorClient, key: str, **changes: Any) -> Receipt:
    arguments: dict[str, Any] = {
        "operator_id": "AT-1",
        "report_type": "test-report",
        "period": "2026-Q3",
        "version": 1,
        "document": GOOD,
        "supersedes": None,
        "idempotency_key": key,
        **changes,
    }
    return await client.submit_report(**arguments)


async def state(control: httpx.AsyncClient) -> list[dict[str, object]]:
    return list((await control.get("/_sim/state")).json()["submissions"])


async def test_a_retried_submission_is_one_submission(portal: Portal) -> None:
    client, control = portal
    first = await submit(client, "report-1/submit")
    again = await submit(client, "report-1/submit")
    assert again == first
    (stored,) = await state(control)
    assert stored["receiptId"] == first.receipt_id
    assert base64.b64decode(str(stored["document"])) == GOOD


async def test_what_the_portal_refuses_is_a_permanent_rejection(portal: Portal) -> None:
    client, control = portal
    cases = [
        ({"document": BAD}, "SchemaInvalid"),
        ({"document": b"not xml"}, "SchemaInvalid"),
        ({"period": "2999-Q1"}, "PeriodNotEnded"),
        ({"report_type": "no-such-type"}, "UnknownReportType"),
        ({"supersedes": "rcpt-nope"}, "UnknownSupersedes"),
    ]
    for number, (changes, code) in enumerate(cases):
        with pytest.raises(ReportRejected, match=code):
            await submit(client, f"k{number}", **changes)
    assert await state(control) == []
    await submit(client, "v1")
    with pytest.raises(ReportRejected, match="DuplicateVersion"):
        await submit(client, "v1-again-under-another-key")
    with pytest.raises(NotFoundError):
        await client.get_submission("rcpt-unknown")


async def test_verdicts_after_the_delay_or_by_hand_and_supersession(portal: Portal) -> None:
    client, control = portal
    await control.put("/_sim/verdicts", json={"verdict": "hold", "delay_seconds": 0})
    first = await submit(client, "v1")
    assert (await client.get_submission(first.receipt_id)).status == "validated"
    decided = await control.post(
        f"/_sim/submissions/{first.receipt_id}/verdict",
        json={"verdict": "accept"},
    )
    assert decided.status_code == 200
    assert (await client.get_submission(first.receipt_id)).status == "accepted"

    await control.put(
        "/_sim/verdicts", json={"verdict": "reject", "delay_seconds": 0, "reasons": ["late"]}
    )
    second = await submit(client, "v2", version=2, supersedes=first.receipt_id)
    verdict = await client.get_submission(second.receipt_id)
    assert (verdict.status, verdict.reasons) == ("rejected", ["late"])
    await control.put("/_sim/verdicts", json={"delay_seconds": 0})
    third = await submit(client, "v3", version=3, supersedes=first.receipt_id)
    assert (await client.get_submission(third.receipt_id)).status == "accepted"
    stored = {s["receiptId"]: s for s in await state(control)}
    assert stored[first.receipt_id]["supersededBy"] == third.receipt_id


async def test_an_injected_outage_is_transient_and_stores_nothing(portal: Portal) -> None:
    client, control = portal
    rule = await control.post("/_sim/faults", json={"operation": "SubmitReport", "times": 1})
    assert rule.status_code == 201
    with pytest.raises(TransientError):
        await submit(client, "k")
    assert await state(control) == []
    await submit(client, "k")
    assert len(await state(control)) == 1
