"""Orders, regulatory reports and partners: search, detail pages, downloads, offboarding.

Read through the API's own route functions and models, so a page shows what the API answers
the signed-in person; each page links to the process in the Temporal Web UI.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import String, cast, or_
from sqlmodel import col, select

from api.console.web import Page, Refused, page_of
from api.errors import ApiError
from api.inbound import CheckedRoute
from api.partner_applications import OffboardBody
from api.routes import partners, regulatory_reports, service_orders
from api.routes.tasks import visible_to
from hub.models import DeadLetter, HumanTask, OrderStateChange, ServiceOrder
from hub.permissions import Scope

router = APIRouter(route_class=CheckedRoute)
PageDep = Annotated[Page, Depends(page_of)]
#: An IMSI (15 digits) or an MSISDN (E.164, ``+`` optional): searched in the orders' items.
SUBSCRIBER = re.compile(r"\+?[0-9]{6,15}")


def _refused(exc: ApiError) -> Refused:
    return Refused(exc.status, exc.message)


# --- orders ----------------------------------------------------------------------------------


@router.get("/orders", response_class=HTMLResponse, include_in_schema=False)
async def orders_page(page: PageDep, q: str = "") -> Response:
    page.require(Scope.ORDERS_READ)
    q = q.strip()[:200]
    async with page.db() as session:
        conditions: list[Any] = []
        if page.who.partner_id is not None:
            conditions.append(ServiceOrder.partner_id == page.who.partner_id)
        if q:
            matches: list[Any] = [
                col(ServiceOrder.id) == q,
                col(ServiceOrder.external_id) == q,
                col(ServiceOrder.customer_id) == q,
            ]
            if SUBSCRIBER.fullmatch(q):
                # The order's document holds its items' characteristics, IMSI and MSISDN (an
                # MSISDN with its + or without).
                text = cast(col(ServiceOrder.document), String)
                digits = q.lstrip("+")
                matches += [text.contains(f'"{digits}"'), text.contains(f'"+{digits}"')]
            conditions.append(or_(*matches))
        rows = await session.exec(
            select(ServiceOrder)
            .where(*conditions)
            .order_by(col(ServiceOrder.order_date).desc())
            .limit(200)
        )
        orders = list(rows)
    return page.render("orders.html", orders=orders, q=q)


@router.get("/orders/{order_id}", response_class=HTMLResponse, include_in_schema=False)
async def order_page(order_id: str, page: PageDep) -> Response:
    page.require(Scope.ORDERS_READ)
    async with page.db() as session:
        try:
            order = await service_orders.get_service_order(
                page.who, order_id, page.request, session, page.settings
            )
        except ApiError as exc:
            raise _refused(exc) from exc
        history = list(
            await session.exec(
                select(OrderStateChange)
                .where(OrderStateChange.order_id == order_id)
                .order_by(col(OrderStateChange.at), col(OrderStateChange.id))
            )
        )
        letters = list(
            await session.exec(
                select(DeadLetter)
                .where(DeadLetter.order_id == order_id)
                .order_by(col(DeadLetter.parked_at))
            )
        )
        row = await session.get(ServiceOrder, order_id)
    return page.render(
        "order.html",
        order=order,
        history=history,
        letters=letters,
        workflow_id=row.workflow_id if row else None,
    )


# --- reports ---------------------------------------------------------------------------------


@router.get("/reports", response_class=HTMLResponse, include_in_schema=False)
async def reports_page(page: PageDep) -> Response:
    page.require(Scope.REPORTS_READ)
    async with page.db() as session:
        reports = await regulatory_reports.list_reports(
            page.request, Response(), session, page.settings, reportType=None, period=None,
            status=None, offset=0, limit=200,
        )  # fmt: skip
    return page.render("reports.html", reports=reports)


@router.get("/reports/{report_id}", response_class=HTMLResponse, include_in_schema=False)
async def report_page(report_id: str, page: PageDep) -> Response:
    page.require(Scope.REPORTS_READ)
    async with page.db() as session:
        try:
            report = await regulatory_reports.get_report(
                report_id, page.request, session, page.settings
            )
        except ApiError as exc:
            raise _refused(exc) from exc
        tasks = await _tasks_of(page, report.workflowId)
    return page.render("report.html", report=report, tasks=tasks)


@router.get("/reports/{report_id}/document", include_in_schema=False)
async def report_document(report_id: str, page: PageDep) -> Response:
    page.require(Scope.REPORTS_READ)
    async with page.db() as session:
        try:
            return await regulatory_reports.get_document(report_id, session, page.settings)
        except ApiError as exc:
            raise _refused(exc) from exc


@router.get("/reports/{report_id}/receipt", include_in_schema=False)
async def report_receipt(report_id: str, page: PageDep) -> Response:
    page.require(Scope.REPORTS_READ)
    async with page.db() as session:
        try:
            receipt = await regulatory_reports.get_receipt(report_id, session)
        except ApiError as exc:
            raise _refused(exc) from exc
    return JSONResponse(
        receipt,
        headers={"Content-Disposition": f'attachment; filename="{report_id}-receipt.json"'},
    )


# --- partners --------------------------------------------------------------------------------


@router.get("/partners", response_class=HTMLResponse, include_in_schema=False)
async def partners_page(page: PageDep) -> Response:
    page.require(Scope.PARTNERS_READ)
    async with page.db() as session:
        applications = await partners.list_applications(
            page.request, Response(), session, page.settings, status=None,
            registrationNumber=None, vatId=None, name=None, offset=0, limit=200,
        )  # fmt: skip
    return page.render("partners.html", applications=applications)


async def _partner_page(page: Page, application_id: str, status: int = 200) -> Response:
    async with page.db() as session:
        try:
            application = await partners.get_application(
                application_id, page.request, session, page.settings
            )
        except ApiError as exc:
            raise _refused(exc) from exc
    tasks = await _tasks_of(page, application.workflowId)
    return page.render("partner.html", status, application=application, tasks=tasks)


@router.get("/partners/{application_id}", response_class=HTMLResponse, include_in_schema=False)
async def partner_page(application_id: str, page: PageDep) -> Response:
    page.require(Scope.PARTNERS_READ)
    return await _partner_page(page, application_id)


@router.post("/partners/{application_id}/offboard", include_in_schema=False)
async def offboard(application_id: str, page: PageDep) -> Response:
    form = await page.form()
    page.require(Scope.PARTNERS_WRITE)
    try:
        async with page.db() as session:
            accepted = await partners.offboard(
                application_id, page.who, page.request, session, await page.temporal(),
                page.settings, OffboardBody(reason=form.get("reason") or None),
            )  # fmt: skip
    except ApiError as exc:
        page.flash(exc.message, "error")
        return await _partner_page(page, application_id, exc.status)
    page.flash(f"Offboarding asked: task {accepted.taskId} decides it.")
    return page.redirect(f"/console/partners/{application_id}")


async def _tasks_of(page: Page, workflow_id: str) -> list[HumanTask]:
    """The process's tasks the person may see (the inbox's rule)."""
    if not page.who.allows(Scope.TASKS_READ):
        return []
    async with page.db() as session:
        rows = await session.exec(
            select(HumanTask)
            .where(HumanTask.workflow_id == workflow_id, *visible_to(page.who))
            .order_by(col(HumanTask.created_at))
        )
        return list(rows)
