"""Activities of the inventory audit: each side's inventory read into a file, the comparison,
and the audit's record.

Each system's inventory is read page by page through its adapter (HSS and CRM over REST,
billing's ``ListSubscriptions`` over SOAP) into one Parquet file of the audit's workspace,
heartbeating after every page; the hub's own record is read from the hub database through the
``subscriber_inventory`` dataset. Only paths and counts go through Temporal. The comparison
(:mod:`hub.inventory.engine`) is CPU-bound and synchronous: it runs on the reconciliation
queue's thread pool, the worker's place for columnar data work.

An audit's workspace (``<data_dir>/inventory/<audit id>/``)::

    work/hub.parquet  work/hss.parquet  work/billing.parquet  work/crm.parquet
    work/catalogue.parquet      billing's plans and fees
    differences.parquet         the audit's result, kept; ``work/`` is removed at the end
                                (unless the audit asks to keep it)

Every workspace path is checked (``hub.paths.require_within``) each time it is used.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import delete
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.definitions import defn
from activities.errors import outside_call
from adapters.billing import BillingClient
from adapters.crm import CrmClient
from adapters.files import Files
from adapters.hss import HssClient, qos_from_document
from hub.datasets.base import Window
from hub.datasets.inventory import SubscriberInventory
from hub.db import session_scope
from hub.errors import HubError, PermanentError, TransientError
from hub.inventory import engine
from hub.inventory.engine import AuditSummary
from hub.models import InventoryAudit, InventoryAuditCategory, InventoryAuditStatus, utcnow
from hub.paths import LocationRefused, require_within
from hub.settings import RECONCILIATION, Settings

SIDES = ("hub", "hss", "billing", "crm")


# --- Inputs and results ----------------------------------------------------------------------


@dataclass
class ReadInventoryInput:
    audit_id: str
    page_size: int = 1000


@dataclass
class ReadInventoryResult:
    side: str
    path: str
    rows: int
    #: Billing's only: the catalogue's currency.
    currency: str | None = None


@dataclass
class CompareInput:
    audit_id: str


@dataclass
class CompareResult:
    uri: str
    summary: AuditSummary
    #: Differences with an obvious repair: subscribers in the HSS no completed order names.
    unknown_in_hss: int = 0


@dataclass
class RemoveUnknownInput:
    """Remove from the HSS the subscribers an audit found unknown to the hub."""

    audit_id: str
    #: Each removal's idempotency key is ``<prefix>/<imsi>``.
    idempotency_prefix: str


@dataclass
class RemoveUnknownResult:
    removed: int
    already_gone: int


@dataclass
class DiscardInventoryInput:
    audit_id: str


@dataclass
class RecordInventoryAuditInput:
    """The audit's row in the hub database: created, finished (idempotent)."""

    audit_id: str
    workflow_id: str
    status: str
    currency: str = "EUR"
    summary: AuditSummary | None = None
    differences_uri: str | None = None
    error_message: str | None = None


# --- Workspace -------------------------------------------------------------------------------


def _inside(path: Path, root: Path) -> Path:
    try:
        require_within(path, root)
    except LocationRefused as exc:
        raise PermanentError(f"workspace: {exc}", system="files") from exc
    return path


@dataclass(frozen=True)
class AuditWorkspace:
    """An audit's folder; every path it answers was just checked to resolve inside it."""

    root: Path

    @classmethod
    def of(cls, settings: Settings, audit_id: str) -> AuditWorkspace:
        if not audit_id or "/" in audit_id or audit_id.startswith("."):
            raise PermanentError(f"audit id {audit_id!r} cannot name a folder", system="hub")
        audits = (settings.data_dir / "inventory").resolve()
        return cls(_inside(audits / audit_id, audits))

    @property
    def work(self) -> Path:
        return _inside(self.root / "work", self.root)

    def side(self, name: str) -> Path:
        return _inside(self.work / f"{name}.parquet", self.root)

    @property
    def result(self) -> Path:
        return _inside(self.root / "differences.parquet", self.root)


