"""Activities of regulatory reporting: the figures, the document, the regulator, the record.

- :class:`ReportingActivities`: the data work on the reconciliation queue (CPU-bound, in its
  thread pool): **extract** computes a report type's indicators from the same sources billing
  reconciliation reads (mediation CDRs, billing's rated usage and subscriptions; every file
  checked where it is opened, see ``hub.paths``); **render** builds the document and validates
  it against the type's XSD, and writes the exact bytes that will be submitted to the report's
  archive (``<reporting dir>/<report id>.xml``); **plausibility** compares the figures with the
  last accepted report's.
- :class:`RegulatorActivities`: the regulator's portal (SOAP): submit, and ask for the verdict.
- :class:`ReportStore`: the report's row in the hub database, and the last accepted report.

Bulk data never crosses Temporal: the indicators are a few dozen numbers, the document a file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from activities.definitions import HUB, defn
from activities.errors import outside_call
from activities.events import wake_relay
from activities.reconciliation import (
    BILLING_SYSTEM,
    SUBSCRIPTIONS_FILE,
    Workspace,
    _data_errors,
    checked_source,
)
from adapters import usage_files
from adapters.regulator import RegulatorClient
from hub.db import session_scope
from hub.errors import CorrectionRefused, PermanentError
from hub.events.relay import relay_of
from hub.events.resources import add_report_event
from hub.models import RegulatoryReport, ReportStatus, utcnow
from hub.paths import LocationRefused, parse_location, require_within
from hub.reconciliation.workspace import LocalStore, Store, check_key, store_of
from hub.redact import redact_uri
from hub.reporting import kev, registry
from hub.reporting.periods import Quarter
from hub.settings import RECONCILIATION, Settings

#: Per report type: its indicators' class and its plausibility check with default thresholds
#: (the registry's entries compute, render and validate; these two are the type's own).
INDICATORS: dict[str, Any] = {kev.REPORT_TYPE: kev.KevIndicators}
PLAUSIBILITY: dict[str, Any] = {kev.REPORT_TYPE: (kev.plausibility, kev.DEFAULT_THRESHOLDS)}


#: Who prepared a report its schedule started (any approver may approve it).
SCHEDULE_PREPARER = "hub: schedule"


# --- Inputs and results ----------------------------------------------------------------------


@dataclass
class ReportingDefaults:
    """What a report takes from the worker's settings."""

    operator_id: str
    time_zone: str
    network_source: str
    billing_source: str
    approver_groups: list[str]
    follow_up_after: float
    escalate_after: float
    escalation_groups: list[str]
    approval_due_after: float
    verdict_poll: float
    verdict_timeout: float
    due_warning: float
    heartbeat_timeout: float
    #: Who corrects a version the regulator refused, beside its preparer.
    preparer_groups: list[str] = field(default_factory=list)


@dataclass
class ExtractInput:
    report_id: str
    report_type: str
    period: str
    network_source: str
    #: ``billing-system``: billing's usage export, copied into the report's workspace first.
    billing_source: str
    manual_figures: dict[str, Any] | None = None


@dataclass
class ExtractResult:
    indicators: dict[str, Any]
    findings: list[dict[str, Any]]


@dataclass
class RenderInput:
    report_id: str
    report_type: str
    operator_id: str
    period: str
    version: int
    generated_at: datetime
    indicators: dict[str, Any]
    supersedes: str | None = None


@dataclass
class RenderResult:
    #: The archived document: these bytes, and no others, are submitted.
    uri: str
    sha256: str
    size: int


@dataclass
class PlausibilityInput:
    report_type: str
    indicators: dict[str, Any]
    previous: dict[str, Any] | None


@dataclass
class PreviousReportInput:
    report_type: str
    operator_id: str
    #: The last accepted report of an earlier period than this one.
    period: str


@dataclass
class PreviousReport:
    report_id: str
    period: str
    version: int
    indicators: dict[str, Any]


@dataclass
class SubmitInput:
    report_id: str
    operator_id: str
    report_type: str
    period: str
    version: int
    document_uri: str
    document_sha256: str
    idempotency_key: str
    supersedes: str | None = None


@dataclass
class SubmitResult:
    receipt_id: str
    received_at: datetime


@dataclass
class VerdictInput:
    receipt_id: str


@dataclass
class VerdictResult:
    status: str
    reasons: list[str] = field(default_factory=list)


@dataclass
class ArchiveInput:
    report_id: str
    document_uri: str
    document_sha256: str
    receipt_id: str
    received_at: datetime
    verdict: str
    reasons: list[str] = field(default_factory=list)


