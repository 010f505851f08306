"""The console's plumbing: its app under ``/console``, sign-in, the page context, rendering.

The console is a FastAPI app of its own, mounted on the API's (so the API's TMF error
handlers and OpenAPI document stay the API's, and the console answers pages, not JSON); it
shares the API's state: database sessions, the Temporal connection, settings. Its pages call
the API's route functions (``api.routes.*``) with the signed-in person as the caller, so what
the console shows and does is what the API would answer that person: the same visibility by
groups, the same scope per action, the same refusals (four-eyes is the workflow's own).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import State
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import Client

from api.console import oidc
from api.console.session import CSRF_FIELD, ConsoleSession, Sessions, csrf_ok
from api.deps import Principal, principal_for
from api.errors import ApiError
from api.inbound import CheckedRoute, unstorable
from hub.errors import ValidationFailure
from hub.permissions import Scope
from hub.redact import REDACTED, SECRET_FIELDS, redact
from hub.settings import Settings
from workflows import partner_onboarding, regulatory_report, service_activation

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
#: Form bodies are small: a comment and a few fields (the API's body limit applies first).
MAX_FORM_FIELDS = 200


class SignInNeeded(Exception):
    """No valid session: the page redirects to sign-in (``expired``: a session had ended)."""

    def __init__(self, expired: bool) -> None:
        self.expired = expired


class Refused(Exception):
    """A page the person may not see or a POST without a valid CSRF token: an error page."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


@dataclass
class Page:
    """One request of a signed-in person: who, their session, and the hub's state."""

    request: Request
    session: ConsoleSession
    who: Principal
    hub: State

    @property
    def settings(self) -> Settings:
        return self.hub.settings  # type: ignore[no-any-return]

    def require(self, scope: Scope) -> None:
        if not self.who.allows(scope):
            raise Refused(403, f"{self.who.subject} lacks the scope {scope.value!r}")

    @asynccontextmanager
    async def db(self) -> AsyncIterator[AsyncSession]:
        async with self.hub.sessions() as session:
            yield session

    async def temporal(self) -> Client:
        try:
            return await self.hub.temporal.get()  # type: ignore[no-any-return]
        except Exception as exc:
            raise ApiError(503, f"Temporal is not reachable: {type(exc).__name__}") from exc

    def flash(self, text: str, kind: str = "success") -> None:
        self.session.flash.append({"kind": kind, "text": text})

    async def form(self) -> dict[str, str]:
        """The POST's form fields, once its CSRF token is the session's (403 if not)."""
        return await checked_form(self.request, self.session)

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """The page, with the session's messages (shown once) and ``extra_messages``."""
        messages, self.session.flash = self.session.flash, []
        messages += context.pop("extra_messages", [])
        response = templates.TemplateResponse(
            self.request,
            template,
            {**links(self.settings), **context, "who": self.who, "csrf": self.session.csrf,
             "messages": messages},
            status_code=status,
        )  # fmt: skip
        self.hub.console_sessions.write(response, self.session)
        return response

    def redirect(self, path: str) -> RedirectResponse:
        response = RedirectResponse(path, status_code=303)
        self.hub.console_sessions.write(response, self.session)
        return response


async def checked_form(request: Request, session: ConsoleSession | None) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict, refused (403) unless its CSRF
    field is the session's token, and (400) if a value cannot be stored."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise Refused(415, "the console's forms are sent as application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(
            (await request.body()).decode("utf-8"),
            keep_blank_values=True,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, f"the form cannot be read: {exc}") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    if not csrf_ok(session, fields.get(CSRF_FIELD)):
        raise Refused(403, "the form's CSRF token is missing or wrong: reload the page and retry")
    for name, value in fields.items():
        if (problem := unstorable(name) or unstorable(value)) is not None:
            raise Refused(400, f"{name}: {problem}")
    return fields


def links(settings: Settings) -> dict[str, Any]:
    """What every page links to: the Temporal Web UI (by search-attribute query) and Grafana."""
    base = settings.temporal_ui_url.rstrip("/")
    namespace = quote(settings.temporal_namespace, safe="")

    def workflows(query: str = "") -> str:
        url = f"{base}/namespaces/{namespace}/workflows"
        return f"{url}?{urlencode({'query': query})}" if query else url

    def workflow(workflow_id: str) -> str:
        return f"{base}/namespaces/{namespace}/workflows/{quote(workflow_id, safe='')}"

    return {
        "temporal_workflows": workflows,
        "temporal_workflow": workflow,
        "grafana_url": settings.grafana_url,
        "reference_url": reference_url,
    }


#: The console page of a task's business reference, by the task's process.
REFERENCE_PAGES = {
    service_activation.PROCESS_KIND: "/console/orders/",
    regulatory_report.PROCESS_KIND: "/console/reports/",
    partner_onboarding.PROCESS_KIND: "/console/partners/",
}


def reference_url(process: str, reference: str | None) -> str | None:
    """The page of what a task is about (an order, a report, a partner), if the console has one."""
    prefix = REFERENCE_PAGES.get(process)
    return f"{prefix}{quote(reference, safe='')}" if prefix and reference else None