class _PagedWriter:
    """Rows of one side, a page at a time, into ``<side>.parquet`` (atomically at the end)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.schema = path, schema
        self.tmp = path.with_name(path.name + ".tmp")
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        self.rows = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))
            self.rows += len(rows)

    def close(self) -> None:
        self.writer.close()
        self.tmp.replace(self.path)


def _hss_row(document: dict[str, Any]) -> dict[str, Any]:
    qos = qos_from_document(document)
    return {
        "imsi": document["imsi"],
        "msisdn": (document.get("msisdn") or [None])[0],
        "barred": int(document.get("subscriber_status") or 0) == 1,
        "qci": qos.qci,
        "ambr_downlink": qos.ambr_downlink,
        "ambr_uplink": qos.ambr_uplink,
    }


def _billing_row(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "subscription_id": item["subscriptionId"],
        "imsi": item.get("imsi"),
        "msisdn": item.get("msisdn"),
        "plan": item.get("planCode"),
        "status": item["status"],
        "monthly_fee": item.get("monthlyFee"),
    }


def _crm_row(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "service_id": item["id"],
        "customer_id": item.get("customerId"),
        "imsi": item.get("imsi"),
        "msisdn": item.get("msisdn"),
        "plan": item.get("plan"),
        "status": item.get("status"),
    }


def _data_errors(func: Any) -> Any:
    """The hub's errors onto Temporal's retry model for the synchronous data activities: a
    malformed file is permanent, a filesystem hiccup transient."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with outside_call():
            try:
                return func(*args, **kwargs)
            except HubError:
                raise
            except (pa.ArrowInvalid, ValueError, TypeError) as exc:
                raise PermanentError(str(exc), system="inventory") from exc
            except OSError as exc:
                raise TransientError(f"{type(exc).__name__}: {exc}", system="files") from exc

    return wrapper


# --- The activities --------------------------------------------------------------------------