@dataclass
class OpenScheduledInput:
    """A run its schedule started: the report of the quarter before ``scheduled_at``."""

    report_type: str
    workflow_id: str
    scheduled_at: datetime
    operator_id: str | None = None
    network_source: str | None = None
    billing_source: str | None = None


@dataclass
class OpenedReport:
    report_id: str
    period: str
    operator_id: str
    version: int
    prepared_by: str
    due_date: datetime
    #: Another version of that report is under way: this run has nothing to do.
    already_open: bool = False


@dataclass
class OpenCorrectionInput:
    """The preparer's correction of a version the regulator refused: version n+1 with the
    figures and sources changed (None keeps the refused version's)."""

    report_id: str
    workflow_id_prefix: str
    prepared_by: str
    reason: str
    reasons: list[str]
    network_source: str | None = None
    billing_source: str | None = None
    manual_figures: dict[str, Any] | None = None


@dataclass
class OpenedCorrection:
    report_id: str
    version: int
    network_source: str | None
    billing_source: str | None
    manual_figures: dict[str, Any] | None


@dataclass
class RecordReportInput:
    """The report's row as it now is; fields left None keep what the row has."""

    report_id: str
    status: str
    indicators: dict[str, Any] | None = None
    findings: list[dict[str, Any]] | None = None
    task_id: str | None = None
    #: True: the open task is closed (``task_id`` is cleared).
    task_closed: bool = False
    approved_by: str | None = None
    receipt_id: str | None = None
    received_at: datetime | None = None
    verdict: str | None = None
    reasons: list[str] | None = None
    document_uri: str | None = None
    document_sha256: str | None = None
    error_message: str | None = None


# --- helpers ---------------------------------------------------------------------------------


def report_id_for(report_type: str, period: str, operator_id: str, version: int) -> str:
    """Readable, and unique even where a database was reset but Temporal kept the workflows
    (whose ids may not be reused): the random tail."""
    return f"{report_type}-{period}-{operator_id}-v{version}-{secrets.token_hex(4)}"


async def open_version(
    session: AsyncSession, report_type: str, period: str, operator_id: str
) -> RegulatoryReport | None:
    """The version of the report that has not ended yet, if any."""
    rows = await session.exec(
        select(RegulatoryReport)
        .where(
            RegulatoryReport.report_type == report_type,
            RegulatoryReport.period == period,
            RegulatoryReport.operator_id == operator_id,
            col(RegulatoryReport.status).notin_([s.value for s in ReportStatus if not s.is_open]),
        )
        .order_by(col(RegulatoryReport.version).desc())
    )
    return rows.first()


async def next_version(
    session: AsyncSession, report_type: str, period: str, operator_id: str
) -> int:
    latest = (
        await session.exec(
            select(func.max(RegulatoryReport.version)).where(
                RegulatoryReport.report_type == report_type,
                RegulatoryReport.period == period,
                RegulatoryReport.operator_id == operator_id,
            )
        )
    ).one()
    return int(latest or 0) + 1


def indicators_of(report_type: str, data: dict[str, Any]) -> Any:
    """A type's indicators from their JSON form (as they travel through Temporal)."""
    cls = INDICATORS.get(report_type)
    if cls is None:
        raise PermanentError(f"report type {report_type!r} has no indicators", system="hub")
    return cls(**data)


def as_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def document_path(settings: Settings, report_id: str) -> Path:
    """``<reporting dir>/<report id>.xml``, sure to resolve inside the reporting folder."""
    if not report_id or "/" in report_id or report_id.startswith("."):
        raise PermanentError(f"report id {report_id!r} cannot name a file", system="hub")
    root = settings.resolved_reporting_dir.resolve()
    path = root / f"{report_id}.xml"
    try:
        require_within(path, root)
    except LocationRefused as exc:
        raise PermanentError(f"reports: {exc}", system="files") from exc
    return path


def read_document(settings: Settings, uri: str, sha256: str) -> bytes:
    """The archived document, if it still has the digest recorded when it was rendered."""
    path = Path(uri)
    root = settings.resolved_reporting_dir.resolve()
    try:
        require_within(path, root)
    except LocationRefused as exc:
        raise PermanentError(f"reports: {exc}", system="files") from exc
    document = path.read_bytes()
    if hashlib.sha256(document).hexdigest() != sha256:
        raise PermanentError(f"{path.name} changed since it was approved", system="files")
    return document


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# --- The data work ---------------------------------------------------------------------------


