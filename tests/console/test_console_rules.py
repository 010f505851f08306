"""The console's rules without a browser or Temporal (Starlette's TestClient on the app):
sign-in, the session cookie, CSRF on every POST, expiry, scopes and what a person's groups let
them see. The browser tests (test_browser.py) show the same from a person's side."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine
from sqlmodel import Session

from api.console.session import COOKIE, ConsoleSession, Sessions
from api.main import create_app
from hub.models import (
    HumanTask,
    HumanTaskCandidate,
    OrderStateChange,
    PartnerApplication,
    ServiceOrder,
    utcnow,
)
from hub.settings import ApiClient, Settings
from tests.factories import TS35208_K, new_identity, order

KEYS = {name: f"{name}-console-key-" + "z" * 24 for name in ("noc", "officer", "reader", "manager")}


def settings_for(tmp_path: Path, **overrides: object) -> Settings:
    overrides.setdefault("console_session_key", SecretStr(Fernet.generate_key().decode()))
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        api_clients=[
            ApiClient(name="noc", key=SecretStr(KEYS["noc"]), groups=["ops"],
                      scopes=["tasks:read", "tasks:decide", "deadletters:read", "orders:read"]),
            ApiClient(name="officer", key=SecretStr(KEYS["officer"]), groups=["regulatory"],
                      scopes=["tasks:read", "tasks:decide", "reports:read"]),
            ApiClient(name="reader", key=SecretStr(KEYS["reader"]), scopes=["reports:read"]),
            ApiClient(name="manager", key=SecretStr(KEYS["manager"]), groups=["wholesale"],
                      scopes=["partners:read", "partners:write", "reports:read"]),
        ],
        **overrides,
    )  # fmt: skip


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return settings_for(tmp_path_factory.mktemp("console"))


@pytest.fixture(scope="module")
def app_client(settings: Settings) -> Iterator[TestClient]:
    # One app (and database) for the module: migrating one per test would cost seconds each.
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture
def client(app_client: TestClient) -> Iterator[TestClient]:
    app_client.cookies.clear()  # every test starts signed out
    yield app_client
    app_client.cookies.clear()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def sign_in(client: TestClient, who: str) -> str:
    """Signs ``who`` in; answers the CSRF token of their session's forms."""
    form = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in",
        data={"csrf": csrf_of(form.text), "apiKey": KEYS[who], "next": "/console/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/"
    return csrf_of(client.get("/console/reports").text)


def add_task(
    settings: Settings, task_id: str, group: str, title: str, priority: int = 50, due: float = -1
) -> None:
    """A task row as a workflow records it; ``due``: hours from now (negative: overdue)."""
    engine = create_engine(f"sqlite:///{settings.data_dir / 'hub.db'}")
    with Session(engine) as session:
        session.add(
            HumanTask(id=task_id, workflow_id=f"wf-{task_id}", run_id="r", process="probe",
                      kind="approval", title=title, decisions=["approve"], priority=priority,
                      due_at=utcnow() + timedelta(hours=due))
        )  # fmt: skip
        session.add(HumanTaskCandidate(task_id=task_id, group_name=group))
        session.commit()
    engine.dispose()


def test_a_page_without_a_session_goes_to_sign_in(client: TestClient) -> None:
    answer = client.get("/console/dead-letters?status=parked", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == (
        "/console/sign-in?next=%2Fconsole%2Fdead-letters%3Fstatus%3Dparked"
    )


def test_the_session_cookie_is_httponly_samesite_and_scoped(client: TestClient) -> None:
    form = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in",
        data={"csrf": csrf_of(form.text), "apiKey": KEYS["noc"]},
        follow_redirects=False,
    )
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for flag in ("HttpOnly", "Path=/console", "SameSite=lax", "Max-Age=28800"):
        assert flag in cookie, cookie
    assert "Secure" not in cookie  # http on loopback, outside production
    assert KEYS["noc"] not in cookie  # the cookie never holds the key


def test_production_cookies_are_secure(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    sessions = Sessions(settings.model_copy(update={"environment": "production"}))
    from fastapi import Response

    response = Response()
    sessions.write(response, ConsoleSession())
    assert "Secure" in response.headers["set-cookie"]


def test_a_wrong_key_is_a_message_on_the_sign_in_page(client: TestClient) -> None:
    form = client.get("/console/sign-in")
    answer = client.post(
        "/console/sign-in", data={"csrf": csrf_of(form.text), "apiKey": "nope-" + "x" * 30}
    )
    assert answer.status_code == 401
    assert "That API key is not valid." in answer.text


@pytest.mark.parametrize("token", [None, "", "forged"], ids=["missing", "empty", "wrong"])
def test_every_post_needs_the_sessions_csrf_token(client: TestClient, token: str | None) -> None:
    # The sign-in form too: a site cannot sign a browser in to its own session.
    client.get("/console/sign-in")
    body = {"apiKey": KEYS["noc"]} | ({"csrf": token} if token is not None else {})
    refused = client.post("/console/sign-in", data=body, follow_redirects=False)
    assert refused.status_code == 403 and "CSRF token is missing or wrong" in refused.text
    sign_in(client, "officer")
    for path in (
        "/console/tasks/t-1/claim",
        "/console/dead-letters/retry",
        "/console/dead-letters/dl-1/abort",
        "/console/partners/p-1/offboard",
        "/console/sign-out",
    ):
        refused = client.post(path, data=body, follow_redirects=False)
        assert refused.status_code == 403, (path, refused.text)
        assert "CSRF token is missing or wrong" in refused.text
    # Still signed in: a refused form changes nothing.
    assert client.get("/console/", follow_redirects=False).status_code == 200


def test_a_token_of_another_session_is_refused(client: TestClient) -> None:
    theirs = sign_in(client, "officer")
    client.cookies.clear()
    sign_in(client, "noc")
    refused = client.post("/console/sign-out", data={"csrf": theirs}, follow_redirects=False)
    assert refused.status_code == 403


def test_forms_are_urlencoded_only(client: TestClient) -> None:
    csrf = sign_in(client, "noc")
    refused = client.post("/console/sign-out", json={"csrf": csrf}, follow_redirects=False)
    assert refused.status_code == 415


def test_an_expired_or_forged_session_goes_back_to_sign_in(
    client: TestClient, settings: Settings
) -> None:
    sessions = Sessions(settings)
    ttl = settings.console_session_ttl.total_seconds()
    old = sessions.seal(
        ConsoleSession(subject="api-key:noc", method="api-key"), at=time.time() - ttl - 1
    )
    for value in (
        old,
        old[:-4] + "AAAA",
        Sessions(settings_for(settings.data_dir)).seal(
            ConsoleSession(subject="api-key:noc", method="api-key")
        ),
    ):
        client.cookies.set(COOKIE, value, path="/console")
        answer = client.get("/console/reports", follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/sign-in?next=%2Fconsole%2Freports&expired=1"
        assert "Your session has ended" in client.get(answer.headers["location"]).text
        client.cookies.clear()
    # The same session, fresh, is let in.
    client.cookies.set(
        COOKIE,
        sessions.seal(ConsoleSession(subject="api-key:noc", method="api-key")),
        path="/console",
    )
    assert client.get("/console/", follow_redirects=False).status_code == 200  # fmt: skip


def test_a_removed_key_ends_its_sessions(client: TestClient, settings: Settings) -> None:
    # A session of a client the settings no longer have (its key was removed).
    cookie = Sessions(settings).seal(ConsoleSession(subject="api-key:gone", method="api-key"))
    client.cookies.set(COOKIE, cookie, path="/console")
    answer = client.get("/console/", follow_redirects=False)
    assert answer.status_code == 303 and "expired=1" in answer.headers["location"]


def test_sign_in_returns_to_console_pages_only(client: TestClient) -> None:
    for target, expected in (
        ("/console/reports", "/console/reports"),
        ("//evil.example/console/", "/console/"),
        ("https://evil.example/", "/console/"),
        ("/console//evil.example", "/console/"),
    ):
        form = client.get("/console/sign-in")
        answer = client.post(
            "/console/sign-in",
            data={"csrf": csrf_of(form.text), "apiKey": KEYS["noc"], "next": target},
            follow_redirects=False,
        )
        assert answer.headers["location"] == expected, target


def test_a_page_needs_its_scope(client: TestClient) -> None:
    sign_in(client, "reader")
    refused = client.get("/console/")
    assert refused.status_code == 403
    assert "api-key:reader lacks the scope &#39;tasks:read&#39;" in refused.text
    assert client.get("/console/reports").status_code == 200
    assert client.get("/console/dead-letters").status_code == 403


def test_a_person_sees_the_tasks_of_their_groups_only(
    client: TestClient, settings: Settings
) -> None:
    add_task(settings, "task-ops", "ops", "Repair the billing step")
    add_task(settings, "task-reg", "regulatory", "Approve the quarterly report")
    sign_in(client, "noc")
    inbox = client.get("/console/").text
    assert "Repair the billing step" in inbox and "Approve the quarterly report" not in inbox
    assert "overdue" in inbox
    assert client.get("/console/tasks/task-ops").status_code == 200
    # Another group's task is not found, as through the API: its existence tells nothing.
    hidden = client.get("/console/tasks/task-reg")
    assert hidden.status_code == 404 and "no task with id" in hidden.text


def test_the_inbox_sorts_by_due_date_and_priority(client: TestClient, settings: Settings) -> None:
    add_task(settings, "task-soon", "ops", "Due soon, low", priority=10, due=2)
    add_task(settings, "task-late", "ops", "Due late, high", priority=90, due=48)
    sign_in(client, "noc")

    def order_of(query: str) -> list[str]:
        page = client.get(f"/console/?{query}").text
        titles = ["Due soon, low", "Due late, high"]
        return sorted(titles, key=page.index)

    assert order_of("sort=due&order=asc") == ["Due soon, low", "Due late, high"]
    assert order_of("sort=due&order=desc") == ["Due late, high", "Due soon, low"]
    assert order_of("sort=priority&order=desc") == ["Due late, high", "Due soon, low"]
    assert order_of("sort=priority&order=asc") == ["Due soon, low", "Due late, high"]
    page = client.get("/console/?sort=priority&order=desc").text
    assert 'aria-sort="descending"' in page
    # Only the overdue one of them is marked.
    row = page[page.index("Due soon, low") : page.index("</tr>", page.index("Due soon, low"))]
    assert "overdue" not in row


def add_order(settings: Settings, order_id: str, body: dict[str, object]) -> None:
    engine = create_engine(f"sqlite:///{settings.data_dir / 'hub.db'}")
    with Session(engine) as session:
        session.add(
            ServiceOrder(id=order_id, external_id=str(body["externalId"]), state="failed",
                         customer_id=identity_of(body), workflow_id=f"service-order-{order_id}",
                         error_message="billing refused the plan", document=body)
        )  # fmt: skip
        session.flush()
        session.add(OrderStateChange(order_id=order_id, to_state="acknowledged"))
        session.add(
            OrderStateChange(order_id=order_id, from_state="acknowledged", to_state="failed",
                             reason="billing refused the plan")
        )  # fmt: skip
        session.commit()
    engine.dispose()


def identity_of(body: dict[str, object]) -> str:
    parties = body["relatedParty"]
    assert isinstance(parties, list)
    return str(parties[0]["id"])


def test_orders_are_found_by_id_external_id_customer_imsi_and_msisdn(
    settings: Settings, client: TestClient
) -> None:
    identity = new_identity()
    body = order(identity)
    add_order(settings, "order-console-1", body)
    sign_in(client, "officer")
    assert client.get("/console/orders").status_code == 403  # no orders:read
    client.cookies.clear()
    sign_in(client, "noc")
    for query in (
        "order-console-1",
        str(body["externalId"]),
        identity["customer"],
        identity["imsi"],
        identity["msisdn"],
        identity["msisdn"].lstrip("+"),
    ):
        page = client.get("/console/orders", params={"q": query})
        assert 'href="/console/orders/order-console-1"' in page.text, query
    assert "order-console-1" not in client.get("/console/orders", params={"q": "00101"}).text

    detail = client.get("/console/orders/order-console-1")
    assert detail.status_code == 200
    assert "billing refused the plan" in detail.text
    assert "acknowledged → <strong>failed</strong>" in detail.text
    # The subscriber's keys are masked; the Temporal link is the search-attribute query.
    assert TS35208_K not in detail.text and "***" in detail.text
    assert "query=OrderId%3D%22order-console-1%22" in detail.text
    assert client.get("/console/orders/nope").status_code == 404


def test_text_that_cannot_be_stored_is_a_400_page(client: TestClient) -> None:
    sign_in(client, "noc")
    for path in ("/console/tasks/bad%00id", "/console/dead-letters?step=a%00b"):
        refused = client.get(path)
        assert refused.status_code == 400, path
        assert "must not contain a NUL character" in refused.text


def test_oidc_sign_in_refusals_are_messages_on_the_sign_in_page(tmp_path: Path) -> None:
    from tests.conftest import free_port

    settings = settings_for(
        tmp_path,
        oidc_issuer=f"http://127.0.0.1:{free_port()}",  # nobody listens there
        console_oidc_client_id="hub-console",
        console_oidc_client_secret=SecretStr("s" * 32),
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        assert "Sign in with the identity provider" in client.get("/console/sign-in").text
        down = client.get("/console/oidc/start", follow_redirects=False)
        assert down.status_code == 503 and "cannot be reached" in down.text
        # An answer for no sign-in under way, or for another one (state), signs nobody in.
        client.get("/console/sign-in")
        stray = client.get("/console/oidc/callback?code=c&state=s", follow_redirects=False)
        assert stray.status_code == 401 and "no sign-in was under way" in stray.text
        assert client.get("/console/", follow_redirects=False).status_code == 303


def test_the_console_client_needs_an_issuer_and_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HUB_CONSOLE_OIDC_CLIENT_ID needs HUB_OIDC_ISSUER"):
        settings_for(tmp_path, console_oidc_client_id="hub-console")
    with pytest.raises(ValueError, match="must be a Fernet key"):
        settings_for(tmp_path, console_session_key=SecretStr("not-a-key"))


def test_an_unknown_page_is_a_page(client: TestClient) -> None:
    sign_in(client, "noc")
    missing = client.get("/console/nowhere")
    assert missing.status_code == 404 and "<h1>Not found</h1>" in missing.text
    assert 'href="/console/dead-letters"' in missing.text  # still signed in: the navigation


def test_partners_list_and_page_with_offboarding_for_an_active_one(
    settings: Settings, client: TestClient
) -> None:
    engine = create_engine(f"sqlite:///{settings.data_dir / 'hub.db'}")
    with Session(engine) as session:
        session.add(
            PartnerApplication(
                id="pa-console-1", status="active", workflow_id="partner-pa-console-1",
                registration_number="FN 123456a", vat_id="ATU12345678", name="Acme Mobile",
                organization_id="org-console-1", party_role_id="role-console-1",
                callback_url="https://acme.example/hooks", applied_by="api-key:manager",
                checks={"vat": {"valid": True}, "registry": {"password": "hunter2"}},
                approved_by=["api-key:boss"],
            )
        )  # fmt: skip
        session.commit()
    engine.dispose()
    sign_in(client, "manager")
    listing = client.get("/console/partners")
    assert 'href="/console/partners/pa-console-1"' in listing.text and "Acme Mobile" in listing.text
    page = client.get("/console/partners/pa-console-1")
    assert page.status_code == 200
    assert "Ask to offboard" in page.text  # active: it may be offboarded
    assert "hunter2" not in page.text  # a secret in the checks is masked
    assert "ATU12345678" in page.text and "api-key:boss" in page.text
