"""Billing simulator (SOAP 1.1 document/literal, default port 8104), contract first.

The contract is ``contracts/billing.wsdl``. The simulator loads it with zeep and uses the
binding's operations both ways: ``operation.input.deserialize`` reads a request and
``operation.output.serialize`` writes the answer, so the simulator cannot drift from the
contract the hub's adapter is built from. Only the ``soap:Fault`` wrapper is built with lxml
(zeep is a client and has no fault builder); its ``BillingFault`` detail is rendered by zeep.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import zeep
import zeep.exceptions
from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse
from lxml import etree
from zeep.helpers import serialize_object
from zeep.xsd.valueobjects import CompoundValue

from simulators.base import BusinessError, Reply, Simulator, create_sim_app, new_id

WSDL_PATH = Path(__file__).resolve().parents[1] / "contracts" / "billing.wsdl"
TNS = "urn:telecom-hub:billing:v1"
BINDING = f"{{{TNS}}}BillingBinding"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
XML_MEDIA_TYPE = "text/xml; charset=utf-8"

#: The read-only operations; every other one changes state and honours ``idempotencyKey``.
READ_ONLY = frozenset({"GetSubscription", "ListSubscriptions", "ListPlans", "GetTariffs"})

#: The XSD's pattern facets, checked here because zeep does not enforce facets when parsing.
FORMATS = {
    "msisdn": re.compile(r"[0-9]{6,15}"),
    "imsi": re.compile(r"[0-9]{15}"),
    "currency": re.compile(r"[A-Z]{3}"),
}


#: What every plan charges per SMS (the usage generator rates SMS at their plan's price).
SMS_PRICE = Decimal("0.0900")


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    monthly_fee: Decimal
    qci: int
    downlink_bps: int
    uplink_bps: int
    #: Usage prices: per megabyte (10^6 octets) of data, per minute of voice (per-second),
    #: per SMS (None: the plan has no SMS price, and ``GetTariffs`` leaves the element out).
    data_price_per_mb: Decimal = Decimal("0.0100")
    voice_price_per_minute: Decimal = Decimal("0.0600")
    sms_price_per_message: Decimal | None = SMS_PRICE

    def tariff_to_soap(self) -> dict[str, Any]:
        return {
            "planCode": self.code,
            "dataPricePerMB": self.data_price_per_mb,
            "voicePricePerMinute": self.voice_price_per_minute,
            "smsPricePerMessage": self.sms_price_per_message,
        }

    def to_soap(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "monthlyFee": self.monthly_fee,
            "qci": self.qci,
            "downlinkBps": self.downlink_bps,
            "uplinkBps": self.uplink_bps,
        }


MBPS = 1_000_000
PLANS = {
    plan.code: plan
    for plan in (
        Plan(
            "BASIC-4G",
            "Basic 4G",
            Decimal("9.90"),
            9,
            20 * MBPS,
            5 * MBPS,
            Decimal("0.0200"),
            Decimal("0.0900"),
        ),
        Plan(
            "STANDARD-5G",
            "Standard 5G",
            Decimal("24.90"),
            9,
            300 * MBPS,
            50 * MBPS,
            Decimal("0.0100"),
            Decimal("0.0600"),
        ),
        Plan(
            "UNLIMITED-5G",
            "Unlimited 5G",
            Decimal("49.90"),
            8,
            1000 * MBPS,
            100 * MBPS,
            Decimal("0.0020"),
            Decimal("0.0300"),
        ),
        Plan(
            "IOT-M2M",
            "IoT / M2M",
            Decimal("2.50"),
            9,
            1 * MBPS,
            256_000,
            Decimal("0.0500"),
            Decimal("0.2000"),
        ),
    )
}


def fault(code: str, message: str) -> BusinessError:
    """A soap:Client fault with a ``BillingFault`` detail."""
    return BusinessError(500, message, code=code)


class SoapContract:
    """The billing WSDL as zeep reads it: parses requests, renders answers and faults."""

    def __init__(
        self,
        wsdl_path: Path = WSDL_PATH,
        *,
        binding: str = BINDING,
        fault_element: str = f"{{{TNS}}}BillingFault",
    ) -> None:
        """``binding`` and ``fault_element`` are qualified names in the WSDL (billing's by
        default; the regulator simulator reads its own contract with the same class)."""
        self.wsdl_path = wsdl_path
        self.wsdl_text = wsdl_path.read_bytes()
        client = zeep.Client(str(wsdl_path))
        self.operations = dict(client.wsdl.bindings[binding].all())
        self.by_element = {op.input.body.qname: op for op in self.operations.values()}
        self.fault_element = client.get_element(fault_element)

    def parse(self, raw: bytes, soap_action: str | None) -> tuple[str, dict[str, Any]]:
        """The operation name and its request values; a ``MalformedRequest`` fault if unusable."""
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, remove_comments=True, remove_pis=True
        )
        try:
            envelope = etree.fromstring(raw, parser=parser)
        except etree.XMLSyntaxError as exc:
            raise fault("MalformedRequest", f"not XML: {exc}") from exc
        if envelope.tag != f"{{{SOAP_ENV}}}Envelope":
            raise fault("MalformedRequest", "not a SOAP 1.1 envelope")
        body = envelope.find(f"{{{SOAP_ENV}}}Body")
        if body is None or len(body) == 0:
            raise fault("MalformedRequest", "empty or missing soap:Body")
        # Dispatch on the body's first child, as document/literal intends.
        operation = self.by_element.get(etree.QName(body[0].tag))
        if operation is None:
            raise fault("MalformedRequest", f"unknown request element {body[0].tag}")

        action = (soap_action or "").strip('"')
        if action and action != operation.soapaction:
            raise fault(
                "MalformedRequest",
                f"SOAPAction {action!r} does not match {operation.soapaction!r}",
            )
        try:
            parsed = operation.input.deserialize(envelope)
        except (zeep.exceptions.Error, ValueError, TypeError) as exc:
            raise fault("MalformedRequest", f"{operation.name}: {exc}") from exc

        elements = operation.input.body.type.elements
        values = self._as_dict(parsed, [name for name, _ in elements])
        for name, element in elements:
            value = values.get(name)
            if element.min_occurs >= 1 and value in (None, ""):
                raise fault("MalformedRequest", f"{operation.name}: {name} is required")
            pattern = FORMATS.get(name)
            if value is not None and pattern is not None and not pattern.fullmatch(str(value)):
                raise fault("MalformedRequest", f"{operation.name}: {name} {value!r} is invalid")
        return operation.name, values

    @staticmethod
    def _as_dict(parsed: Any, names: list[str]) -> dict[str, Any]:
        # zeep unwraps a request of one element to its bare value, and of none to None.
        if parsed is None:
            return {}
        if len(names) == 1 and not isinstance(parsed, CompoundValue):
            return {names[0]: parsed}
        return dict(serialize_object(parsed, dict))

    def render(self, operation_name: str, values: dict[str, Any]) -> str:
        """The response envelope of ``operation_name``, built by zeep from the WSDL."""
        message = self.operations[operation_name].output.serialize(**values)
        return etree.tostring(message.content, xml_declaration=True, encoding="utf-8").decode()

    def render_fault(self, faultcode: Literal["Client", "Server"], code: str, message: str) -> str:
        """A SOAP 1.1 fault whose ``detail`` holds the contract's fault (rendered by zeep)."""
        nsmap = {"soap": SOAP_ENV}
        envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=nsmap)
        body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
        soap_fault = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
        # SOAP 1.1 keeps faultcode/faultstring/detail unqualified.
        etree.SubElement(soap_fault, "faultcode").text = f"soap:{faultcode}"
        etree.SubElement(soap_fault, "faultstring").text = message
        detail = etree.SubElement(soap_fault, "detail")
        self.fault_element.render(detail, self.fault_element(code=code, message=message))
        return etree.tostring(envelope, xml_declaration=True, encoding="utf-8").decode()

    def wsdl_for(self, address: str) -> bytes:
        """The contract with its ``soap:address`` pointing at where it is actually served."""
        document = etree.fromstring(self.wsdl_text)
        for node in document.iterfind(f".//{{{WSDL_NS}}}port/{{{WSDL_SOAP}}}address"):
            node.set("location", address)
        return etree.tostring(document, xml_declaration=True, encoding="utf-8")