class ReportingActivities:
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or store_of(settings)

    @defn("reporting.defaults", system=HUB)
    async def defaults(self) -> ReportingDefaults:
        s = self.settings
        return ReportingDefaults(
            operator_id=s.reporting_operator_id,
            time_zone=s.reporting_time_zone,
            network_source=s.resolved_network_source,
            billing_source=s.reconciliation_billing_source,
            approver_groups=list(s.reporting_approver_groups),
            follow_up_after=s.reporting_approval_follow_up.total_seconds(),
            escalate_after=s.reporting_approval_escalation.total_seconds(),
            escalation_groups=list(s.reporting_approval_escalation_groups),
            approval_due_after=s.reporting_approval_due.total_seconds(),
            verdict_poll=s.reporting_verdict_poll.total_seconds(),
            verdict_timeout=s.reporting_verdict_timeout.total_seconds(),
            due_warning=s.reporting_due_warning.total_seconds(),
            heartbeat_timeout=s.reconciliation_heartbeat_timeout.total_seconds(),
            preparer_groups=list(s.reporting_preparer_groups),
        )

    @defn("reporting.extract", system=RECONCILIATION)
    @_data_errors
    def extract(self, data: ExtractInput) -> ExtractResult:
        """The period's indicators and the completeness findings, from the sources."""
        workspace = Workspace.of(self.settings, data.report_id, self.store)
        with self._export_on_disk(workspace, data.billing_source == BILLING_SYSTEM) as export:
            network_source = self._readable(data.network_source, "network source", export)
            billing_source = self._readable(data.billing_source, "billing source", export)
            if billing_source == BILLING_SYSTEM:
                billing_source = str(export)
            network = [item.uri for item in self._listed(network_source, "network", export)]
            if not network:
                raise PermanentError(
                    f"no usage files in {redact_uri(data.network_source)}", system="files"
                )
            everything = self._listed(billing_source, "billing source", export)
            billing = [item.uri for item in everything if item.name != SUBSCRIPTIONS_FILE]
            subscriptions = next(
                (item.uri for item in everything if item.name == SUBSCRIPTIONS_FILE), None
            )
            kind = registry.report_type(data.report_type)
            indicators, findings = kind.compute(
                network,
                billing,
                subscriptions,
                Quarter.parse(data.period),
                tz=self.settings.reporting_time_zone,
                m2m_plans=list(self.settings.reporting_m2m_plans),
                currency=self.settings.reporting_currency,
                manual=data.manual_figures,
            )
        # The copy of billing's export was only for these figures.
        workspace.store.remove(workspace.run_id)
        return ExtractResult(as_json(indicators), [as_json(f) for f in findings])

    @contextmanager
    def _export_on_disk(self, workspace: Workspace, needed: bool) -> Iterator[Path]:
        """The folder of the report's copy of billing's export on this worker's disk: the
        workspace's own, or (off the local disk) a temporary copy, made if ``needed``."""
        store = workspace.store
        if isinstance(store, LocalStore):
            yield store.path(workspace.export)
            return
        with tempfile.TemporaryDirectory(prefix="hub-export-") as scratch:
            folder = Path(scratch)
            if needed:
                for item in store.list(workspace.export):
                    store.download(item.key, folder / check_key(item.name))
            yield folder

    def _readable(self, location: str, what: str, export: Path) -> str:
        try:
            return checked_source(location, self.settings, also=[export])
        except LocationRefused as exc:
            raise PermanentError(f"{what} {redact_uri(location)!r}: {exc}", system="files") from exc

    def _listed(self, location: str, what: str, export: Path) -> list[usage_files.UsageFile]:
        return [
            dataclasses.replace(item, uri=self._readable(item.uri, what, export))
            for item in usage_files.list_files(location)
        ]

    @defn("reporting.render", system=RECONCILIATION)
    @_data_errors
    def render(self, data: RenderInput) -> RenderResult:
        """The document, validated against the type's XSD, archived as it will be submitted.

        A document that does not validate is a permanent error: it never reaches a person."""
        kind = registry.report_type(data.report_type)
        header = kev.ReportHeader(
            report_type=data.report_type,
            operator_id=data.operator_id,
            period=data.period,
            version=data.version,
            generated_at=data.generated_at,
            supersedes=data.supersedes,
        )
        document = kind.render(header, indicators_of(data.report_type, data.indicators))
        try:
            kind.validate(document)
        except kev.DocumentInvalid as exc:
            raise PermanentError(f"the document does not validate: {exc}", system="hub") from exc
        path = document_path(self.settings, data.report_id)
        _write_atomically(path, document)
        return RenderResult(str(path), hashlib.sha256(document).hexdigest(), len(document))

    @defn("reporting.plausibility", system=RECONCILIATION)
    @_data_errors
    def plausibility(self, data: PlausibilityInput) -> list[dict[str, Any]]:
        """Findings against the last accepted report (none: a finding too)."""
        check, thresholds = PLAUSIBILITY[data.report_type]
        current = indicators_of(data.report_type, data.indicators)
        previous = (
            indicators_of(data.report_type, data.previous) if data.previous is not None else None
        )
        return [as_json(finding) for finding in check(current, previous, thresholds)]


