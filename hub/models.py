"""The hub database's tables: what must outlive Temporal's workflow retention.

Secrets are never stored here in clear: order documents are kept with Ki, OP and OPc redacted,
and a partner's client secret and tokens only as sealed tokens (:mod:`hub.sealing`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class OrderState(StrEnum):
    """TMF641 ServiceOrder states the hub uses. ``held``: a step is parked, waiting for an
    operator (a dead letter); the order goes back to ``inProgress`` once one decided. TMF641's
    ``pending`` (waiting for the customer's information) has no use here: no step of service
    activation waits for the customer."""

    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "inProgress"
    HELD = "held"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (OrderState.COMPLETED, OrderState.FAILED, OrderState.CANCELLED)


class ItemState(StrEnum):
    """TMF641 ServiceOrderItem states the hub uses (``held``: the item's step is parked)."""

    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "inProgress"
    HELD = "held"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class CancelState(StrEnum):
    """TMF641 CancelServiceOrder states (the specification's ``TaskStateType``)."""

    ACCEPTED = "accepted"
    IN_PROGRESS = "inProgress"
    DONE = "done"
    TERMINATED_WITH_ERROR = "terminatedWithError"


class ServiceOrder(SQLModel, table=True):
    __tablename__ = "service_order"

    id: str = Field(primary_key=True, max_length=64)
    external_id: str | None = Field(default=None, unique=True, index=True, max_length=200)
    state: str = Field(default=OrderState.ACKNOWLEDGED, index=True, max_length=32)
    customer_id: str | None = Field(default=None, index=True, max_length=200)
    #: The wholesale partner whose token placed the order (its ``partner_id`` claim); only
    #: that partner sees it. None: placed by the operator (an API key or operator token).
    partner_id: str | None = Field(default=None, index=True, max_length=128)
    workflow_id: str = Field(max_length=200)
    order_date: datetime = Field(default_factory=utcnow)
    #: Indexed, as is ``updated_at``: the incremental exports read by them.
    completion_date: datetime | None = Field(default=None, index=True)
    error_message: str | None = None
    #: The TMF641 document as received, secrets redacted.
    document: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, index=True)
    #: ``<salt>:<sha256>`` of the create body as received (canonical JSON, keys included, so
    #: salted): the same ``externalId`` with another body is a conflict. None: placed before
    #: the hub kept it (taken as the same body).
    body_hash: str | None = Field(default=None, max_length=100)


class ServiceOrderItem(SQLModel, table=True):
    __tablename__ = "service_order_item"

    order_id: str = Field(foreign_key="service_order.id", primary_key=True, max_length=64)
    item_id: str = Field(primary_key=True, max_length=64)
    action: str = Field(max_length=16)
    state: str = Field(default=ItemState.ACKNOWLEDGED, max_length=32)


class OrderStateChange(SQLModel, table=True):
    """The audit trail: every state an order and its items went through, and why."""

    __tablename__ = "order_state_change"

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(foreign_key="service_order.id", index=True, max_length=64)
    item_id: str | None = Field(default=None, max_length=64)
    from_state: str | None = Field(default=None, max_length=32)
    to_state: str = Field(max_length=32)
    reason: str | None = None
    #: Indexed for the incremental export, which reads the trail in this order.
    at: datetime = Field(default_factory=utcnow, index=True)


class CancelServiceOrder(SQLModel, table=True):
    __tablename__ = "cancel_service_order"
    __table_args__ = (UniqueConstraint("order_id", name="uq_cancel_service_order_order"),)

    id: str = Field(primary_key=True, max_length=64)
    order_id: str = Field(foreign_key="service_order.id", max_length=64)
    state: str = Field(default=CancelState.ACCEPTED, max_length=32)
    cancellation_reason: str | None = None
    requested_at: datetime = Field(default_factory=utcnow)
    effective_at: datetime | None = None
    error_message: str | None = None


class DeadLetterStatus(StrEnum):
    """Where a parked step stands. ``parked`` waits for an operator; the others are final
    except ``retrying``, which ends ``resolved`` or is parked again as a new dead letter."""

    PARKED = "parked"
    RETRYING = "retrying"
    RESOLVED = "resolved"
    SKIPPED = "skipped"
    ABORTED = "aborted"
    EXPIRED = "expired"


class DeadLetterAction(StrEnum):
    RETRY = "retry"
    SKIP = "skip"
    ABORT = "abort"


class DeadLetter(SQLModel, table=True):
    """A step that exhausted its retries (or failed for a technical reason) and waits for a
    person: retry (maybe with corrected input), skip (where allowed), or abort (compensate)."""

    __tablename__ = "dead_letter"

    id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(index=True, max_length=200)
    run_id: str = Field(max_length=64)
    process: str = Field(index=True, max_length=64)
    order_id: str | None = Field(default=None, index=True, max_length=64)
    step: str = Field(index=True, max_length=200)
    system: str = Field(index=True, max_length=32)
    activity: str = Field(max_length=200)
    compensation: bool = False
    skippable: bool = False
    #: The step's input with secrets redacted.
    input: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    error_type: str = Field(max_length=200)
    last_error: str
    attempts: int = 0
    first_failure_at: datetime
    last_failure_at: datetime
    parked_at: datetime = Field(default_factory=utcnow, index=True)
    deadline: datetime
    status: str = Field(default=DeadLetterStatus.PARKED, index=True, max_length=16)
    decision: str | None = Field(default=None, max_length=16)
    decided_by: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = None
    decision_reason: str | None = None
    closed_at: datetime | None = None


# --- Billing reconciliation -------------------------------------------------------------------


class ReconciliationStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ReconciliationRun(SQLModel, table=True):
    """One reconciliation of a period: its inputs, where its discrepancies are, and the totals.

    Amounts are in ``currency``; ``leakage_amount`` is usage the network carried that billing
    did not charge (or charged too little), ``overbilled_amount`` the reverse. The rows of each
    discrepancy live in the Parquet file at ``discrepancy_uri``, never in this database.
    """

    __tablename__ = "reconciliation_run"

    id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(index=True, max_length=200)
    period_start: datetime = Field(index=True)
    period_end: datetime
    status: str = Field(default=ReconciliationStatus.RUNNING, index=True, max_length=16)
    started_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None
    currency: str = Field(default="EUR", max_length=3)
    #: What was read and how: source URIs, tolerances, threshold, partitions (redacted JSON).
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    network_records: int = 0
    billing_records: int = 0
    matched_records: int = 0
    discrepancy_count: int = 0
    billed_revenue: Decimal = Field(default=Decimal(0), max_digits=18, decimal_places=4)
    leakage_amount: Decimal = Field(default=Decimal(0), max_digits=18, decimal_places=4)
    overbilled_amount: Decimal = Field(default=Decimal(0), max_digits=18, decimal_places=4)
    #: Leakage as a percentage of billed revenue.
    leakage_pct: float = 0.0
    discrepancy_uri: str | None = None
    case_id: str | None = Field(default=None, max_length=64)
    error_message: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class ReconciliationCategory(SQLModel, table=True):
    """A run's totals by discrepancy category (missing_in_billing, rating_mismatch...)."""

    __tablename__ = "reconciliation_category"

    run_id: str = Field(foreign_key="reconciliation_run.id", primary_key=True, max_length=64)
    category: str = Field(primary_key=True, max_length=32)
    count: int = 0
    #: Signed: positive is revenue lost (under-billed), negative over-billed.
    revenue_impact: Decimal = Field(default=Decimal(0), max_digits=18, decimal_places=4)


# --- Scheduled exports ------------------------------------------------------------------------


class ExportWatermark(SQLModel, table=True):
    """How far an export has copied its dataset: every row whose change time is at or before
    ``watermark`` is in a published run. It only moves forward, and only once a run's files
    and manifest are in place."""

    __tablename__ = "export_watermark"

    export_id: str = Field(primary_key=True, max_length=64)
    dataset: str = Field(max_length=64)
    watermark: datetime
    #: The run that moved it last.
    run_id: str = Field(max_length=64)
    updated_at: datetime = Field(default_factory=utcnow)


class ExportRun(SQLModel, table=True):
    """One run of an export: the window it copied, what it wrote, and how it ended.

    The rows copied are those whose change time lies in ``(watermark_from, watermark_to]``
    (``watermark_from`` None: from the beginning). Files and checksums are in the manifest.
    """

    __tablename__ = "export_run"

    id: str = Field(primary_key=True, max_length=64)
    export_id: str = Field(index=True, max_length=64)
    workflow_id: str = Field(max_length=200)
    dataset: str = Field(max_length=64)
    format: str = Field(max_length=16)
    destination: str = Field(max_length=1000)
    status: str = Field(default="running", index=True, max_length=16)
    #: The schedule's time for this run (a backfilled run's is in the past); None when the
    #: run was not started by a schedule.
    scheduled_at: datetime | None = None
    watermark_from: datetime | None = None
    watermark_to: datetime | None = None
    started_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None
    #: 64-bit: a large table's export passes 2**31 bytes.
    rows: int = Field(default=0, sa_type=BigInteger)
    files: int = 0
    bytes: int = Field(default=0, sa_type=BigInteger)
    manifest_uri: str | None = Field(default=None, max_length=1200)
    error_message: str | None = None


# --- Human tasks ------------------------------------------------------------------------------


class TaskState(StrEnum):
    """Where a human task stands; the last three are final."""

    CREATED = "created"
    ASSIGNED = "assigned"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_open(self) -> bool:
        return self in (TaskState.CREATED, TaskState.ASSIGNED)


class HumanTask(SQLModel, table=True):
    """A decision a process waits for from a person (like a BPMN user task).

    The process's workflow is the only writer: it records every change it accepted, so the
    inbox never shows a decision the workflow did not take. ``version`` grows with every
    change; a record older than the row is ignored. The candidate groups are rows of
    :class:`HumanTaskCandidate`, so the inbox can filter by group on any database.
    """

    __tablename__ = "human_task"

    id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(index=True, max_length=200)
    run_id: str = Field(max_length=64)
    process: str = Field(index=True, max_length=64)
    #: What kind of decision: ``approval``, ``dead-letter``, ``compliance-review``...
    kind: str = Field(index=True, max_length=64)
    #: The business object: an order id, a report, a partner application.
    reference: str | None = Field(default=None, index=True, max_length=200)
    title: str = Field(max_length=500)
    description: str = ""
    #: The decisions offered, e.g. ``["approve", "reject"]``.
    decisions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    #: The form the decider fills in: ``[{"name", "type", "required", "label"}]``.
    form: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    #: What the process shows the decider (figures, findings, the parked step's error).
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    #: Identities that must not decide (four-eyes: whoever prepared the matter).
    excluded_deciders: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    assignee: str | None = Field(default=None, index=True, max_length=200)
    priority: int = Field(default=50, index=True)
    state: str = Field(default=TaskState.CREATED, index=True, max_length=16)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    follow_up_at: datetime | None = None
    escalation_at: datetime | None = None
    due_at: datetime | None = Field(default=None, index=True)
    escalated: bool = False
    dead_letter_id: str | None = Field(default=None, index=True, max_length=64)
    decision: str | None = Field(default=None, max_length=64)
    comment: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    decided_by: str | None = Field(default=None, max_length=200)
    decided_at: datetime | None = None
    closed_at: datetime | None = None
    version: int = 0
    updated_at: datetime = Field(default_factory=utcnow)


class HumanTaskCandidate(SQLModel, table=True):
    """A group that may claim and decide a task (escalation replaces them)."""

    __tablename__ = "human_task_candidate"

    task_id: str = Field(foreign_key="human_task.id", primary_key=True, max_length=64)
    group_name: str = Field(primary_key=True, index=True, max_length=100)


class HumanTaskEvent(SQLModel, table=True):
    """The audit trail of a task: created, claimed, reminded, escalated, completed, ...

    ``seq`` is the task's version after the change, so a record written twice (an activity
    retried) is one event.
    """

    __tablename__ = "human_task_event"
    __table_args__ = (UniqueConstraint("task_id", "seq", name="uq_human_task_event_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(foreign_key="human_task.id", index=True, max_length=64)
    seq: int
    action: str = Field(max_length=32)
    actor: str | None = Field(default=None, max_length=200)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    at: datetime = Field(default_factory=utcnow, index=True)


# --- Inventory audits -------------------------------------------------------------------------


class InventoryAuditStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class InventoryAudit(SQLModel, table=True):
    """One audit of the HSS, billing and CRM inventories against the hub's own record.

    ``*_records`` are what each side holds (the hub's and billing's: active subscribers); the
    differences themselves live in the Parquet file at ``differences_uri``, never here.
    ``revenue_at_stake`` is per month, in ``currency``.
    """

    __tablename__ = "inventory_audit"

    id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(index=True, max_length=200)
    status: str = Field(default=InventoryAuditStatus.RUNNING, index=True, max_length=16)
    started_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = None
    currency: str = Field(default="EUR", max_length=3)
    hub_records: int = 0
    hss_records: int = 0
    billing_records: int = 0
    crm_records: int = 0
    difference_count: int = 0
    revenue_at_stake: Decimal = Field(default=Decimal(0), max_digits=18, decimal_places=4)
    differences_uri: str | None = None
    error_message: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class InventoryAuditCategory(SQLModel, table=True):
    """An audit's totals by difference category (in_hss_not_billed, status_mismatch...)."""

    __tablename__ = "inventory_audit_category"

    audit_id: str = Field(foreign_key="inventory_audit.id", primary_key=True, max_length=64)
    category: str = Field(primary_key=True, max_length=32)
    count: int = 0
    revenue_at_stake: Decimal = Field(default=Decimal(0), max_digits=18, decimal_places=4)


# --- Regulatory reports -----------------------------------------------------------------------


class ReportStatus(StrEnum):
    """Where one version of a regulatory report stands; the last four are final."""

    EXTRACTING = "extracting"
    VALIDATING = "validating"
    AWAITING_APPROVAL = "awaitingApproval"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    #: The regulator refused it: its preparer's correction task is open.
    AWAITING_CORRECTION = "awaitingCorrection"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    FAILED = "failed"

    @property
    def is_open(self) -> bool:
        return self not in (
            ReportStatus.ACCEPTED,
            ReportStatus.REJECTED,
            ReportStatus.SUPERSEDED,
            ReportStatus.FAILED,
        )


class RegulatoryReport(SQLModel, table=True):
    """One version of a report to the regulator (``kev-mobile-quarterly`` for 2026-Q3).

    The workflow writes it as it goes: the indicators and findings the approver saw, the
    approval task, the regulator's receipt and verdict, and the archive: the exact bytes
    submitted lie at ``document_uri``, ``document_sha256`` is their digest. A correction is a
    new row, version n+1, whose ``supersedes`` is the receipt of the version it corrects.
    """

    __tablename__ = "regulatory_report"
    #: Two requests at once cannot both start version n.
    __table_args__ = (
        UniqueConstraint(
            "report_type", "operator_id", "period", "version", name="uq_regulatory_report_version"
        ),
    )

    id: str = Field(primary_key=True, max_length=64)
    report_type: str = Field(index=True, max_length=64)
    operator_id: str = Field(index=True, max_length=64)
    period: str = Field(index=True, max_length=16)
    version: int = 1
    status: str = Field(default=ReportStatus.EXTRACTING, index=True, max_length=24)
    workflow_id: str = Field(index=True, max_length=200)
    #: Who started it (``api-key:<name>``): the one person who may not approve it.
    prepared_by: str = Field(max_length=200)
    #: What it was started with: sources, manual figures, the reason of a correction.
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    indicators: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    findings: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    #: The open approval (or correction) task.
    task_id: str | None = Field(default=None, max_length=64)
    approved_by: str | None = Field(default=None, max_length=200)
    receipt_id: str | None = Field(default=None, index=True, max_length=64)
    received_at: datetime | None = None
    #: The regulator's verdict (accepted, rejected), or the approver's rejection.
    verdict: str | None = Field(default=None, max_length=16)
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    document_uri: str | None = None
    document_sha256: str | None = Field(default=None, max_length=64)
    due_date: datetime | None = None
    #: The receipt of the accepted version this one corrects.
    supersedes: str | None = Field(default=None, max_length=64)
    error_message: str | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


# --- Wholesale partners -----------------------------------------------------------------------


class PartnerStatus(StrEnum):
    """Where a partner's application stands; rejected, closed and failed are final."""

    CHECKING = "checking"
    AWAITING_APPROVAL = "awaitingApproval"
    PROVISIONING = "provisioning"
    TESTING = "testing"
    ACTIVE = "active"
    REJECTED = "rejected"
    OFFBOARDING = "offboarding"
    CLOSED = "closed"
    FAILED = "failed"

    @property
    def is_open(self) -> bool:
        return self not in (PartnerStatus.REJECTED, PartnerStatus.CLOSED, PartnerStatus.FAILED)


class PartnerApplication(SQLModel, table=True):
    """A wholesale partner: its application, the TMF632 organization and TMF669 party role it
    became, what was provisioned for it, and where its onboarding stands.

    The organization (``organization`` holds the TMF632 document as applied for) and its
    party role are served read-only at their TMF paths from this row. ``*_sealed`` columns
    hold sealed tokens only; the client and webhook secrets are deleted once handed out.
    """

    __tablename__ = "partner_application"

    id: str = Field(primary_key=True, max_length=64)
    status: str = Field(default=PartnerStatus.CHECKING, index=True, max_length=24)
    workflow_id: str = Field(index=True, max_length=200)
    #: The company registry number and the VAT id, as given (the registry number identifies
    #: an application: the same number again answers the open one).
    registration_number: str = Field(index=True, max_length=64)
    vat_id: str = Field(index=True, max_length=32)
    name: str = Field(index=True, max_length=200)
    organization_id: str = Field(unique=True, index=True, max_length=64)
    organization_status: str = Field(default="initialized", max_length=24)
    party_role_id: str = Field(unique=True, index=True, max_length=64)
    party_role_status: str = Field(default="pending", max_length=24)
    organization: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    representatives: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    callback_url: str = Field(max_length=2000)
    requested_scopes: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    #: The checks' answers, and what the approver must look at.
    checks: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    findings: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    high_risk: bool = False
    task_id: str | None = Field(default=None, max_length=64)
    applied_by: str = Field(max_length=200)
    approved_by: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    billing_account_id: str | None = Field(default=None, max_length=64)
    crm_recorded: bool = False
    client_id: str | None = Field(default=None, max_length=200)
    registration_client_uri: str | None = Field(default=None, max_length=2000)
    client_secret_sealed: str | None = None
    registration_token_sealed: str | None = None
    webhook_secret_sealed: str | None = None
    #: The callback stored for notifications (event subscriptions, once they exist).
    callback_registered: bool = False
    credentials_issued_at: datetime | None = None
    credentials_issued_to: str | None = Field(default=None, max_length=200)
    offboarding_requested_by: str | None = Field(default=None, max_length=200)
    reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    error_message: str | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