@functools.cache
def default_contract() -> SoapContract:
    """The contract from ``contracts/billing.wsdl``, parsed once per process (it is read-only)."""
    return SoapContract()


class BillingSimulator(Simulator):
    name = "billing"

    def __init__(
        self, state_file: Path | None = None, contract: SoapContract | None = None
    ) -> None:
        self.contract = contract or default_contract()
        super().__init__(state_file)
        self.handlers = {
            "CreateAccount": self.create_account,
            "CloseAccount": self.close_account,
            "CreateSubscription": self.create_subscription,
            "ChangePlan": self.change_plan,
            "TerminateSubscription": self.terminate_subscription,
            "ReactivateSubscription": self.reactivate_subscription,
            "VoidSubscription": self.void_subscription,
            "GetSubscription": self.get_subscription,
            "ListSubscriptions": self.list_subscriptions,
            "ListPlans": self.list_plans,
            "GetTariffs": self.get_tariffs,
        }
        missing = set(self.contract.operations) - set(self.handlers)
        if missing:
            raise RuntimeError(f"billing simulator lacks handlers for {sorted(missing)}")

    # -- state --------------------------------------------------------------------------------

    def clear_records(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {}
        #: In creation order, which is what "the latest subscription of an MSISDN" relies on.
        self.subscriptions: dict[str, dict[str, Any]] = {}

    def dump_records(self) -> dict[str, Any]:
        return {
            "accounts": list(self.accounts.values()),
            "subscriptions": list(self.subscriptions.values()),
        }

    def load_records(self, data: dict[str, Any]) -> None:
        self.accounts = {account["accountId"]: account for account in data["accounts"]}
        self.subscriptions = {sub["subscriptionId"]: sub for sub in data["subscriptions"]}

    # -- protocol -----------------------------------------------------------------------------

    def error_reply(self, error: BusinessError) -> Reply:
        faultcode: Literal["Client", "Server"] = "Server" if error.code is None else "Client"
        code = error.code or "InternalError"
        # SOAP 1.1 sends every fault with HTTP 500.
        envelope = self.contract.render_fault(faultcode, code, error.message)
        return Reply(500, envelope, XML_MEDIA_TYPE)

    def fault_reply(
        self, kind: Literal["transient", "permanent"], status: int | None, message: str | None
    ) -> Reply:
        if kind == "transient":
            # Transport level, as a load balancer in front of a dead backend would answer.
            return Reply(status or 503, "", None, {"Retry-After": "0"})
        text = message or "injected permanent fault"
        return Reply(
            status or 500,
            self.contract.render_fault("Client", "InjectedFault", text),
            XML_MEDIA_TYPE,
        )

    def dispatch(self, operation: str, values: dict[str, Any]) -> Reply:
        result = self.handlers[operation](values)
        return Reply(200, self.contract.render(operation, result), XML_MEDIA_TYPE)

    # -- lookups --------------------------------------------------------------------------------

    def _plan(self, code: str) -> Plan:
        plan = PLANS.get(code)
        if plan is None:
            raise fault("UnknownPlan", f"no plan {code!r} in the catalogue")
        return plan

    def _account(self, account_id: str) -> dict[str, Any]:
        account = self.accounts.get(account_id)
        if account is None:
            raise fault("UnknownAccount", f"no account {account_id!r}")
        return account

    def _by_msisdn(self, msisdn: str) -> dict[str, Any]:
        """The MSISDN's active subscription, else its latest terminated one."""
        candidates = [s for s in self.subscriptions.values() if s["msisdn"] == msisdn]
        active = [s for s in candidates if s["status"] == "active"]
        if active:
            return active[0]
        if candidates:
            return candidates[-1]
        raise fault("UnknownSubscription", f"no subscription for msisdn {msisdn}")

    # -- operations ---------------------------------------------------------------------------

    def create_account(self, values: dict[str, Any]) -> dict[str, Any]:
        for account in self.accounts.values():
            if account["customerId"] == values["customerId"]:
                return {"accountId": account["accountId"], "created": False}
        account = {
            "accountId": new_id("acc"),
            "customerId": values["customerId"],
            "name": values["name"],
            "currency": values["currency"],
            "accountType": values.get("accountType") or "retail",
            "vatId": values.get("vatId"),
            "createdAt": datetime.now(UTC).isoformat(),
        }
        self.accounts[account["accountId"]] = account
        return {"accountId": account["accountId"], "created": True}

    def close_account(self, values: dict[str, Any]) -> dict[str, Any]:
        account = self._account(values["accountId"])
        live = [
            s["subscriptionId"]
            for s in self.subscriptions.values()
            if s["accountId"] == account["accountId"] and s["status"] == "active"
        ]
        if live:
            raise fault("AccountHasSubscriptions", f"account has active subscriptions {live}")
        del self.accounts[account["accountId"]]
        return {"accountId": account["accountId"], "status": "closed"}

    def create_subscription(self, values: dict[str, Any]) -> dict[str, Any]:
        account = self._account(values["accountId"])
        plan = self._plan(values["planCode"])
        for existing in self.subscriptions.values():
            if existing["msisdn"] == values["msisdn"] and existing["status"] == "active":
                raise fault(
                    "DuplicateSubscription",
                    f"msisdn {values['msisdn']} already has subscription "
                    f"{existing['subscriptionId']}",
                )
        subscription = {
            "subscriptionId": new_id("sub"),
            "accountId": account["accountId"],
            "msisdn": values["msisdn"],
            "imsi": values["imsi"],
            "planCode": plan.code,
            "status": "active",
            "monthlyFee": str(plan.monthly_fee),
            "createdAt": datetime.now(UTC).isoformat(),
        }
        self.subscriptions[subscription["subscriptionId"]] = subscription
        return {
            "subscriptionId": subscription["subscriptionId"],
            "status": "active",
            "monthlyFee": plan.monthly_fee,
        }

    def change_plan(self, values: dict[str, Any]) -> dict[str, Any]:
        subscription = self._by_msisdn(values["msisdn"])
        if subscription["status"] != "active":
            raise fault("UnknownSubscription", f"no active subscription for {values['msisdn']}")
        plan = self._plan(values["planCode"])
        previous = subscription["planCode"]
        subscription["planCode"] = plan.code
        subscription["monthlyFee"] = str(plan.monthly_fee)
        return {
            "subscriptionId": subscription["subscriptionId"],
            "previousPlanCode": previous,
            "planCode": plan.code,
        }

    def terminate_subscription(self, values: dict[str, Any]) -> dict[str, Any]:
        # Terminating a terminated subscription is a no-op: the goal already holds.
        subscription = self._by_msisdn(values["msisdn"])
        subscription["status"] = "terminated"
        return {"subscriptionId": subscription["subscriptionId"], "status": "terminated"}

    def reactivate_subscription(self, values: dict[str, Any]) -> dict[str, Any]:
        # _by_msisdn prefers an active subscription, so this never makes a second one active.
        subscription = self._by_msisdn(values["msisdn"])
        subscription["status"] = "active"
        return {"subscriptionId": subscription["subscriptionId"], "status": "active"}

    def void_subscription(self, values: dict[str, Any]) -> dict[str, Any]:
        subscription = self.subscriptions.pop(values["subscriptionId"], None)
        if subscription is None:
            raise fault("UnknownSubscription", f"no subscription {values['subscriptionId']!r}")
        return {"subscriptionId": subscription["subscriptionId"], "status": "voided"}

    def get_subscription(self, values: dict[str, Any]) -> dict[str, Any]:
        subscription = self._by_msisdn(values["msisdn"])
        return {
            "subscriptionId": subscription["subscriptionId"],
            "accountId": subscription["accountId"],
            "msisdn": subscription["msisdn"],
            "imsi": subscription["imsi"],
            "planCode": subscription["planCode"],
            "status": subscription["status"],
            "monthlyFee": Decimal(subscription["monthlyFee"]),
        }

    def list_subscriptions(self, values: dict[str, Any]) -> dict[str, Any]:
        """A page of subscriptions of every status, in creation order."""
        offset, limit = int(values["offset"]), int(values["limit"])
        page = itertools.islice(self.subscriptions.values(), offset, offset + limit)
        return {
            "total": len(self.subscriptions),
            "subscription": [
                {
                    "subscriptionId": s["subscriptionId"],
                    "accountId": s["accountId"],
                    "msisdn": s["msisdn"],
                    "imsi": s["imsi"],
                    "planCode": s["planCode"],
                    "status": s["status"],
                    "monthlyFee": Decimal(s["monthlyFee"]),
                }
                for s in page
            ],
        }

    def list_plans(self, values: dict[str, Any]) -> dict[str, Any]:
        return {"plan": [plan.to_soap() for plan in PLANS.values()]}

    def get_tariffs(self, values: dict[str, Any]) -> dict[str, Any]:
        return {"currency": "EUR", "tariff": [plan.tariff_to_soap() for plan in PLANS.values()]}


def _export_files(export_dir: Path | None) -> list[dict[str, Any]]:
    if export_dir is None or not export_dir.is_dir():
        return []
    files = []
    for path in sorted(export_dir.rglob("*")):
        if path.is_file() and not path.name.startswith((".", "_")) and ".tmp" not in path.suffixes:
            digest = hashlib.sha256()
            with path.open("rb") as source:
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
            name = path.relative_to(export_dir).as_posix()
            files.append({"name": name, "size": path.stat().st_size, "sha256": digest.hexdigest()})
    return files


def _export_file(export_dir: Path | None, name: str) -> Path | None:
    """The export file ``name``, never anything outside ``export_dir``."""
    if export_dir is None:
        return None
    path = (export_dir / name).resolve()
    return path if path.is_relative_to(export_dir.resolve()) and path.is_file() else None


def create_app(state_file: Path | None = None, export_dir: Path | None = None) -> FastAPI:
    """The billing simulator app; ``state_file`` persists records across restarts.

    ``export_dir`` holds billing's usage export (rated records, subscriptions), served under
    ``/exports/usage`` as a legacy billing system's file drop would be.
    """
    sim = BillingSimulator(state_file)
    app = create_sim_app(sim, title="Billing simulator (SOAP 1.1)")

    @app.get("/exports/usage", tags=["exports"])
    async def list_export(request: Request) -> Response:
        files = await asyncio.to_thread(_export_files, export_dir)
        return await sim.call(
            request,
            "listUsageExport",
            lambda _: Reply.json(200, {"files": files}),
            mutating=False,
        )

    @app.get("/exports/usage/{name:path}", tags=["exports"], response_model=None)
    async def download_export(request: Request, name: str) -> Response:
        refused = await sim.gate("getUsageExport", request.url.path)
        if refused is not None:
            return refused
        path = await asyncio.to_thread(_export_file, export_dir, name)
        if path is None:
            return Reply.json(404, {"error": f"no export file {name!r}"}).to_response()
        return FileResponse(path, media_type="application/octet-stream")

    @app.get("/billing", tags=["billing"], response_class=Response)
    async def wsdl(request: Request) -> Response:
        if not any(name.lower() == "wsdl" for name in request.query_params):
            return Response("append ?wsdl for the contract\n", 400, media_type="text/plain")
        address = f"{request.base_url}billing"
        return Response(sim.contract.wsdl_for(address), media_type=XML_MEDIA_TYPE)

    @app.post("/billing", tags=["billing"], response_class=Response)
    async def soap(request: Request) -> Response:
        raw = await request.body()
        try:
            operation, values = sim.contract.parse(raw, request.headers.get("SOAPAction"))
        except BusinessError as error:
            # Still through call(): a system that is "down" fails even on garbage.
            def refuse(_: bytes, error: BusinessError = error) -> Reply:
                raise error

            return await sim.call(request, "", refuse, mutating=False)
        return await sim.call(
            request,
            operation,
            lambda _: sim.dispatch(operation, values),
            idempotency_key=values.get("idempotencyKey"),
            mutating=operation not in READ_ONLY,
        )

    return app