# --- The regulator ---------------------------------------------------------------------------


class RegulatorActivities:
    def __init__(self, regulator: RegulatorClient, settings: Settings) -> None:
        self.regulator = regulator
        self.settings = settings

    @defn("regulator.submit_report")
    async def submit_report(self, data: SubmitInput) -> SubmitResult:
        """Submit the archived bytes; a retry with the same key is the same submission."""
        document = read_document(self.settings, data.document_uri, data.document_sha256)
        with outside_call():
            receipt = await self.regulator.submit_report(
                operator_id=data.operator_id,
                report_type=data.report_type,
                period=data.period,
                version=data.version,
                document=document,
                supersedes=data.supersedes,
                idempotency_key=data.idempotency_key,
            )
        return SubmitResult(receipt.receipt_id, receipt.received_at)

    @defn("regulator.get_submission")
    async def get_submission(self, data: VerdictInput) -> VerdictResult:
        with outside_call():
            submission = await self.regulator.get_submission(data.receipt_id)
        return VerdictResult(submission.status, submission.reasons)


# --- The hub database ------------------------------------------------------------------------


class ReportStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings

    @defn("hub.record_report")
    async def record(self, data: RecordReportInput) -> None:
        """The report's row as the workflow now has it (idempotent); on acceptance, the
        version it corrects becomes ``superseded``."""
        url = self.settings.resolved_events_public_url
        async with session_scope(self.sessions) as session:
            report = await session.get(RegulatoryReport, data.report_id)
            if report is None:
                raise PermanentError(f"no report row {data.report_id!r}", system="hub")
            changed = report.status != data.status
            report.status = data.status
            for name in (
                "indicators",
                "findings",
                "task_id",
                "approved_by",
                "receipt_id",
                "received_at",
                "verdict",
                "reasons",
                "document_uri",
                "document_sha256",
                "error_message",
            ):
                value = getattr(data, name)
                if value is not None:
                    setattr(report, name, value)
            if data.task_closed:
                report.task_id = None
            report.updated_at = utcnow()
            session.add(report)
            if data.status == ReportStatus.ACCEPTED and report.supersedes:
                rows = await session.exec(
                    select(RegulatoryReport).where(
                        RegulatoryReport.receipt_id == report.supersedes,
                        RegulatoryReport.status == ReportStatus.ACCEPTED,
                    )
                )
                for old in list(rows):
                    old.status = ReportStatus.SUPERSEDED
                    old.updated_at = utcnow()
                    session.add(old)
                    await add_report_event(session, old, public_url=url)
            # Reported in this transaction (the outbox); a retry finds no change.
            if changed:
                await add_report_event(session, report, public_url=url)
        if changed:
            await wake_relay(relay_of(self.settings))

    @defn("hub.open_scheduled_report")
    async def open_scheduled(self, data: OpenScheduledInput) -> OpenedReport:
        """The row of a scheduled run's report (the quarter before the scheduled time, in the
        operator's time zone): created, or the open version another run or person started."""
        tz = self.settings.reporting_time_zone
        local = data.scheduled_at.astimezone(ZoneInfo(tz))
        quarter = Quarter.parse(f"{local.year}-Q{(local.month - 1) // 3 + 1}").previous()
        period = str(quarter)
        operator_id = data.operator_id or self.settings.reporting_operator_id
        async with session_scope(self.sessions) as session:
            existing = await open_version(session, data.report_type, period, operator_id)
            if existing is not None:
                return OpenedReport(
                    existing.id,
                    period,
                    operator_id,
                    existing.version,
                    existing.prepared_by,
                    existing.due_date or data.scheduled_at,
                    already_open=existing.workflow_id != data.workflow_id,
                )
            version = await next_version(session, data.report_type, period, operator_id)
            report_id = report_id_for(data.report_type, period, operator_id, version)
            due = quarter.bounds(tz)[1] + self.settings.reporting_due_after
            session.add(
                RegulatoryReport(
                    id=report_id,
                    report_type=data.report_type,
                    operator_id=operator_id,
                    period=period,
                    version=version,
                    workflow_id=data.workflow_id,
                    prepared_by=SCHEDULE_PREPARER,
                    parameters={
                        "networkSource": data.network_source,
                        "billingSource": data.billing_source,
                        "manualFigures": None,
                        "scheduled": True,
                    },
                    due_date=due,
                )
            )
        return OpenedReport(report_id, period, operator_id, version, SCHEDULE_PREPARER, due)

    @defn("hub.open_report_correction")
    async def open_correction(self, data: OpenCorrectionInput) -> OpenedCorrection:
        """In one transaction: the refused version ends ``rejected`` and version n+1's row is
        recorded. Idempotent: a retry answers the version recorded the first time. A source
        outside the allowed roots, or a local one that is not there, is refused
        (:class:`CorrectionRefused`) before anything is recorded."""
        for what, source in (
            ("networkSource", data.network_source),
            ("billingSource", data.billing_source),
        ):
            if source:
                self._check_correction_source(what, source)
        async with session_scope(self.sessions) as session:
            refused = await session.get(RegulatoryReport, data.report_id)
            if refused is None:
                raise PermanentError(f"no report row {data.report_id!r}", system="hub")
            key = (refused.report_type, refused.period, refused.operator_id)
            rows = await session.exec(
                select(RegulatoryReport).where(
                    RegulatoryReport.report_type == key[0],
                    RegulatoryReport.period == key[1],
                    RegulatoryReport.operator_id == key[2],
                    RegulatoryReport.version == refused.version + 1,
                )
            )
            again = rows.first()
            if again is None:
                old = refused.parameters
                figures = data.manual_figures or old.get("manualFigures") or None
                parameters = {
                    "networkSource": data.network_source or old.get("networkSource"),
                    "billingSource": data.billing_source or old.get("billingSource"),
                    "manualFigures": {**(old.get("manualFigures") or {}), **figures}
                    if figures
                    else None,
                    "reason": data.reason,
                    "revises": refused.id,
                }
                version = refused.version + 1
                new_id = report_id_for(*key, version)
                again = RegulatoryReport(
                    id=new_id,
                    report_type=refused.report_type,
                    operator_id=refused.operator_id,
                    period=refused.period,
                    version=version,
                    workflow_id=f"{data.workflow_id_prefix}{new_id}",
                    prepared_by=data.prepared_by,
                    parameters=parameters,
                    due_date=refused.due_date,
                    supersedes=refused.supersedes,
                )
                session.add(again)
            refused.status = ReportStatus.REJECTED
            refused.reasons = data.reasons
            refused.task_id = None
            refused.updated_at = utcnow()
            session.add(refused)
            parameters = again.parameters
            return OpenedCorrection(
                again.id,
                again.version,
                parameters.get("networkSource"),
                parameters.get("billingSource"),
                parameters.get("manualFigures"),
            )

    def _check_correction_source(self, what: str, source: str) -> None:
        with outside_call():
            try:
                checked = checked_source(source, self.settings)
            except LocationRefused as exc:
                raise CorrectionRefused(f"{what}: {exc}", system=HUB) from None
            if checked != BILLING_SYSTEM:
                location = parse_location(checked)
                if location.local and not Path(location.path).exists():
                    raise CorrectionRefused(
                        f"{what}: no such file or folder {location.path!r}", system=HUB
                    )

    @defn("hub.previous_accepted_report")
    async def previous_accepted(self, data: PreviousReportInput) -> PreviousReport | None:
        """The accepted report of the latest earlier period (its current version)."""
        async with self.sessions() as session:
            row = (
                await session.exec(
                    select(RegulatoryReport)
                    .where(
                        RegulatoryReport.report_type == data.report_type,
                        RegulatoryReport.operator_id == data.operator_id,
                        col(RegulatoryReport.period) < data.period,
                        RegulatoryReport.status == ReportStatus.ACCEPTED,
                    )
                    .order_by(
                        col(RegulatoryReport.period).desc(), col(RegulatoryReport.version).desc()
                    )
                    .limit(1)
                )
            ).first()
        if row is None or row.indicators is None:
            return None
        return PreviousReport(row.id, row.period, row.version, dict(row.indicators))

    @defn("hub.archive_report")
    async def archive(self, data: ArchiveInput) -> None:
        """The receipt beside the archived document (``<report id>.receipt.json``), and both in
        the report's row: what was submitted, its digest, and what the regulator answered."""
        path = Path(data.document_uri).with_suffix(".receipt.json")
        receipt = {
            "reportId": data.report_id,
            "receiptId": data.receipt_id,
            "receivedAt": data.received_at.isoformat(),
            "verdict": data.verdict,
            "reasons": data.reasons,
            "document": Path(data.document_uri).name,
            "sha256": data.document_sha256,
        }
        _write_atomically(path, (json.dumps(receipt, indent=2) + "\n").encode())
