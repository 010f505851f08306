"""Dead letters: steps parked for a person, and the decisions that release them.

A decision goes to the parked workflow as a Temporal update, so the caller learns at once
whether it was accepted; the workflow then records it (who, when, what) in the dead letter.
Who decides is the authenticated caller (``api-key:<name>``), never a field of the body.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities.events import DELIVERY_PROCESS
from api.deps import Principal, SessionDep, TemporalDep, require_scope
from api.errors import ApiError, temporal_unreachable
from api.inbound import CheckedRoute
from api.listing import Offset, one_of, page
from api.routes.event_hub import replay_delivery
from hub.models import DeadLetter, DeadLetterAction, DeadLetterStatus
from hub.permissions import Scope
from workflows.runtime import DeadLetterDecision, ProcessWorkflow

router = APIRouter(prefix="/deadLetters", tags=["Dead letters"], route_class=CheckedRoute)
READ = [Depends(require_scope(Scope.DEADLETTERS_READ))]
#: The caller who decides, once it is known to hold the scope for it.
Decider = Annotated[Principal, Depends(require_scope(Scope.DEADLETTERS_DECIDE))]

_DECIDED_BY_IGNORED = Field(
    default=None,
    max_length=200,
    deprecated=True,
    description="Ignored: the decider recorded is the authenticated caller",
)


class DecisionBody(BaseModel):
    decidedBy: str | None = _DECIDED_BY_IGNORED
    reason: str | None = Field(default=None, max_length=1000)
    input: dict[str, Any] | None = Field(
        default=None, description="retry only: fields of the step's input to correct"
    )


class BulkRetryBody(BaseModel):
    process: str | None = None
    system: str | None = None
    step: str | None = None
    decidedBy: str | None = _DECIDED_BY_IGNORED
    reason: str | None = Field(default=None, max_length=1000)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def dead_letter_json(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "status": letter.status,
        "process": letter.process,
        "workflowId": letter.workflow_id,
        "runId": letter.run_id,
        "orderId": letter.order_id,
        "step": letter.step,
        "system": letter.system,
        "activity": letter.activity,
        "compensation": letter.compensation,
        "skippable": letter.skippable,
        "input": letter.input,
        "errorType": letter.error_type,
        "lastError": letter.last_error,
        "attempts": letter.attempts,
        "firstFailureAt": _iso(letter.first_failure_at),
        "lastFailureAt": _iso(letter.last_failure_at),
        "parkedAt": _iso(letter.parked_at),
        "deadline": _iso(letter.deadline),
        "decision": letter.decision,
        "decidedBy": letter.decided_by,
        "decidedAt": _iso(letter.decided_at),
        "decisionReason": letter.decision_reason,
        "closedAt": _iso(letter.closed_at),
    }


@router.get("", summary="List dead letters", dependencies=READ)
async def list_dead_letters(
    response: Response,
    session: SessionDep,
    process: str | None = None,
    system: str | None = None,
    step: str | None = None,
    status: str | None = Query(default=None, description="parked, retrying, resolved, ..."),
    orderId: str | None = None,
    since: datetime | None = Query(default=None, description="parked at or after"),
    until: datetime | None = Query(default=None, description="parked before"),
    offset: Offset = 0,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    one_of("status", status, DeadLetterStatus)
    conditions: list[Any] = [
        column == value
        for column, value in (
            (DeadLetter.process, process),
            (DeadLetter.system, system),
            (DeadLetter.step, step),
            (DeadLetter.status, status),
            (DeadLetter.order_id, orderId),
        )
        if value is not None
    ]
    if since is not None:
        conditions.append(col(DeadLetter.parked_at) >= since)
    if until is not None:
        conditions.append(col(DeadLetter.parked_at) < until)
    letters = await page(
        session,
        DeadLetter,
        conditions,
        [col(DeadLetter.parked_at).desc(), col(DeadLetter.id)],
        offset=offset,
        limit=limit,
        response=response,
    )
    return [dead_letter_json(letter) for letter in letters]


async def letter_or_404(session: AsyncSession, letter_id: str) -> DeadLetter:
    letter = await session.get(DeadLetter, letter_id)
    if letter is None:
        raise ApiError(404, f"no dead letter with id {letter_id!r}")
    return letter


@router.get("/{letter_id}", summary="Read one dead letter", dependencies=READ)
async def get_dead_letter(letter_id: str, session: SessionDep) -> dict[str, Any]:
    return dead_letter_json(await letter_or_404(session, letter_id))


async def decide_letter(
    temporal: Client,
    letter: DeadLetter,
    action: DeadLetterAction,
    decided_by: str,
    reason: str | None,
    corrected: dict[str, Any] | None,
) -> dict[str, Any]:
    """Send the decision to the parked workflow; 409 with its reason if refused."""
    if letter.status != DeadLetterStatus.PARKED:
        raise ApiError(409, f"dead letter {letter.id} is {letter.status}, not parked")
    if letter.process == DELIVERY_PROCESS:
        # An event delivery that exhausted its retries: retry replays it (same eventId).
        if action != DeadLetterAction.RETRY:
            raise ApiError(409, f"an event delivery is replayed (retry), not {action.value}")
        await replay_delivery(
            temporal,
            str(letter.input.get("subscriptionId")),
            int(letter.input.get("deliveryId") or 0),
            decided_by=decided_by,
            reason=reason,
        )
        return {
            "accepted": True,
            "action": action.value,
            "decidedBy": decided_by,
            "deadLetter": dead_letter_json(letter),
        }
    handle = temporal.get_workflow_handle(letter.workflow_id)
    try:
        await handle.execute_update(
            ProcessWorkflow.decide,
            DeadLetterDecision(
                dead_letter_id=letter.id,
                action=action.value,
                decided_by=decided_by,
                reason=reason,
                input=corrected,
            ),
            rpc_timeout=timedelta(seconds=10),
        )
    except WorkflowUpdateFailedError as exc:
        message = getattr(exc.cause, "message", None) or str(exc)
        raise ApiError(409, f"{action.value} refused: {message}") from exc
    except (RPCError, RPCTimeoutOrCancelledError) as exc:
        if (unreachable := temporal_unreachable(exc)) is not None:
            raise unreachable from exc
        status = exc.status.name if isinstance(exc, RPCError) else type(exc).__name__
        raise ApiError(
            409, f"{action.value} refused: the workflow is not running ({status})"
        ) from exc
    return {
        "accepted": True,
        "action": action.value,
        "decidedBy": decided_by,
        "deadLetter": dead_letter_json(letter),
    }


def _decision_route(action: DeadLetterAction):  # type: ignore[no-untyped-def]
    async def decide(
        letter_id: str,
        body: DecisionBody,
        decider: Decider,  # before the others: who may decide is known before Temporal is asked
        session: SessionDep,
        temporal: TemporalDep,
    ) -> dict[str, Any]:
        if body.input and action != DeadLetterAction.RETRY:
            raise ApiError(400, "input: corrected input goes with retry only")
        letter = await letter_or_404(session, letter_id)
        return await decide_letter(
            temporal, letter, action, decider.subject, body.reason, body.input
        )

    decide.__name__ = f"{action.value}_dead_letter"
    return decide


for _action, _summary in (
    (DeadLetterAction.RETRY, "Run the parked step again (optionally with corrected input)"),
    (DeadLetterAction.SKIP, "Mark the parked step done by hand (where the step allows it)"),
    (DeadLetterAction.ABORT, "Give up: compensate and fail the process"),
):
    router.add_api_route(
        f"/{{letter_id}}/{_action.value}",
        _decision_route(_action),
        methods=["POST"],
        summary=_summary,
    )


@router.post("/retry", summary="Retry every parked dead letter matching a filter")
async def bulk_retry(
    body: BulkRetryBody, decider: Decider, session: SessionDep, temporal: TemporalDep
) -> dict[str, Any]:
    conditions = [DeadLetter.status == DeadLetterStatus.PARKED] + [
        column == value
        for column, value in (
            (DeadLetter.process, body.process),
            (DeadLetter.system, body.system),
            (DeadLetter.step, body.step),
        )
        if value is not None
    ]
    letters = list(await session.exec(select(DeadLetter).where(*conditions)))
    accepted, refused = [], []
    for letter in letters:
        try:
            await decide_letter(
                temporal, letter, DeadLetterAction.RETRY, decider.subject, body.reason, None
            )
            accepted.append(letter.id)
        except ApiError as exc:
            if exc.status == 503:  # Temporal is away: the rest would fail the same way
                done = f"{len(accepted)} of {len(letters)} were accepted before"
                raise ApiError(503, f"{exc.message} ({done})", headers=exc.headers) from exc
            refused.append({"id": letter.id, "message": exc.message})
    return {"matched": len(letters), "accepted": accepted, "refused": refused}
