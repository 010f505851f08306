"""``GET /metrics``: the API's Prometheus metrics, for the scope ``metrics:read``.

Beside the HTTP metrics (:mod:`api.metrics`), what the NOC watches of the hub's state, read
from the hub database at each scrape (a handful of indexed ``GROUP BY`` queries):

- ``hub_orders{state}``: service orders by state;
- ``hub_parked_steps{process,system}`` and ``hub_parked_step_oldest_seconds{process,system}``:
  dead letters waiting for a person, and how long the oldest has waited;
- ``hub_open_tasks{process,kind}`` and ``hub_overdue_tasks{process,kind}``: the inbox, and the
  tasks past their due time that no one has decided;
- ``hub_reconciliation_leakage_ratio`` and ``..._leakage_amount``: of the latest completed run;
- ``hub_export_last_success_timestamp_seconds{export}``: export lag is ``time() - it``.

Prometheus 2 sends no custom headers: give its scrape job an API client's key as
``authorization: {type: Bearer, credentials_file: ...}`` (``Authorization: Bearer <key>``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import Principal, SessionDep, require_scope
from api.inbound import CheckedRoute
from hub.exports import ExportRunStatus
from hub.models import (
    DeadLetter,
    DeadLetterStatus,
    ExportRun,
    HumanTask,
    ReconciliationRun,
    ReconciliationStatus,
    ServiceOrder,
    TaskState,
)
from hub.permissions import Scope

router = APIRouter(tags=["Operations"], route_class=CheckedRoute)

OPEN_TASK_STATES = [TaskState.CREATED.value, TaskState.ASSIGNED.value]


class StateGauges:
    """The gauges of the hub's state, in a registry of their own, set anew at each scrape."""

    def __init__(self) -> None:
        #: One scrape at a time: a scrape clears the gauges before it sets them.
        self.lock = asyncio.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.orders = Gauge("hub_orders", "Service orders by state", ["state"], registry=r)
        self.parked = Gauge(
            "hub_parked_steps",
            "Steps parked as dead letters, waiting for a person",
            ["process", "system"],
            registry=r,
        )
        self.parked_oldest = Gauge(
            "hub_parked_step_oldest_seconds",
            "How long the oldest parked step of a process and system has waited",
            ["process", "system"],
            registry=r,
        )
        self.open_tasks = Gauge(
            "hub_open_tasks", "Human tasks not decided yet", ["process", "kind"], registry=r
        )
        self.overdue_tasks = Gauge(
            "hub_overdue_tasks",
            "Open human tasks past their due time",
            ["process", "kind"],
            registry=r,
        )
        self.leakage_ratio = Gauge(
            "hub_reconciliation_leakage_ratio",
            "Leakage of the latest completed reconciliation, as a share of billed revenue",
            registry=r,
        )
        self.leakage_amount = Gauge(
            "hub_reconciliation_leakage_amount",
            "Leakage of the latest completed reconciliation, in its currency",
            ["currency"],
            registry=r,
        )
        self.export_success = Gauge(
            "hub_export_last_success_timestamp_seconds",
            "When each export last completed a run (Unix time)",
            ["export"],
            registry=r,
        )

    def clear(self) -> None:
        for gauge in (
            self.orders,
            self.parked,
            self.parked_oldest,
            self.open_tasks,
            self.overdue_tasks,
            self.leakage_amount,
            self.export_success,
        ):
            gauge.clear()

    async def read(self, session: AsyncSession) -> None:
        now = datetime.now(UTC)
        self.clear()
        orders = await session.exec(
            select(ServiceOrder.state, func.count()).group_by(ServiceOrder.state)
        )
        for state, count in orders:
            self.orders.labels(state).set(count)
        parked = await session.exec(
            select(
                DeadLetter.process, DeadLetter.system, func.count(), func.min(DeadLetter.parked_at)
            )
            .where(DeadLetter.status == DeadLetterStatus.PARKED)
            .group_by(DeadLetter.process, DeadLetter.system)
        )
        for process, system, count, oldest in parked:
            self.parked.labels(process, system).set(count)
            self.parked_oldest.labels(process, system).set(_age(now, oldest))
        tasks = await session.exec(
            select(HumanTask.process, HumanTask.kind, func.count())
            .where(col(HumanTask.state).in_(OPEN_TASK_STATES))
            .group_by(HumanTask.process, HumanTask.kind)
        )
        for process, kind, count in tasks:
            self.open_tasks.labels(process, kind).set(count)
        overdue = await session.exec(
            select(HumanTask.process, HumanTask.kind, func.count())
            .where(col(HumanTask.state).in_(OPEN_TASK_STATES), col(HumanTask.due_at) < now)
            .group_by(HumanTask.process, HumanTask.kind)
        )
        for process, kind, count in overdue:
            self.overdue_tasks.labels(process, kind).set(count)
        latest = (
            await session.exec(
                select(ReconciliationRun)
                .where(ReconciliationRun.status == ReconciliationStatus.COMPLETED)
                .order_by(col(ReconciliationRun.finished_at).desc())
                .limit(1)
            )
        ).first()
        if latest is not None:
            self.leakage_ratio.set(latest.leakage_pct / 100)
            self.leakage_amount.labels(latest.currency).set(float(latest.leakage_amount))
        exports = await session.exec(
            select(ExportRun.export_id, func.max(ExportRun.finished_at))
            .where(ExportRun.status == ExportRunStatus.COMPLETED)
            .group_by(ExportRun.export_id)
        )
        for export_id, finished in exports:
            if finished is not None:
                self.export_success.labels(export_id).set(_utc(finished).timestamp())


def _utc(moment: datetime) -> datetime:
    # SQLite gives naive datetimes back; the hub writes UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _age(now: datetime, moment: datetime | None) -> float:
    return max(0.0, (now - _utc(moment)).total_seconds()) if moment else 0.0


@router.get(
    "/metrics",
    summary="Prometheus metrics of the API and of the hub's state",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(
    _: Annotated[Principal, Depends(require_scope(Scope.METRICS_READ))],
    request: Request,
    session: SessionDep,
) -> Response:
    state: StateGauges = request.app.state.state_gauges
    async with state.lock:
        await state.read(session)
        body = generate_latest(request.app.state.metrics.registry) + generate_latest(state.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
