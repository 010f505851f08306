"""``regulatory_submissions``: one row per version of a report submitted to the regulator."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from sqlalchemy import Select, select
from sqlalchemy.orm import aliased
from sqlmodel import col

from hub.datasets.base import TIMESTAMP, QueryDataset, Window, model_columns
from hub.exports import ExportDataset
from hub.models import RegulatoryReport


def _submissions_query(window: Window) -> Select[Any]:
    report = RegulatoryReport
    # The version that corrects this one names this one's receipt in ``supersedes``; accepting
    # it marks this row superseded (and so changes it), so ``updated_at`` covers the link too.
    correction = aliased(RegulatoryReport)
    changed_at = col(report.updated_at)
    return (
        select(
            *model_columns(
                report.id,
                report.report_type,
                report.operator_id,
                report.period,
                report.version,
                report.status,
                report.receipt_id,
                report.received_at,
                report.verdict,
                report.document_sha256,
                report.supersedes,
            ),
            col(correction.receipt_id).label("superseded_by"),
            col(report.document_uri),
            changed_at.label("changed_at"),
        )
        .outerjoin(correction, col(correction.supersedes) == col(report.receipt_id))
        # Only what reached the regulator: a version the approver rejected has no receipt.
        .where(col(report.receipt_id).is_not(None), *window.where(changed_at))
        .order_by(changed_at, col(report.id))
    )


REGULATORY_SUBMISSIONS = QueryDataset(
    ExportDataset.REGULATORY_SUBMISSIONS,
    # The indicators stay out: they are in the archived document, whose digest is here.
    pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("report_type", pa.string(), nullable=False),
            pa.field("operator_id", pa.string(), nullable=False),
            pa.field("period", pa.string(), nullable=False),
            pa.field("version", pa.int64(), nullable=False),
            pa.field("status", pa.string(), nullable=False),
            pa.field("receipt_id", pa.string(), nullable=False),
            pa.field("received_at", TIMESTAMP),
            pa.field("verdict", pa.string()),
            pa.field("document_sha256", pa.string()),
            pa.field("supersedes", pa.string()),
            pa.field("superseded_by", pa.string()),
            pa.field("document_uri", pa.string()),
            pa.field("changed_at", TIMESTAMP, nullable=False),
        ]
    ),
    watermark="regulatory_report.updated_at (submitted versions)",
    partition="changed_at",
    partition_column="changed_at",
    query=_submissions_query,
)
