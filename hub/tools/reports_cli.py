"""``hub reports``: regulatory reports from a terminal, through the hub API.

``start`` prepares a report (the API key's identity is its preparer, who may not approve it),
``get`` shows one with its figures and findings, ``list`` the latest, ``wait`` follows one
through its steps until it is accepted or ends otherwise. Approve with
``hub tasks complete TASK approve`` under another person's key.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from hub.tools.cli import DEFAULT_API_URL, ApiKey, ApiUrl, _api, _call, _fail, _json, console

reports_app = typer.Typer(help="Regulatory reports, through the hub API.", no_args_is_help=True)

REPORTS = "/regulatoryReports"
ReportId = Annotated[str, typer.Argument(metavar="ID", help="The report's id.")]
#: A version's steps in order, for the progress bar.
STEPS = ("extracting", "validating", "awaitingApproval", "submitting", "submitted", "accepted")
FINAL = ("accepted", "rejected", "superseded", "failed")


def _print_report(report: dict[str, Any]) -> None:
    table = Table(show_header=False, title=f"report {escape(report['id'])}", title_justify="left")
    for label, key in (
        ("type", "reportType"),
        ("period", "period"),
        ("operator", "operatorId"),
        ("version", "version"),
        ("status", "status"),
        ("prepared by", "preparedBy"),
        ("approved by", "approvedBy"),
        ("approval task", "taskId"),
        ("receipt", "receiptId"),
        ("due", "dueDate"),
        ("supersedes", "supersedes"),
        ("document SHA-256", "documentSha256"),
    ):
        if report.get(key) is not None:
            table.add_row(label, escape(str(report[key])))
    for reason in report.get("reasons") or []:
        table.add_row("reason", escape(reason))
    console.print(table)
    if report.get("indicators"):
        figures = Table("indicator", "value", title="indicators", title_justify="left")
        for name, value in report["indicators"].items():
            shown = json.dumps(value) if isinstance(value, dict) else str(value)
            figures.add_row(name, escape(shown))
        console.print(figures)
    if report.get("findings"):
        findings = Table("finding", "indicator", "message", "ack", title="findings")
        for finding in report["findings"]:
            findings.add_row(
                escape(str(finding.get("code"))),
                escape(str(finding.get("indicator") or "")),
                escape(str(finding.get("message"))),
                "yes" if finding.get("requires_ack", True) else "",
            )
        console.print(findings)


@reports_app.command("start")
def reports_start(
    report_type: Annotated[str, typer.Option("--type", help="e.g. kev-mobile-quarterly")],
    period: Annotated[str, typer.Option(help="The quarter, e.g. 2026-Q3")],
    operator: Annotated[str | None, typer.Option(help="Operator id (default: settings)")] = None,
    network_source: Annotated[str | None, typer.Option(help="Folder or URI of CDRs")] = None,
    billing_source: Annotated[
        str | None, typer.Option(help="billing-system, or a folder / URI of rated usage")
    ] = None,
    employees: Annotated[int | None, typer.Option(min=0, help="Employees (manual)")] = None,
    investments: Annotated[
        str | None, typer.Option(help="Investments, e.g. 1250000.00 (manual)")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it to its end")] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Prepare a report (the same one again answers the open version)."""
    body: dict[str, Any] = {"reportType": report_type, "period": period}
    for key, value in (
        ("operatorId", operator),
        ("networkSource", network_source),
        ("billingSource", billing_source),
    ):
        if value is not None:
            body[key] = value
    manual = {k: v for k, v in (("employees", employees), ("investments", investments)) if v}
    if manual:
        body["manualFigures"] = manual
    with _api(api_url, api_key) as client:
        response = _call(client, "POST", REPORTS, json=body)
    report = _json(response)
    verb = "started" if response.status_code == 201 else "is already open"
    console.print(f"report [bold]{escape(report['id'])}[/] v{report['version']} {verb}")
    if wait:
        reports_wait(report["id"], api_url=api_url, api_key=api_key)
    else:
        console.print(f"follow it with: hub reports wait {escape(report['id'])}")


@reports_app.command("get")
def reports_get(
    report_id: ReportId, api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None
) -> None:
    """Show a report: status, figures, findings, receipt."""
    with _api(api_url, api_key) as client:
        _print_report(_json(_call(client, "GET", f"{REPORTS}/{report_id}")))


@reports_app.command("list")
def reports_list(
    report_type: Annotated[str | None, typer.Option("--type")] = None,
    period: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """The latest reports, newest period first."""
    params: dict[str, Any] = {"limit": limit}
    for key, value in (("reportType", report_type), ("period", period), ("status", status)):
        if value:
            params[key] = value
    with _api(api_url, api_key) as client:
        reports = _json(_call(client, "GET", REPORTS, params=params))
    table = Table("id", "type", "period", "v", "status", "receipt", "due")
    for report in reports:
        table.add_row(
            escape(report["id"]),
            escape(report["reportType"]),
            report["period"],
            str(report["version"]),
            report["status"],
            escape(report.get("receiptId") or ""),
            str(report.get("dueDate") or "")[:10],
        )
    console.print(table)


@reports_app.command("wait")
def reports_wait(
    report_id: ReportId,
    timeout: Annotated[float, typer.Option(min=0, help="Give up after this many seconds")] = 3600,
    interval: Annotated[float, typer.Option(min=0.01, hidden=True)] = 0.5,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Follow a report through its steps; exit 0 only if the regulator accepted it."""
    deadline = time.monotonic() + timeout
    with _api(api_url, api_key) as client, Progress(console=console) as progress:
        bar = progress.add_task("extracting", total=len(STEPS))
        while True:
            report = _json(_call(client, "GET", f"{REPORTS}/{report_id}"))
            status = report["status"]
            if status in STEPS:
                progress.update(bar, completed=STEPS.index(status) + 1, description=status)
            if status in FINAL:
                progress.update(bar, description=status)
                break
            if time.monotonic() >= deadline:
                progress.stop()
                _fail(f"report {report_id} is still {status} after {timeout:g} s")
            time.sleep(interval)
    _print_report(report)
    if report["status"] != "accepted":
        raise typer.Exit(1)
