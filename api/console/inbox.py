"""The inbox (the console's home page) and a task's page: claim, give back, decide.

Through :mod:`api.routes.tasks` with the signed-in person as the caller: they see the tasks
their groups may act on, and a claim or decision is the workflow's update, whose refusals
(four-eyes, a missing or invalid field, a decision not offered) come back as messages.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from api.console.web import Page, Refused, page_of
from api.errors import ApiError
from api.inbound import CheckedRoute
from api.routes import tasks
from hub.models import DeadLetter
from hub.permissions import Scope

router = APIRouter(route_class=CheckedRoute)
PageDep = Annotated[Page, Depends(page_of)]
#: Sort keys of the inbox: (column, what it means).
SORTS = {"due": "due date", "priority": "priority", "created": "created"}


def _sorted(items: list[tasks.TaskPublic], sort: str, descending: bool) -> list[Any]:
    if sort == "priority":
        return sorted(items, key=lambda t: (t.priority, t.createdAt), reverse=descending)
    if sort == "created":
        return sorted(items, key=lambda t: t.createdAt, reverse=descending)
    # By due date (ascending: soonest first); tasks without one last either way.
    dated = [t for t in items if t.dueAt is not None]
    dated.sort(key=lambda t: t.dueAt or t.createdAt, reverse=descending)
    return dated + [t for t in items if t.dueAt is None]


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def inbox(page: PageDep, sort: str = "due", order: str = "asc") -> Response:
    page.require(Scope.TASKS_READ)
    if sort not in SORTS:
        sort = "due"
    async with page.db() as session:
        found = await tasks.list_tasks(
            reader=page.who, response=Response(), session=session, state=None, open=True,
            candidateGroup=None, assignee=None, process=None, kind=None, reference=None,
            overdue=None, offset=0, limit=500,
        )  # fmt: skip
    return page.render(
        "inbox.html", tasks=_sorted(found, sort, order == "desc"), sort=sort, order=order,
        sorts=SORTS,
    )  # fmt: skip


async def _task_page(
    page: Page,
    task_id: str,
    status: int = 200,
    message: tuple[str, str] | None = None,
    filled: dict[str, str] | None = None,
) -> Response:
    page.require(Scope.TASKS_READ)
    async with page.db() as session:
        try:
            task = await tasks.get_task(task_id, page.who, session)
        except ApiError as exc:
            raise Refused(exc.status, exc.message) from exc
        letter = await session.get(DeadLetter, task.deadLetterId) if task.deadLetterId else None
    extra = [{"kind": message[0], "text": message[1]}] if message else []
    return page.render(
        "task.html", status, task=task, letter=letter, filled=filled or {}, extra_messages=extra
    )


@router.get("/tasks/{task_id}", response_class=HTMLResponse, include_in_schema=False)
async def task_page(task_id: str, page: PageDep) -> Response:
    return await _task_page(page, task_id)


def _fields(task: tasks.TaskPublic, form: dict[str, str]) -> dict[str, Any]:
    """The form's fields as the task's types; the ones left empty are not sent."""
    values: dict[str, Any] = {}
    for definition in task.form:
        raw = form.get(f"field.{definition.name}")
        if raw is None or raw.strip() == "":
            continue  # an unticked box or an empty field: not sent
        if definition.type == "boolean":
            if raw not in ("true", "false"):
                raise ValueError(f"field {definition.name!r} must be true or false")
            values[definition.name] = raw == "true"
            continue
        try:
            if definition.type == "integer":
                values[definition.name] = int(raw)
            elif definition.type == "number":
                values[definition.name] = float(raw)
            else:
                values[definition.name] = raw
        except ValueError as exc:
            raise ValueError(f"field {definition.name!r} must be a {definition.type}") from exc
    return values


@router.post("/tasks/{task_id}/{action}", include_in_schema=False)
async def act_on_task(task_id: str, action: str, page: PageDep) -> Response:
    form = await page.form()
    page.require(Scope.TASKS_DECIDE)
    try:
        temporal = await page.temporal()
        async with page.db() as session:
            if action == "claim":
                await tasks.claim_task(task_id, page.who, session, temporal)
                page.flash("You claimed the task.")
            elif action == "unclaim":
                await tasks.unclaim_task(task_id, page.who, session, temporal)
                page.flash("You gave the task back.")
            elif action == "decide":
                task = await tasks.get_task(task_id, page.who, session)
                body = tasks.CompleteBody(
                    decision=form.get("decision", ""),
                    comment=form.get("comment") or None,
                    fields=_fields(task, form) or None,
                )
                await tasks.complete_task(task_id, body, page.who, session, temporal)
                page.flash(f"Decided: {body.decision}.")
            else:
                raise Refused(404, f"no action {action!r} on a task")
    except ApiError as exc:
        # A refusal (four-eyes, validation, closed) is a message on the task's page.
        filled = {k: v for k, v in form.items() if k.startswith("field.") or k == "comment"}
        return await _task_page(page, task_id, exc.status, ("error", exc.message), filled)
    except (ValidationError, ValueError) as exc:
        text = (
            "; ".join(e["msg"] for e in exc.errors())
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        return await _task_page(page, task_id, 400, ("error", text), form)
    return page.redirect(f"/console/tasks/{task_id}")
