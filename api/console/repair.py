"""Dead letters: find them by process, system, step and status; retry (with corrected
fields), skip or abort one; retry every parked one a filter matches, after an outage.

Through :mod:`api.routes.dead_letters`, with the signed-in person as the decider.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import HTMLResponse
from sqlmodel import col, select

from api.console.web import Page, Refused, page_of
from api.errors import ApiError
from api.inbound import CheckedRoute
from api.routes import dead_letters
from hub.models import DeadLetter, DeadLetterAction, DeadLetterStatus, HumanTask
from hub.permissions import Scope
from hub.redact import SECRET_FIELDS

router = APIRouter(prefix="/dead-letters", route_class=CheckedRoute)
PageDep = Annotated[Page, Depends(page_of)]
FILTERS = ("process", "system", "step", "status")


def _filters(values: dict[str, Any]) -> dict[str, str | None]:
    return {name: (values.get(name) or None) for name in FILTERS}


async def _choices(page: Page) -> dict[str, list[str]]:
    """The values each filter can take, from the dead letters there are."""
    async with page.db() as session:
        found: dict[str, list[str]] = {}
        for name in ("process", "system", "step"):
            column = getattr(DeadLetter, name)
            rows = await session.exec(select(column).distinct().order_by(column))
            found[name] = [row for row in rows if row]
    found["status"] = [s.value for s in DeadLetterStatus]
    return found


async def _list_page(
    page: Page,
    filters: dict[str, str | None],
    status: int = 200,
    results: dict[str, Any] | None = None,
) -> Response:
    try:
        async with page.db() as session:
            letters = await dead_letters.list_dead_letters(
                response=Response(), session=session, orderId=None, since=None, until=None,
                offset=0, limit=500, **filters,
            )  # fmt: skip
    except ApiError as exc:
        letters, status = [], exc.status
        page.flash(exc.message, "error")
    return page.render(
        "dead_letters.html", status, letters=letters, filters=filters,
        choices=await _choices(page), results=results,
    )  # fmt: skip


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def list_page(
    page: PageDep,
    process: str | None = None,
    system: str | None = None,
    step: str | None = None,
    status: str | None = None,
) -> Response:
    page.require(Scope.DEADLETTERS_READ)
    return await _list_page(page, _filters(locals()))


@router.post("/retry", response_class=HTMLResponse, include_in_schema=False)
async def bulk_retry(page: PageDep) -> Response:
    form = await page.form()
    page.require(Scope.DEADLETTERS_DECIDE)
    filters = _filters(form)
    body = dead_letters.BulkRetryBody(
        process=filters["process"], system=filters["system"], step=filters["step"],
        reason=form.get("reason") or None,
    )  # fmt: skip
    try:
        async with page.db() as session:
            results = await dead_letters.bulk_retry(body, page.who, session, await page.temporal())
    except ApiError as exc:
        page.flash(exc.message, "error")
        return await _list_page(page, filters, exc.status)
    page.flash(
        f"Retried {len(results['accepted'])} of {results['matched']} parked dead letters"
        + (f"; {len(results['refused'])} refused" if results["refused"] else "")
        + ".",
        "success" if not results["refused"] else "error",
    )
    return await _list_page(page, {**filters, "status": None}, results=results)


def correctable(letter: DeadLetter) -> list[tuple[str, Any]]:
    """The input fields a retry may correct: plain values, never a secret."""
    return [
        (name, value)
        for name, value in letter.input.items()
        if name.lower() not in SECRET_FIELDS
        and (value is None or isinstance(value, str | int | float | bool))
    ]


async def _letter_page(
    page: Page,
    letter_id: str,
    status: int = 200,
    message: str | None = None,
    filled: dict[str, str] | None = None,
) -> Response:
    async with page.db() as session:
        session.expire_all()
        try:
            letter = await dead_letters.letter_or_404(session, letter_id)
        except ApiError as exc:
            raise Refused(exc.status, exc.message) from exc
        task = (
            await session.exec(
                select(HumanTask).where(HumanTask.dead_letter_id == letter_id)
                .order_by(col(HumanTask.created_at).desc())
            )
        ).first()  # fmt: skip
    extra = [{"kind": "error", "text": message}] if message else []
    return page.render(
        "dead_letter.html", status, letter=letter, task=task, fields=correctable(letter),
        filled=filled or {}, extra_messages=extra,
    )  # fmt: skip


@router.get("/{letter_id}", response_class=HTMLResponse, include_in_schema=False)
async def letter_page(letter_id: str, page: PageDep) -> Response:
    page.require(Scope.DEADLETTERS_READ)
    return await _letter_page(page, letter_id)


def _corrections(letter: DeadLetter, form: dict[str, str]) -> dict[str, Any]:
    """The fields filled in, as the type of the value they correct."""
    corrected: dict[str, Any] = {}
    for name, current in correctable(letter):
        raw = form.get(f"field.{name}", "").strip()
        if not raw:
            continue
        try:
            if isinstance(current, bool):
                corrected[name] = raw.lower() in ("true", "1", "yes", "on")
            elif isinstance(current, int):
                corrected[name] = int(raw)
            elif isinstance(current, float):
                corrected[name] = float(raw)
            else:
                corrected[name] = raw
        except ValueError as exc:
            kind = type(current).__name__
            raise ValueError(f"field {name!r} must be a {kind} like {current!r}") from exc
    return corrected


@router.post("/{letter_id}/{action}", include_in_schema=False)
async def decide(letter_id: str, action: str, page: PageDep) -> Response:
    form = await page.form()
    page.require(Scope.DEADLETTERS_DECIDE)
    try:
        chosen = DeadLetterAction(action)
    except ValueError as exc:
        raise Refused(404, f"no action {action!r} on a dead letter") from exc
    filled = {k: v for k, v in form.items() if k.startswith("field.") or k == "reason"}
    try:
        async with page.db() as session:
            letter = await dead_letters.letter_or_404(session, letter_id)
            corrected = _corrections(letter, form) if chosen == DeadLetterAction.RETRY else None
            await dead_letters.decide_letter(
                await page.temporal(), letter, chosen, page.who.subject,
                form.get("reason") or None, corrected or None,
            )  # fmt: skip
    except ApiError as exc:
        return await _letter_page(page, letter_id, exc.status, exc.message, filled)
    except ValueError as exc:
        return await _letter_page(page, letter_id, 400, str(exc), filled)
    fixed = f" with {', '.join(sorted(corrected))} corrected" if corrected else ""
    page.flash(f"{chosen.value.capitalize()} accepted{fixed}.")
    return page.redirect(f"/console/dead-letters/{letter_id}")
