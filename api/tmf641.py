"""TMF641 Service Ordering: request/response models, and validation into the workflow's input.

Only what the hub understands is accepted: the ``mobile-4g5g`` specification with its
characteristics. Everything refused is refused with a :class:`ValidationFailure` (or a
pydantic error) that names the field, so the client learns exactly what to fix. That
includes what would only fail later, at a system: ids and names that are not printable or
that billing's XML cannot carry, an item id that cannot go into an HTTP header, a customer id
that cannot be a segment of the CRM's URLs, values Temporal cannot index.

Subscriber keys leave validation sealed (:mod:`hub.sealing`): the workflow, its history and the
Temporal UI only ever hold tokens, which the HSS activity unseals. OP leaves as the OPc that
Milenage derives from it here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from adapters.hss import QosProfile
from api.inbound import unfit_name
from hub.errors import ValidationFailure
from hub.milenage import derive_opc_hex
from hub.sealing import Sealer
from hub.search_attributes import KEYWORD_MAX_BYTES
from workflows.service_activation import Customer, MobileService, ServiceItem

MOBILE_SPEC = "mobile-4g5g"
SECRET_CHARACTERISTICS = frozenset({"ki", "op", "opc"})
REDACTED = "***"

# [0-9], not \d: \d takes any script's digits ("\uff10"), which no system downstream does.
_IMSI = re.compile(r"[0-9]{15}")
_E164 = re.compile(r"\+?[1-9][0-9]{6,14}")
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_PLAN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

_QOS = ("plan", "qci", "ambrDownlink", "ambrUplink")
#: Per action: characteristics that must be present, and those that may be.
_REQUIRED = {
    "add": ("imsi", "msisdn", "ki", *_QOS),
    "modify": ("imsi", "msisdn", *_QOS),
    "delete": ("imsi", "msisdn"),
}
_OPTIONAL = {
    "add": ("opc", "op", "dataQuota", "arpPriority"),
    "modify": ("dataQuota", "arpPriority"),
    "delete": (),
}


def _printable(value: str) -> str:
    if problem := unfit_name(value):
        raise ValueError(problem)
    return value


def _indexable(value: str) -> str:
    size = len(value.encode())
    if size > KEYWORD_MAX_BYTES:
        raise ValueError(
            f"must be at most {KEYWORD_MAX_BYTES} bytes in UTF-8, not {size}: Temporal indexes it"
        )
    return value


def _path_segment(value: str) -> str:
    if value in (".", "..") or any(c in value for c in "/\\?#%"):
        raise ValueError("must not contain / \\ ? # % nor be . or ..: the CRM's URLs carry it")
    return value


def _header_safe(value: str) -> str:
    if not all("!" <= c <= "~" for c in value):
        raise ValueError(
            "must be ASCII letters, digits or punctuation, without spaces: it goes into the "
            "Idempotency-Key header of every call"
        )
    return value


# Ids and names every system can store, show, and carry in XML.
PartyName = Annotated[str, Field(max_length=200), AfterValidator(_printable)]
ExternalId = Annotated[
    str, Field(min_length=1, max_length=200), AfterValidator(_printable), AfterValidator(_indexable)
]
PartyId = Annotated[
    str,
    Field(min_length=1, max_length=200),
    AfterValidator(_printable),
    AfterValidator(_path_segment),
    AfterValidator(_indexable),
]
ItemId = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_header_safe)]


class _TmfModel(BaseModel):
    # TMF payloads carry @type/@baseType/@schemaLocation and vendor extensions: keep them.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


#: The first-level attributes ``fields=`` selects from (TMF630: first-level only; ``id`` and
#: ``href`` always come): TMF641 v4.0.0's ``ServiceOrder`` and ``CancelServiceOrder``, and the
#: hub's ``errorMessage`` (TMF641 v5's: why an order failed or is held).
SERVICE_ORDER_ATTRIBUTES = frozenset(
    {
        "id",
        "href",
        "cancellationDate",
        "cancellationReason",
        "category",
        "completionDate",
        "description",
        "expectedCompletionDate",
        "externalId",
        "notificationContact",
        "orderDate",
        "priority",
        "requestedCompletionDate",
        "requestedStartDate",
        "startDate",
        "externalReference",
        "note",
        "orderRelationship",
        "relatedParty",
        "serviceOrderItem",
        "state",
        "@baseType",
        "@schemaLocation",
        "@type",
        "errorMessage",
    }
)
CANCEL_SERVICE_ORDER_ATTRIBUTES = frozenset(
    {
        "id",
        "href",
        "cancellationReason",
        "effectiveCancellationDate",
        "requestedCancellationDate",
        "serviceOrder",
        "state",
        "@baseType",
        "@schemaLocation",
        "@type",
        "errorMessage",
    }
)
ALWAYS_SELECTED = ("id", "href")


def selected_fields(fields: str | None, attributes: frozenset[str]) -> frozenset[str] | None:
    """The attributes ``fields=`` names (None: all). A name that is not a first-level attribute
    of the resource is a 400 naming it, so a typo is not taken for an empty attribute."""
    if fields is None:
        return None
    names = [name.strip() for name in fields.split(",") if name.strip()]
    unknown = [name for name in names if name not in attributes]
    if unknown:
        raise ValidationFailure(
            "fields",
            f"{', '.join(repr(n) for n in unknown)}: not a first-level attribute; one of "
            + ", ".join(sorted(attributes)),
        )
    return frozenset(names)


def select_attributes(body: Mapping[str, Any], wanted: Iterable[str] | None) -> dict[str, Any]:
    """``body`` with the ``wanted`` attributes only, and ``id`` and ``href`` always."""
    if wanted is None:
        return dict(body)
    keep = {*wanted, *ALWAYS_SELECTED}
    return {key: value for key, value in body.items() if key in keep}


def body_digest(order: ServiceOrderCreate, salt: str | None = None) -> str:
    """``<salt>:<sha256>`` of the create body as received, as canonical JSON (keys sorted,
    nulls left out, dates as pydantic writes them): two bodies that say the same are the same.
    Salted, since the body holds subscriber keys."""
    salt = salt if salt is not None else secrets.token_hex(8)
    canonical = json.dumps(
        order.model_dump(mode="json", by_alias=True, exclude_none=True),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return f"{salt}:{hashlib.sha256((salt + canonical).encode()).hexdigest()}"


def same_body(stored: str | None, order: ServiceOrderCreate) -> bool:
    """Whether ``order`` is the body an order's ``stored`` digest was made of; an order placed
    before the hub kept digests (None) is taken as the same."""
    if stored is None:
        return True
    salt = stored.partition(":")[0]
    return hmac.compare_digest(body_digest(order, salt), stored)


class Characteristic(_TmfModel):
    name: str = Field(min_length=1)
    value: Any = None
    valueType: str | None = None


class ServiceSpecificationRef(_TmfModel):
    id: str | None = None
    name: str | None = None
    href: str | None = None
    version: str | None = None


ServiceState = Literal[
    "feasibilityChecked", "designed", "reserved", "inactive", "active", "terminated"
]


class ServiceRefOrValue(_TmfModel):
    id: str | None = None
    href: str | None = None
    state: ServiceState | None = None
    serviceSpecification: ServiceSpecificationRef | None = None
    serviceCharacteristic: list[Characteristic] = Field(default_factory=list)


class ServiceOrderItemCreate(_TmfModel):
    id: ItemId
    action: Literal["add", "modify", "delete"]
    service: ServiceRefOrValue


class RelatedParty(_TmfModel):
    id: PartyId
    name: PartyName | None = None
    role: str | None = None
    href: str | None = None


class ServiceOrderCreate(_TmfModel):
    """The body of ``POST /serviceOrder``."""

    externalId: ExternalId | None = None
    description: str | None = None
    category: str | None = None
    priority: str | None = None
    requestedStartDate: datetime | None = None
    requestedCompletionDate: datetime | None = None
    relatedParty: list[RelatedParty] = Field(default_factory=list)
    serviceOrderItem: list[ServiceOrderItemCreate] = Field(min_length=1, max_length=100)


class ServiceOrderRef(_TmfModel):
    id: str = Field(min_length=1)
    href: str | None = None


class CancelServiceOrderCreate(_TmfModel):
    """The body of ``POST /cancelServiceOrder``."""

    serviceOrder: ServiceOrderRef
    cancellationReason: str | None = Field(default=None, max_length=1000)
    requestedCancellationDate: datetime | None = None


def _text(field: str, value: Any, pattern: re.Pattern[str], what: str) -> str:
    # Numbers are refused for identifiers: JSON numbers lose leading zeros.
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationFailure(field, f"must be {what}")
    return value


def _integer(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise ValidationFailure(field, f"must be an integer from {low} to {high}")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or not low <= value <= high:
        raise ValidationFailure(field, f"must be an integer from {low} to {high}")
    return value


def _characteristics(path: str, service: ServiceRefOrValue, action: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    allowed = set(_REQUIRED[action]) | set(_OPTIONAL[action])
    for index, characteristic in enumerate(service.serviceCharacteristic):
        name = characteristic.name
        field = f"{path}.serviceCharacteristic[{index}]"
        if name not in allowed:
            hint = f"; allowed for {action}: {', '.join(sorted(allowed))}"
            raise ValidationFailure(f"{field}.name", f"unknown characteristic {name!r}{hint}")
        if name in values:
            raise ValidationFailure(f"{field}.name", f"characteristic {name!r} given twice")
        if characteristic.value is None:
            raise ValidationFailure(f"{field}.value", "required: a characteristic has a value")
        values[name] = characteristic.value
    missing = [name for name in _REQUIRED[action] if values.get(name) in (None, "")]
    if missing:
        raise ValidationFailure(
            f"{path}.serviceCharacteristic",
            f"missing characteristic(s) for {action}: {', '.join(missing)}",
        )
    return values


def _field(path: str, name: str) -> str:
    return f"{path}.serviceCharacteristic[{name}]"


def _mobile_service(
    path: str, item: ServiceOrderItemCreate, sealer: Sealer | None
) -> MobileService:
    spec = item.service.serviceSpecification
    spec_name = spec.name or spec.id if spec else None
    if spec_name != MOBILE_SPEC:
        raise ValidationFailure(
            f"{path}.serviceSpecification",
            f"unknown serviceSpecification {spec_name!r}; supported: {MOBILE_SPEC!r}",
        )
    values = _characteristics(path, item.service, item.action)
    imsi = _text(_field(path, "imsi"), values["imsi"], _IMSI, "a string of exactly 15 digits")
    msisdn = _text(
        _field(path, "msisdn"),
        values["msisdn"],
        _E164,
        "an E.164 number: '+', country code and subscriber number, 7 to 15 digits",
    )
    msisdn = msisdn if msisdn.startswith("+") else f"+{msisdn}"
    service = MobileService(imsi=imsi, msisdn=msisdn)
    if item.action in ("add", "modify"):
        service.plan = _text(
            _field(path, "plan"), values["plan"], _PLAN, "a plan code (letters, digits, . _ -)"
        )
        service.qos = QosProfile(
            qci=_integer(_field(path, "qci"), values["qci"], 1, 255),
            ambr_downlink=_integer(_field(path, "ambrDownlink"), values["ambrDownlink"], 1, 10**13),
            ambr_uplink=_integer(_field(path, "ambrUplink"), values["ambrUplink"], 1, 10**13),
            data_quota=_integer(_field(path, "dataQuota"), values.get("dataQuota", 0), 0, 2**62),
            arp_priority=_integer(_field(path, "arpPriority"), values.get("arpPriority", 8), 1, 15),
        )
    if item.action == "add":
        ki = _text(
            _field(path, "ki"),
            values["ki"],
            re.compile(f"{_HEX32.pattern}|{_HEX64.pattern}"),
            "32 or 64 hexadecimal digits",
        ).lower()
        opc, op = values.get("opc"), values.get("op")
        if (opc is None) == (op is None):
            raise ValidationFailure(
                f"{path}.serviceCharacteristic",
                "give exactly one of opc and op (both or neither given)",
            )
        if opc is not None:
            opc = _text(_field(path, "opc"), opc, _HEX32, "32 hexadecimal digits").lower()
        else:
            op = _text(_field(path, "op"), op, _HEX32, "32 hexadecimal digits").lower()
            if len(ki) != 32:
                raise ValidationFailure(
                    _field(path, "op"),
                    "OPc can only be derived (Milenage) from a 128-bit ki; "
                    "give opc for a 256-bit ki",
                )
            # Here, so OP (the operator's key, the same for every subscriber) goes no further
            # than this request: the workflow carries the subscriber's own OPc only.
            opc = derive_opc_hex(ki, op)
        service.ki, service.opc = _sealed(sealer, "ki", ki, imsi), _sealed(sealer, "opc", opc, imsi)
    return service


def _sealed(sealer: Sealer | None, field: str, value: str, imsi: str) -> str:
    """The value as the workflow carries it: sealed to the worker's key, bound to its field
    and subscriber; without a key (development) as it is."""
    return sealer.seal(field, value, context=imsi) if sealer else value


def customer_of(order: ServiceOrderCreate) -> Customer:
    customers = [p for p in order.relatedParty if (p.role or "").lower() == "customer"]
    if len(customers) != 1:
        found = "none" if not customers else f"{len(customers)}"
        raise ValidationFailure(
            "relatedParty",
            f"exactly one relatedParty with role 'customer' is needed ({found} given)",
        )
    party = customers[0]
    return Customer(id=party.id, name=party.name or party.id)


#: The role under which an order names the wholesale partner that placed it.
PARTNER_ROLE = "wholesalePartner"


#: Between a partner's id and its own customer id (no partner id holds it): ``p-1~CUST-7``.
PARTNER_CUSTOMER_SEPARATOR = "~"


def partner_customer(partner_id: str, customer_id: str) -> str:
    """A partner's customer as the hub and the systems behind it know it: in the partner's
    namespace, so no partner can name (and change) the operator's or another partner's."""
    prefix = f"{partner_id}{PARTNER_CUSTOMER_SEPARATOR}"
    return customer_id if customer_id.startswith(prefix) else prefix + customer_id


def with_partner(order: ServiceOrderCreate, partner_id: str) -> ServiceOrderCreate:
    """The order as a partner's token placed it: the partner is its ``wholesalePartner``
    related party, whatever wholesale partner the body named (a partner cannot order in
    another's name), and its customers are in the partner's namespace
    (:func:`partner_customer`)."""
    parties = []
    for party in order.relatedParty:
        role = (party.role or "").lower()
        if role == PARTNER_ROLE.lower():
            continue
        if role == "customer":
            party = party.model_copy(update={"id": partner_customer(partner_id, party.id)})
        parties.append(party)
    partner = RelatedParty.model_validate(
        {"id": partner_id, "role": PARTNER_ROLE, "@referredType": "Organization"}
    )
    return order.model_copy(update={"relatedParty": [*parties, partner]})


def order_items(order: ServiceOrderCreate, *, sealer: Sealer | None) -> list[ServiceItem]:
    """Validate every item; the first problem found is reported. Keys leave here sealed with
    ``sealer`` (None: as they are, for development without seal keys)."""
    items: list[ServiceItem] = []
    seen_ids: set[str] = set()
    seen_imsis: set[str] = set()
    for index, item in enumerate(order.serviceOrderItem):
        path = f"serviceOrderItem[{index}]"
        if item.id in seen_ids:
            raise ValidationFailure(f"{path}.id", f"item id {item.id!r} given twice")
        seen_ids.add(item.id)
        service = _mobile_service(f"{path}.service", item, sealer)
        if service.imsi in seen_imsis:
            raise ValidationFailure(
                _field(f"{path}.service", "imsi"), "the same IMSI appears in two items"
            )
        seen_imsis.add(service.imsi)
        items.append(ServiceItem(id=item.id, action=item.action, service=service))
    return items


def redacted(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of an order document with every key characteristic's value replaced."""
    copy = {**document, "serviceOrderItem": []}
    for item in document.get("serviceOrderItem", []):
        service = dict(item.get("service") or {})
        service["serviceCharacteristic"] = [
            {**c, "value": REDACTED} if c.get("name") in SECRET_CHARACTERISTICS else c
            for c in service.get("serviceCharacteristic") or []
        ]
        copy["serviceOrderItem"].append({**item, "service": service})
    return copy
