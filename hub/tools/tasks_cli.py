"""``hub tasks``: the task inbox from a terminal, through the hub API (``/tasks``).

``list`` shows the open tasks (filters as the API's), ``show`` one task with its evidence,
form and audit trail, ``claim`` / ``unclaim`` take and give back, ``approve`` / ``reject`` /
``complete`` decide. Who decides is the API key's identity, as the API records it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hub.tools.cli import DEFAULT_API_URL, ApiKey, ApiUrl, _api, _call, _json, console

tasks_app = typer.Typer(help="Human tasks: the inbox, through the hub API.", no_args_is_help=True)

TaskId = Annotated[str, typer.Argument(help="The task's id (task-...).")]
Comment = Annotated[str | None, typer.Option("--comment", "-m", help="Why; shown to others.")]


def _when(value: Any) -> str:
    return str(value or "").split(".")[0].replace("T", " ").removesuffix("Z")


@tasks_app.command("list")
def tasks_list(
    state: Annotated[
        str | None, typer.Option(help="created, assigned, completed, cancelled, expired.")
    ] = None,
    all_states: Annotated[
        bool, typer.Option("--all", help="Closed tasks too (default: open ones only).")
    ] = False,
    group: Annotated[str | None, typer.Option(help="Only tasks this group may decide.")] = None,
    assignee: Annotated[
        str | None, typer.Option(help="Only tasks claimed by this identity.")
    ] = None,
    process: Annotated[str | None, typer.Option(help="Only this process's tasks.")] = None,
    reference: Annotated[
        str | None, typer.Option(help="Only tasks about this business id.")
    ] = None,
    overdue: Annotated[bool, typer.Option(help="Only tasks past their due time.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many.")] = 50,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """List tasks, most urgent first (priority, then due time)."""
    params: dict[str, Any] = {"limit": limit}
    for name, value in (
        ("state", state),
        ("candidateGroup", group),
        ("assignee", assignee),
        ("process", process),
        ("reference", reference),
    ):
        if value:
            params[name] = value
    if not state and not all_states:
        params["open"] = "true"
    if overdue:
        params["overdue"] = "true"
    with _api(api_url, api_key) as client:
        response = _call(client, "GET", "/tasks", params=params)
    tasks = _json(response)
    ids = [str(task.get("id") or "") for task in tasks]
    table = Table(title="tasks", title_justify="left")
    table.add_column("id", no_wrap=True, min_width=max(map(len, ids), default=2))
    table.add_column("state", no_wrap=True)
    table.add_column("prio", justify="right")
    table.add_column("title", overflow="fold")
    table.add_column("reference", overflow="fold")
    table.add_column("groups", overflow="fold")
    table.add_column("assignee", overflow="fold")
    table.add_column("due", overflow="fold")
    for task_id, task in zip(ids, tasks, strict=True):
        due = _when(task.get("dueAt"))
        table.add_row(
            escape(task_id),
            escape(str(task.get("state"))),
            str(task.get("priority")),
            escape(str(task.get("title"))),
            escape(str(task.get("reference") or "")),
            escape(", ".join(task.get("candidateGroups") or [])),
            escape(str(task.get("assignee") or "")),
            f"[red]{escape(due)} overdue[/]" if task.get("overdue") else escape(due),
        )
    console.print(table)
    total = response.headers.get("X-Total-Count", str(len(tasks)))
    console.print(f"{len(tasks)} of {total} tasks")


def _print_task(task: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, key in [
        ("id", "id"),
        ("title", "title"),
        ("state", "state"),
        ("process", "process"),
        ("reference", "reference"),
        ("workflow", "workflowId"),
        ("decisions", "decisions"),
        ("groups", "candidateGroups"),
        ("assignee", "assignee"),
        ("not by", "excludedDeciders"),
        ("priority", "priority"),
        ("created", "createdAt"),
        ("follow-up", "followUpAt"),
        ("escalation", "escalationAt"),
        ("due", "dueAt"),
        ("decision", "decision"),
        ("comment", "comment"),
        ("decided by", "decidedBy"),
        ("decided at", "decidedAt"),
    ]:
        value = task.get(key)
        if value in (None, [], ""):
            continue
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        table.add_row(label, escape(shown))
    if task.get("description"):
        table.add_row("description", escape(task["description"]))
    for field in task.get("form") or []:
        required = " (required)" if field.get("required") else ""
        table.add_row("form", escape(f"{field['name']}: {field['type']}{required}"))
    if task.get("evidence"):
        table.add_row("evidence", escape(json.dumps(task["evidence"], indent=2, default=str)))
    for event in task.get("history") or []:
        actor = f" by {event['actor']}" if event.get("actor") else ""
        table.add_row("history", escape(f"{_when(event['at'])} {event['action']}{actor}"))
    console.print(table)


@tasks_app.command("show")
def tasks_show(task_id: TaskId, api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None) -> None:
    """One task: what it asks, its evidence and form, and its audit trail."""
    with _api(api_url, api_key) as client:
        _print_task(_json(_call(client, "GET", f"/tasks/{task_id}")))


def _act(api_url: str, api_key: str | None, task_id: str, action: str, body: Any = None) -> None:
    with _api(api_url, api_key) as client:
        answer = _json(_call(client, "POST", f"/tasks/{task_id}/{action}", json=body))
    task = answer["task"]
    console.print(
        f"task {escape(task['id'])}: {escape(task['state'])}"
        + (
            f", {escape(task['decision'])} by {escape(task['decidedBy'])}"
            if task.get("decision")
            else ""
        )
        + (f", claimed by {escape(task['assignee'])}" if task["state"] == "assigned" else "")
    )


@tasks_app.command("claim")
def tasks_claim(task_id: TaskId, api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None) -> None:
    """Take a task, so only you decide it."""
    _act(api_url, api_key, task_id, "claim")


@tasks_app.command("unclaim")
def tasks_unclaim(
    task_id: TaskId, api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None
) -> None:
    """Give a task you claimed back to its groups."""
    _act(api_url, api_key, task_id, "unclaim")


def _fields(values: list[str]) -> dict[str, Any]:
    """``name=value`` pairs; a value that reads as JSON (a number, true) is taken as that."""
    fields: dict[str, Any] = {}
    for pair in values:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r}: expected name=value", param_hint="--field")
        try:
            fields[name] = json.loads(raw)
        except ValueError:
            fields[name] = raw
    return fields


@tasks_app.command("complete")
def tasks_complete(
    task_id: TaskId,
    decision: Annotated[str, typer.Argument(help="One of the task's decisions.")],
    comment: Comment = None,
    field: Annotated[
        list[str] | None, typer.Option("--field", "-f", help="A form field: name=value.")
    ] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Decide a task with any decision it offers (retry, skip, abort, ...)."""
    body: dict[str, Any] = {"decision": decision, "comment": comment}
    if field:
        body["fields"] = _fields(field)
    _act(api_url, api_key, task_id, "complete", body)


@tasks_app.command("approve")
def tasks_approve(
    task_id: TaskId,
    comment: Comment = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Approve a task (``complete TASK approve``)."""
    _act(api_url, api_key, task_id, "complete", {"decision": "approve", "comment": comment})


@tasks_app.command("reject")
def tasks_reject(
    task_id: TaskId,
    comment: Comment = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Reject a task (``complete TASK reject``); most processes want a comment."""
    _act(api_url, api_key, task_id, "complete", {"decision": "reject", "comment": comment})