async def page_of(request: Request) -> Page:
    """The dependency of every signed-in page."""
    hub: State = request.app.state.hub
    session, expired = hub.console_sessions.open(request)
    who = hub.console_sessions.principal(session) if session else None
    if session is None or who is None:
        raise SignInNeeded(expired or (session is not None and session.subject is not None))
    return Page(request, session, who, hub)


def _sign_in_page(
    request: Request,
    hub: State,
    session: ConsoleSession,
    message: str | None,
    status: int = 200,
) -> HTMLResponse:
    sessions: Sessions = hub.console_sessions
    target = _safe_next(request.query_params.get("next"))
    response = templates.TemplateResponse(
        request,
        "sign_in.html",
        {**links(sessions.settings), "csrf": session.csrf, "message": message, "who": None,
         "next": target, "oidc": oidc.enabled(hub),
         "oidc_start": "/console/oidc/start?" + urlencode({"next": target})},
        status_code=status,
    )  # fmt: skip
    sessions.write(response, session)
    return response


def _safe_next(target: str | None) -> str:
    """Where to go after sign-in: a console path only (no open redirect)."""
    if target and target.startswith("/console/") and not target.startswith("/console//"):
        return target
    return "/console/"


def create_console(hub: State) -> FastAPI:
    """The console app; ``hub``: the API app's state (set up by its lifespan)."""
    from api.console import inbox, records, repair

    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    # Query and path text checked as on the API (no NUL, no lone surrogate): a 400 page.
    console.router.route_class = CheckedRoute
    console.state.hub = hub
    hub.console_sessions = Sessions(hub.settings)
    console.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @console.exception_handler(SignInNeeded)
    async def to_sign_in(request: Request, exc: SignInNeeded) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = {"next": target} if request.method == "GET" else {}
        if exc.expired:
            query["expired"] = "1"
        response = RedirectResponse(
            "/console/sign-in" + (f"?{urlencode(query)}" if query else ""), status_code=303
        )
        hub.console_sessions.clear(response)
        return response

    @console.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # An unknown page or method: the console's page, not FastAPI's JSON.
        return await refused(request, Refused(exc.status_code, str(exc.detail)))

    @console.exception_handler(ValidationFailure)
    async def unfit_text(request: Request, exc: ValidationFailure) -> Response:
        return await refused(request, Refused(400, str(exc)))

    @console.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        # Signed in, the page keeps its navigation (and the sign-out form).
        session, _ = hub.console_sessions.open(request)
        who = hub.console_sessions.principal(session) if session else None
        return templates.TemplateResponse(
            request,
            "refused.html",
            {**links(hub.settings), "status": exc.status, "message": exc.message, "who": who,
             "csrf": session.csrf if session and who else None},
            status_code=exc.status,
        )  # fmt: skip

    @console.get("/sign-in", response_class=HTMLResponse, include_in_schema=False)
    async def sign_in_form(request: Request) -> Response:
        session, expired = hub.console_sessions.open(request)
        if session is not None and hub.console_sessions.principal(session) is not None:
            return RedirectResponse("/console/", status_code=303)
        expired = expired or request.query_params.get("expired") == "1"
        message = "Your session has ended: sign in again." if expired else None
        return _sign_in_page(request, hub, ConsoleSession(), message)

    @console.post("/sign-in", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        session, _ = hub.console_sessions.open(request)
        fields = await checked_form(request, session)
        assert session is not None  # checked_form refuses a POST without one
        try:
            who = principal_for(fields.get("apiKey") or None, hub.settings)
        except ApiError:
            return _sign_in_page(request, hub, session, "That API key is not valid.", 401)
        # A new session (and CSRF token) at sign-in: one planted before it is worth nothing.
        signed_in = ConsoleSession(subject=who.subject, method="api-key")
        response = RedirectResponse(_safe_next(fields.get("next")), status_code=303)
        hub.console_sessions.write(response, signed_in)
        return response

    @console.post("/sign-out", include_in_schema=False)
    async def sign_out(request: Request) -> Response:
        session, _ = hub.console_sessions.open(request)
        await checked_form(request, session)
        response = RedirectResponse("/console/sign-in", status_code=303)
        hub.console_sessions.clear(response)
        return response

    console.include_router(
        oidc.sign_in_routes(hub, lambda *args: _sign_in_page(args[0], hub, *args[1:]), _safe_next)
    )
    console.include_router(inbox.router)
    console.include_router(repair.router)
    console.include_router(records.router)
    return console


def masked(value: Any) -> Any:
    """Evidence and inputs as the console shows them: every secret field masked (by
    :func:`hub.redact.redact`), and the value of a TMF characteristic named like one
    (``{"name": "ki", "value": ...}``) too, wherever it comes from."""
    if isinstance(value, dict):
        name = value.get("name")
        if isinstance(name, str) and name.lower() in SECRET_FIELDS and "value" in value:
            value = {**value, "value": REDACTED}
        return {key: masked(item) for key, item in redact(value).items()}
    if isinstance(value, list | tuple):
        return [masked(item) for item in value]
    return value


templates.env.filters["masked"] = masked
