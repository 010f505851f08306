"""The console in a real browser (Debian's chromium, driven by Playwright), against the hub's
API served over HTTP, a real worker, the Temporal dev server and the simulators.

- a NOC engineer signs in, finds the parked order's task in the inbox, retries it with a
  corrected field, and watches the order complete;
- a report's preparer is refused its approval (four-eyes) on the page; a second person
  approves it and the regulator accepts it; the XML downloads;
- a form whose CSRF token was removed or changed is refused; an expired session goes back to
  the sign-in page.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from api.console.session import COOKIE, ConsoleSession, Sessions
from tests.conftest import Hub, Simulators, eventually
from tests.factories import new_identity, order
from tests.processes.reporting.conftest import key_of
from tests.processes.reporting.reports import make_usage, report_in, start

ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


People = Callable[[str], Awaitable[BrowserContext]]


@pytest.fixture
async def people(browser: Browser) -> AsyncIterator[People]:
    """A fresh browser context (cookies of its own) per person, on a laptop-sized window."""
    contexts: dict[str, BrowserContext] = {}

    async def context(name: str) -> BrowserContext:
        if name not in contexts:
            contexts[name] = await browser.new_context(viewport={"width": 1280, "height": 860})
        return contexts[name]

    yield context
    for made in contexts.values():
        await made.close()


async def sign_in(people: People, console: str, name: str) -> Page:
    page = await (await people(name)).new_page()
    # The console's forms that change a process ask first: this person says yes.
    page.on("dialog", lambda dialog: dialog.accept())
    await page.goto(f"{console}/")
    await expect(page).to_have_url(f"{console}/sign-in?next=%2Fconsole%2F")
    await shoot(page, "sign-in")
    await page.get_by_label("API key").fill(key_of(name))
    await page.get_by_role("button", name="Sign in with the key").click()
    await expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    await expect(page.get_by_text(f"api-key:{name}")).to_be_visible()
    return page


async def shoot(page: Page, name: str) -> None:
    """Screenshots of the main pages for the README, when asked for (HUB_SCREENSHOTS=1)."""
    import os

    if os.environ.get("HUB_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def reload_until(page: Page, check: Any, timeout: float = 60) -> None:
    """Reload the page until ``check(page)`` holds (the process moves on in the background)."""

    async def holds() -> bool:
        await page.reload()
        return bool(await check(page))

    await eventually(holds, timeout=timeout, interval=0.3)


async def test_a_parked_order_is_repaired_from_the_inbox(
    hub: Hub, sims: Simulators, console_url: str, people: People
) -> None:
    identity = new_identity()
    rule = await sims.fault(
        "crm", operation="upsertService", match=identity["imsi"], kind="transient"
    )
    created = await hub.api.post(ORDERS, json=order(identity))
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]

    page = await sign_in(people, console_url, "noc")
    title = "Repair 1/crm.activate_service (crm)"
    await reload_until(page, lambda p: p.get_by_role("link", name=title).count())
    row = page.get_by_role("row").filter(has_text=title)
    await expect(row).to_contain_text(order_id)
    await shoot(page, "inbox")
    await row.get_by_role("link", name=title).click()

    await expect(page.get_by_role("heading", name=title)).to_be_visible()
    evidence = page.locator("section", has=page.get_by_role("heading", name="Evidence"))
    await expect(evidence).to_contain_text("gave up retrying")
    await expect(evidence).to_contain_text(identity["imsi"])
    await shoot(page, "task")

    await sims.http.delete(f"{sims.urls['crm']}/_sim/faults/{rule['id']}")  # the CRM is back
    await page.get_by_label("order_id").fill("corrected-ref")
    await page.get_by_label("Comment").fill("CRM is back; reference fixed")
    await page.get_by_role("button", name="Retry").click()
    await expect(page.get_by_role("status")).to_contain_text("Decided: retry.")
    await expect(page.get_by_text("api-key:noc").first).to_be_visible()

    await page.goto(f"{console_url}/orders?q={identity['imsi']}")
    await page.get_by_role("link", name=order_id).click()
    await reload_until(
        page, lambda p: p.locator("#order-state").filter(has_text="completed").count()
    )
    await expect(
        page.get_by_role("link", name="This order in the Temporal Web UI")
    ).to_have_attribute(
        "href",
        f"http://127.0.0.1:8233/namespaces/default/workflows?query=OrderId%3D%22{order_id}%22",
    )
    await shoot(page, "order")
    customer = next(
        c for c in (await sims.state("crm"))["customers"] if c["id"] == identity["customer"]
    )
    assert [s["orderId"] for s in customer["services"]] == ["corrected-ref"]

    await page.goto(f"{console_url}/dead-letters?status=resolved&system=crm")
    await expect(page.get_by_role("row").filter(has_text=order_id)).to_contain_text("resolved")
    await shoot(page, "dead-letters")

    # Readable on a tablet: nothing wider than the screen (wide tables scroll in their box).
    await page.set_viewport_size({"width": 768, "height": 1024})
    for path in ("/dead-letters", f"/orders/{order_id}", "/"):
        await page.goto(f"{console_url}{path}")
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} is {overflow} px wider than a tablet"
    await page.goto(f"{console_url}/dead-letters")
    await shoot(page, "dead-letters-tablet")


async def test_four_eyes_on_the_page_and_a_second_person_approves(
    hub: Hub, console_url: str, people: People, tmp_path: Path
) -> None:
    make_usage(tmp_path / "usage")
    started = await start(hub, tmp_path / "usage")  # prepared by "preparer"
    assert started.status_code == 201, started.text
    report = started.json()
    waiting = await report_in(hub, report["id"], "awaitingApproval")

    preparer = await sign_in(people, console_url, "preparer")
    await preparer.goto(f"{console_url}/reports/{report['id']}")
    await preparer.get_by_role("link", name="Approve").click()
    await preparer.get_by_label("I have read every finding").check()
    await preparer.get_by_label("Comment").fill("my own figures")
    await preparer.get_by_role("button", name="Approve").click()
    refusal = preparer.get_by_role("alert")
    await expect(refusal).to_contain_text("api-key:preparer")
    await expect(refusal).to_contain_text("four-eyes")
    # The refusal is a message on the task's page, which still offers the decision.
    await expect(preparer.get_by_role("button", name="Approve")).to_be_visible()
    await expect(preparer.get_by_label("Comment")).to_have_value("my own figures")

    approver = await sign_in(people, console_url, "approver")
    await approver.get_by_role("link", name="Approve kev-mobile-quarterly").click()
    await expect(approver.get_by_role("heading", name="Evidence")).to_be_visible()
    await approver.get_by_label("I have read every finding").check()
    await approver.get_by_label("Comment").fill("figures checked against Q2")
    await approver.get_by_role("button", name="Approve").click()
    await expect(approver.get_by_role("status")).to_contain_text("Decided: approve.")

    await approver.goto(f"{console_url}/reports/{report['id']}")
    await reload_until(
        approver, lambda p: p.locator("#report-status").filter(has_text="accepted").count()
    )
    await expect(approver.locator("dl.facts")).to_contain_text("api-key:approver")
    await shoot(approver, "report")
    async with approver.expect_download() as download:
        await approver.get_by_role("link", name="Download the XML").click()
    saved = await (await download.value).path()
    assert (await asyncio.to_thread(Path(saved).read_bytes)).startswith(b"<?xml")
    assert waiting["taskId"]


async def test_csrf_and_an_expired_session_are_refused(
    hub: Hub, console_url: str, people: People
) -> None:
    page = await sign_in(people, console_url, "noc")
    await page.goto(f"{console_url}/dead-letters")
    form = page.locator("form.bulk")
    # A forged or stale token: refused before anything is done.
    await form.locator("input[name=csrf]").evaluate("field => field.value = 'forged'")
    await form.get_by_role("button").click()
    await expect(page.get_by_role("alert")).to_contain_text("CSRF token is missing or wrong")
    await page.goto(f"{console_url}/dead-letters")
    await page.locator("form.bulk input[name=csrf]").evaluate("field => field.remove()")
    await page.locator("form.bulk").get_by_role("button").click()
    await expect(page.get_by_role("alert")).to_contain_text("CSRF token is missing or wrong")
    # With its token, the same form is done: a filter nothing is parked on retries nothing.
    await page.goto(f"{console_url}/dead-letters")
    await page.get_by_label("Step").select_option(index=0)
    await page.get_by_label("Reason").fill("after the outage")
    await page.get_by_role("button", name="Retry all parked of this filter").click()
    await expect(page.get_by_role("status")).to_contain_text("Retried 0 of 0 parked dead letters.")

    # A session older than HUB_CONSOLE_SESSION_TTL, sealed with the console's key.
    sessions = Sessions(hub.settings)
    ttl = hub.settings.console_session_ttl.total_seconds()
    old = sessions.seal(
        ConsoleSession(subject="api-key:noc", method="api-key"), at=time.time() - ttl - 60
    )
    # In place of the session's cookie (same name, host and path).
    await page.context.add_cookies(
        [{"name": COOKIE, "value": old, "domain": "127.0.0.1", "path": "/console",
          "httpOnly": True}]
    )  # fmt: skip
    assert [c["value"] for c in await page.context.cookies() if c["name"] == COOKIE] == [old]
    await page.goto(f"{console_url}/dead-letters")
    await expect(page).to_have_url(
        f"{console_url}/sign-in?next=%2Fconsole%2Fdead-letters&expired=1"
    )
    await expect(page.get_by_role("alert")).to_contain_text("Your session has ended")
