"""``hub partners``: wholesale partners from a terminal, through the hub API.

``apply`` sends an application (the organization, its registration number and VAT id, a
representative, the callback, the scopes), ``get`` shows one with its checks and findings,
``list`` the latest, ``wait`` follows one until it is active or ends otherwise (approve its
task with ``hub tasks complete TASK approve``), ``credentials`` fetches the OAuth2 client's
credentials, once, with a key that holds ``partners:credentials``, and ``offboard`` asks for
the partner to be offboarded (a task decides it).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from hub.tools.cli import DEFAULT_API_URL, ApiKey, ApiUrl, _api, _call, _fail, _json, console

partners_app: typer.Typer = typer.Typer(
    help="Wholesale partners, through the hub API.", no_args_is_help=True
)

APPLICATIONS = "/partnerApplications"
ApplicationId = Annotated[str, typer.Argument(metavar="ID", help="The application's id.")]
#: An application's steps in order, for the progress bar.
STEPS = ("checking", "awaitingApproval", "provisioning", "testing", "active")
FINAL = ("active", "rejected", "closed", "failed")


def _print_application(app: dict[str, Any]) -> None:
    table = Table(show_header=False, title=f"application {escape(app['id'])}", title_justify="left")
    for label, key in (
        ("name", "name"),
        ("status", "status"),
        ("registration number", "registrationNumber"),
        ("VAT id", "vatId"),
        ("organization", "organizationId"),
        ("party role", "partyRoleId"),
        ("callback", "callbackUrl"),
        ("high risk", "highRisk"),
        ("open task", "taskId"),
        ("approved by", "approvedBy"),
        ("billing account", "billingAccountId"),
        ("OAuth2 client", "clientId"),
        ("credentials issued", "credentialsIssuedAt"),
    ):
        value = app.get(key)
        if value not in (None, [], ""):
            shown = ", ".join(value) if isinstance(value, list) else str(value)
            table.add_row(label, escape(shown))
    table.add_row("scopes", escape(", ".join(app.get("requestedScopes") or [])))
    for reason in app.get("reasons") or []:
        table.add_row("reason", escape(reason))
    console.print(table)
    if app.get("findings"):
        findings = Table("finding", "severity", "message", title="findings", title_justify="left")
        for finding in app["findings"]:
            findings.add_row(
                escape(str(finding.get("code"))),
                escape(str(finding.get("severity") or "")),
                escape(str(finding.get("message"))),
            )
        console.print(findings)


@partners_app.command("apply")
def partners_apply(
    name: Annotated[str, typer.Option(help="The company's registered name")],
    registration_number: Annotated[str, typer.Option(help="Company registry number")],
    vat_id: Annotated[str, typer.Option(help="VAT id with its country prefix, e.g. ATU12345678")],
    callback_url: Annotated[str, typer.Option(help="Where the hub sends notifications")],
    scope: Annotated[
        list[str] | None, typer.Option(help="A scope the partner asks for (repeat it)")
    ] = None,
    trading_name: Annotated[str | None, typer.Option()] = None,
    representative: Annotated[
        list[str] | None, typer.Option(help='"Given Family", a representative (repeat it)')
    ] = None,
    email: Annotated[str | None, typer.Option(help="The partner's contact e-mail")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it to its end")] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Apply as a wholesale partner (the same registration number again answers the open
    application)."""
    representatives = []
    for person in representative or []:
        given, _, family = person.strip().rpartition(" ")
        if not given or not family:
            _fail(f"--representative {person!r}: give 'Given Family'")
        representatives.append({"givenName": given, "familyName": family})
    identification = [
        {"identificationType": kind, "identificationId": value}
        for kind, value in (("companyRegistrationNumber", registration_number), ("vatId", vat_id))
    ]
    organization: dict[str, Any] = {"name": name, "organizationIdentification": identification}
    if trading_name:
        organization["tradingName"] = trading_name
    if email:
        organization["contactMedium"] = [
            {"mediumType": "email", "characteristic": {"emailAddress": email}}
        ]
    body = {
        "organization": organization,
        "representatives": representatives,
        "callbackUrl": callback_url,
        "requestedScopes": scope or ["orders:read", "orders:write"],
    }
    with _api(api_url, api_key) as client:
        response = _call(client, "POST", APPLICATIONS, json=body)
    app = _json(response)
    verb = "received" if response.status_code == 201 else "is already open"
    console.print(f"application [bold]{escape(app['id'])}[/] for {escape(app['name'])} {verb}")
    if wait:
        partners_wait(app["id"], api_url=api_url, api_key=api_key)
    else:
        console.print(f"follow it with: hub partners wait {escape(app['id'])}")


