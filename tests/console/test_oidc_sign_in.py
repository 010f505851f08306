"""Sign-in to the console with OpenID Connect in a real browser: the authorization code grant
with PKCE at the hub's OpenID provider (oidc-provider, its own login page), and what the
person may then do is what their access token allows.

Real provider (Node.js), hub API served over HTTP, Debian's chromium.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect
from temporalio.client import Client

from hub.settings import Settings
from tests.conftest import running_hub, served_api
from tests.console.conftest import ConsoleProvider


@pytest.fixture
def oidc_settings(hub_settings: Settings, console_idp: ConsoleProvider) -> Settings:
    return hub_settings.model_copy(update=console_idp.hub_settings())


@pytest.fixture
async def oidc_console(
    oidc_settings: Settings, temporal_client: Client, console_idp: ConsoleProvider
) -> AsyncIterator[str]:
    async with running_hub(oidc_settings, temporal_client) as hub:
        with served_api(hub, port=console_idp.console_port) as base:
            yield f"{base}/console"


async def test_a_person_signs_in_at_the_provider_and_has_their_scopes(
    browser: Browser, oidc_console: str, console_idp: ConsoleProvider
) -> None:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(f"{oidc_console}/dead-letters")
        await page.get_by_role("link", name="Sign in with the identity provider").click()
        # The provider's own login page, not the hub's.
        await expect(page).to_have_url(re.compile(re.escape(console_idp.provider.issuer) + "/"))
        await page.get_by_label("Username").fill("reader")
        await page.get_by_label("Password").fill("wrong")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("alert")).to_contain_text("wrong password")
        await page.get_by_label("Username").fill("reader")
        await page.get_by_label("Password").fill(console_idp.passwords["reader"])
        await page.get_by_role("button", name="Sign in").click()

        # Back where the person wanted to go, which their scopes do not allow: refused.
        await expect(page).to_have_url(f"{oidc_console}/dead-letters")
        await expect(page.get_by_role("alert")).to_contain_text(
            "oidc:reader lacks the scope 'deadletters:read'"
        )
        await page.goto(f"{oidc_console}/reports")
        await expect(page.get_by_role("heading", name="Regulatory reports")).to_be_visible()
        await expect(page.get_by_text("oidc:reader")).to_be_visible()
        session = [c for c in await context.cookies() if c["name"] == "hub_console"]
        assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Lax"
    finally:
        await context.close()