class InventoryActivities:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        hss: HssClient,
        billing: BillingClient,
        crm: CrmClient,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.hss, self.billing, self.crm = hss, billing, crm

    async def _pages(
        self,
        side: str,
        data: ReadInventoryInput,
        schema: pa.Schema,
        read: Callable[[int, int], Any],
        row: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> ReadInventoryResult:
        """Read a whole inventory, ``page_size`` at a time, into the side's file."""
        path = AuditWorkspace.of(self.settings, data.audit_id).side(side)
        out = _PagedWriter(path, schema)
        try:
            offset = 0
            while True:
                with outside_call():
                    items, total = await read(offset, data.page_size)
                out.write([row(item) for item in items])
                offset += len(items)
                activity.heartbeat(f"{side}: {offset}/{total}")
                if not items or offset >= total:
                    break
        finally:
            out.close()
        return ReadInventoryResult(side, str(path), out.rows)

    @defn("hss.read_inventory")
    async def read_hss(self, data: ReadInventoryInput) -> ReadInventoryResult:
        """The HSS's subscribers (their keys never: the HSS answers them redacted)."""
        return await self._pages(
            "hss", data, engine.HSS_SCHEMA, self.hss.list_subscribers, _hss_row
        )

    @defn("crm.read_inventory")
    async def read_crm(self, data: ReadInventoryInput) -> ReadInventoryResult:
        return await self._pages("crm", data, engine.CRM_SCHEMA, self.crm.list_services, _crm_row)

    @defn("billing.read_inventory")
    async def read_billing(self, data: ReadInventoryInput) -> ReadInventoryResult:
        """Billing's subscriptions, and its catalogue (each plan's fee and QoS)."""
        workspace = AuditWorkspace.of(self.settings, data.audit_id)
        with outside_call():
            plans = await self.billing.list_plans()
            currency, _ = await self.billing.get_tariffs()
        catalogue = pa.Table.from_pylist(
            [
                {
                    "plan": plan["code"],
                    "monthly_fee": plan["monthlyFee"],
                    "qci": plan.get("qci"),
                    "ambr_downlink": plan.get("downlinkBps"),
                    "ambr_uplink": plan.get("uplinkBps"),
                }
                for plan in plans
            ],
            schema=engine.CATALOGUE_SCHEMA,
        )
        workspace.work.mkdir(parents=True, exist_ok=True)
        pq.write_table(catalogue, workspace.side("catalogue"))
        result = await self._pages(
            "billing", data, engine.BILLING_SCHEMA, self.billing.list_subscriptions, _billing_row
        )
        result.currency = currency
        return result

    @defn("hub.read_inventory_record")
    async def read_hub(self, data: ReadInventoryInput) -> ReadInventoryResult:
        """The hub's own record: the latest completed change of every IMSI, from the
        ``subscriber_inventory`` dataset (completed orders)."""
        path = AuditWorkspace.of(self.settings, data.audit_id).side("hub")
        dataset = SubscriberInventory()
        batches: list[pa.RecordBatch] = []
        async with session_scope(self.sessions) as session:
            chunks = dataset.chunks(session, Files(), Window(None, utcnow()), data.page_size)
            async for chunk in chunks:
                batches += [batch for _, batch in await asyncio.to_thread(chunk)]
                activity.heartbeat(f"hub: {sum(b.num_rows for b in batches)} changes")
        assert dataset.schema is not None
        changes = pa.Table.from_batches(batches, schema=dataset.schema)
        record = await asyncio.to_thread(engine.latest_record, changes)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        await asyncio.to_thread(pq.write_table, record, tmp)
        tmp.replace(path)
        return ReadInventoryResult("hub", str(path), record.num_rows)

    @defn("inventory.compare", system=RECONCILIATION)
    @_data_errors
    def compare(self, data: CompareInput) -> CompareResult:
        """Compare the four sides, write the differences; idempotent (a retry writes the same
        file again from the same inputs, which stay until the workflow discards them)."""
        workspace = AuditWorkspace.of(self.settings, data.audit_id)
        try:
            tables = {side: pq.read_table(workspace.side(side)) for side in (*SIDES, "catalogue")}
        except FileNotFoundError as exc:  # before the OSError of _data_errors: no retry helps
            raise PermanentError(f"{exc.filename} is gone", system="hub") from exc
        activity.heartbeat("read")
        found, summary = engine.compare(
            tables["hub"], tables["hss"], tables["billing"], tables["crm"], tables["catalogue"]
        )
        result = workspace.result
        tmp = result.with_name(result.name + ".tmp")
        pq.write_table(found, tmp, compression="zstd")
        tmp.replace(result)
        return CompareResult(str(result), summary, len(_unknown_in_hss(found)))

    @defn("hss.remove_unknown_subscribers")
    async def remove_unknown(self, data: RemoveUnknownInput) -> RemoveUnknownResult:
        """The repair of ``unknown_to_hub`` in the HSS, once a person approved it: each such
        subscriber deleted through the HSS adapter (a retry deletes none twice)."""
        path = AuditWorkspace.of(self.settings, data.audit_id).result
        found = await asyncio.to_thread(pq.read_table, path, columns=["imsi", "category", "system"])
        removed = gone = 0
        for number, imsi in enumerate(_unknown_in_hss(found), start=1):
            with outside_call():
                deleted = await self.hss.delete_subscriber(
                    imsi, idempotency_key=f"{data.idempotency_prefix}/{imsi}"
                )
            removed, gone = removed + deleted, gone + (not deleted)
            activity.heartbeat(f"{number} removed")
        return RemoveUnknownResult(removed, gone)

    @defn("inventory.discard", system=RECONCILIATION)
    @_data_errors
    def discard(self, data: DiscardInventoryInput) -> None:
        """Remove an audit's intermediate files (its result, if any, stays)."""
        shutil.rmtree(AuditWorkspace.of(self.settings, data.audit_id).work, ignore_errors=True)


def _unknown_in_hss(found: pa.Table) -> list[str]:
    """The IMSIs of ``unknown_to_hub`` differences the HSS holds."""
    mask = pc.and_(
        pc.equal(found["category"], engine.Category.UNKNOWN_TO_HUB.value),
        pc.match_substring(found["system"], "hss"),
    )
    return [str(imsi) for imsi in found.filter(mask)["imsi"].to_pylist()]


class InventoryAuditStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    @defn("hub.record_inventory_audit")
    async def record(self, data: RecordInventoryAuditInput) -> None:
        async with session_scope(self.sessions) as session:
            audit = await session.get(InventoryAudit, data.audit_id)
            if audit is None:
                audit = InventoryAudit(id=data.audit_id, workflow_id=data.workflow_id)
            audit.status = data.status
            audit.currency = data.currency
            if data.status != InventoryAuditStatus.RUNNING:
                audit.finished_at = audit.finished_at or utcnow()
            audit.error_message = data.error_message
            audit.differences_uri = data.differences_uri or audit.differences_uri
            if data.summary is not None:
                summary = data.summary
                audit.hub_records = summary.hub_records
                audit.hss_records = summary.hss_records
                audit.billing_records = summary.billing_records
                audit.crm_records = summary.crm_records
                audit.difference_count = summary.differences
                audit.revenue_at_stake = _money(summary.revenue_at_stake)
                await session.exec(
                    delete(InventoryAuditCategory).where(
                        InventoryAuditCategory.audit_id == data.audit_id  # type: ignore[arg-type]
                    )
                )
                for name, total in sorted(summary.categories.items()):
                    session.add(
                        InventoryAuditCategory(
                            audit_id=data.audit_id,
                            category=name,
                            count=total.count,
                            revenue_at_stake=_money(total.revenue_at_stake),
                        )
                    )
            audit.updated_at = utcnow()
            session.add(audit)


def _money(amount: float) -> Decimal:
    return Decimal(repr(amount)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