@partners_app.command("get")
def partners_get(
    application_id: ApplicationId, api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None
) -> None:
    """Show an application: status, checks, findings, what was provisioned."""
    with _api(api_url, api_key) as client:
        _print_application(_json(_call(client, "GET", f"{APPLICATIONS}/{application_id}")))


@partners_app.command("list")
def partners_list(
    status: Annotated[str | None, typer.Option()] = None,
    name: Annotated[str | None, typer.Option(help="The name contains it")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """The latest applications, newest first."""
    params: dict[str, Any] = {"limit": limit}
    for key, value in (("status", status), ("name", name)):
        if value:
            params[key] = value
    with _api(api_url, api_key) as client:
        apps = _json(_call(client, "GET", APPLICATIONS, params=params))
    table = Table("id", "name", "status", "VAT id", "task", "findings")
    for app in apps:
        table.add_row(
            escape(app["id"]),
            escape(app["name"]),
            app["status"],
            escape(app["vatId"]),
            escape(app.get("taskId") or ""),
            str(len(app.get("findings") or [])),
        )
    console.print(table)


@partners_app.command("wait")
def partners_wait(
    application_id: ApplicationId,
    timeout: Annotated[float, typer.Option(min=0, help="Give up after this many seconds")] = 3600,
    interval: Annotated[float, typer.Option(min=0.01, hidden=True)] = 0.5,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Follow an application; exit 0 only once the partner is active."""
    deadline = time.monotonic() + timeout
    shown_task = None
    with _api(api_url, api_key) as client, Progress(console=console) as progress:
        bar = progress.add_task("checking", total=len(STEPS))
        while True:
            app = _json(_call(client, "GET", f"{APPLICATIONS}/{application_id}"))
            status = app["status"]
            if status in STEPS:
                progress.update(bar, completed=STEPS.index(status) + 1, description=status)
            if app.get("taskId") and app["taskId"] != shown_task:
                shown_task = app["taskId"]
                progress.console.print(
                    f"waiting for task [bold]{escape(shown_task)}[/]: "
                    f"hub tasks complete {escape(shown_task)} approve"
                )
            if status in FINAL:
                progress.update(bar, description=status)
                break
            if time.monotonic() >= deadline:
                progress.stop()
                _fail(f"application {application_id} is still {status} after {timeout:g} s")
            time.sleep(interval)
    _print_application(app)
    if app["status"] != "active":
        raise typer.Exit(1)


@partners_app.command("credentials")
def partners_credentials(
    application_id: ApplicationId, api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None
) -> None:
    """Fetch the partner's OAuth2 client credentials: shown once, never again."""
    with _api(api_url, api_key) as client:
        credentials = _json(_call(client, "POST", f"{APPLICATIONS}/{application_id}/credentials"))
    # Plain lines, never a table: a table cuts a long secret to the terminal's width, and the
    # secret is shown this once.
    console.print("hand these to the partner now: they are not kept", style="bold")
    for label, key in (
        ("client id", "clientId"),
        ("client secret", "clientSecret"),
        ("token endpoint", "tokenEndpoint"),
        ("webhook signing secret", "webhookSecret"),
    ):
        value = str(credentials.get(key) or "")
        console.print(f"{label}: {value}", markup=False, highlight=False, soft_wrap=True)


@partners_app.command("offboard")
def partners_offboard(
    application_id: ApplicationId,
    reason: Annotated[str | None, typer.Option()] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Ask for the partner to be offboarded; another person decides the task."""
    with _api(api_url, api_key) as client:
        answer = _json(
            _call(
                client,
                "POST",
                f"{APPLICATIONS}/{application_id}/offboard",
                json={"reason": reason} if reason else {},
            )
        )
    console.print(
        f"offboarding asked: task [bold]{escape(answer['taskId'])}[/] decides it "
        f"(hub tasks complete {escape(answer['taskId'])} approve)"
    )
