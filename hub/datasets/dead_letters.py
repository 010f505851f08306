"""``dead_letters``: one row per dead letter, in its latest state."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from sqlalchemy import Select, case, func, select
from sqlmodel import col

from hub.datasets.base import TIMESTAMP, QueryDataset, Window, model_columns
from hub.exports import ExportDataset
from hub.models import DeadLetter


def _latest(*moments: Any) -> Any:
    """The latest of non-null timestamps, in SQL that SQLite and PostgreSQL both run."""
    latest = moments[0]
    for moment in moments[1:]:
        latest = case((latest >= moment, latest), else_=moment)
    return latest


def _dead_letter_changed_at() -> Any:
    # A dead letter changes when parked (again), decided and closed; the table keeps no single
    # "updated" column, so the change time is the latest of the three.
    letter = DeadLetter
    parked = col(letter.parked_at)
    return _latest(
        parked, func.coalesce(letter.decided_at, parked), func.coalesce(letter.closed_at, parked)
    ).label("changed_at")


def _dead_letters_query(window: Window) -> Select[Any]:
    letter = DeadLetter
    changed_at = _dead_letter_changed_at()
    return (
        select(
            *model_columns(
                letter.id,
                letter.workflow_id,
                letter.run_id,
                letter.process,
                letter.order_id,
                letter.step,
                letter.system,
                letter.activity,
                letter.compensation,
                letter.skippable,
                letter.error_type,
                letter.last_error,
                letter.attempts,
                letter.first_failure_at,
                letter.last_failure_at,
                letter.parked_at,
                letter.deadline,
                letter.status,
                letter.decision,
                letter.decided_by,
                letter.decided_at,
                letter.decision_reason,
                letter.closed_at,
            ),
            changed_at,
        )
        .where(*window.where(changed_at))
        .order_by(changed_at, col(letter.id))
    )


DEAD_LETTERS = QueryDataset(
    ExportDataset.DEAD_LETTERS,
    # The step's input stays out: its shape differs per step, and the hub keeps it where an
    # operator repairs the step; analysts get the step, system, error and timings.
    pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("workflow_id", pa.string(), nullable=False),
            pa.field("run_id", pa.string(), nullable=False),
            pa.field("process", pa.string(), nullable=False),
            pa.field("order_id", pa.string()),
            pa.field("step", pa.string(), nullable=False),
            pa.field("system", pa.string(), nullable=False),
            pa.field("activity", pa.string(), nullable=False),
            pa.field("compensation", pa.bool_(), nullable=False),
            pa.field("skippable", pa.bool_(), nullable=False),
            pa.field("error_type", pa.string(), nullable=False),
            pa.field("last_error", pa.string(), nullable=False),
            pa.field("attempts", pa.int64(), nullable=False),
            pa.field("first_failure_at", TIMESTAMP, nullable=False),
            pa.field("last_failure_at", TIMESTAMP, nullable=False),
            pa.field("parked_at", TIMESTAMP, nullable=False),
            pa.field("deadline", TIMESTAMP, nullable=False),
            pa.field("status", pa.string(), nullable=False),
            pa.field("decision", pa.string()),
            pa.field("decided_by", pa.string()),
            pa.field("decided_at", TIMESTAMP),
            pa.field("decision_reason", pa.string()),
            pa.field("closed_at", TIMESTAMP),
            pa.field("changed_at", TIMESTAMP, nullable=False),
        ]
    ),
    watermark="dead_letter: latest of parked_at, decided_at, closed_at",
    partition="changed_at",
    partition_column="changed_at",
    query=_dead_letters_query,
)
