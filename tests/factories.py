"""Builders of TMF641 orders with unique identities, so tests never collide in the simulators."""

from __future__ import annotations

import itertools
import random
import uuid
from typing import Any

# 3GPP TS 35.208 test set 1: K and OP, and the OPc Milenage derives from them.
TS35208_K = "465b5ce8b199b49faa5f0a2ee238a6bc"
TS35208_OP = "cdc202d5123e20f62b6d676ac72cb318"
TS35208_OPC = "cd63cb71954a9f4e48a5994e37a02baf"

_counter = itertools.count(random.randrange(10**6))


def new_identity() -> dict[str, str]:
    n = next(_counter)
    return {
        "imsi": f"00101{n:010d}",
        "msisdn": f"+4366{n:09d}",
        "customer": f"CUST-{uuid.uuid4().hex[:10]}",
    }


def characteristics(**values: Any) -> list[dict[str, Any]]:
    return [{"name": name, "value": value} for name, value in values.items() if value is not None]


def add_item(
    identity: dict[str, str],
    *,
    item_id: str = "1",
    plan: str = "STANDARD-5G",
    ki: str | None = TS35208_K,
    opc: str | None = TS35208_OPC,
    op: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "imsi": identity["imsi"],
        "msisdn": identity["msisdn"],
        "ki": ki,
        "opc": opc,
        "op": op,
        "plan": plan,
        "qci": 9,
        "ambrDownlink": 300_000_000,
        "ambrUplink": 50_000_000,
        "dataQuota": 0,
    }
    values.update(extra)
    return {
        "id": item_id,
        "action": "add",
        "service": {
            "serviceSpecification": {"name": "mobile-4g5g"},
            "serviceCharacteristic": characteristics(**values),
        },
    }


def item(
    identity: dict[str, str], action: str, *, item_id: str = "1", **values: Any
) -> dict[str, Any]:
    base = {"imsi": identity["imsi"], "msisdn": identity["msisdn"], **values}
    return {
        "id": item_id,
        "action": action,
        "service": {
            "serviceSpecification": {"name": "mobile-4g5g"},
            "serviceCharacteristic": characteristics(**base),
        },
    }


def order(
    identity: dict[str, str], *items: dict[str, Any], external_id: str | None = None
) -> dict[str, Any]:
    return {
        "externalId": external_id or f"ext-{uuid.uuid4().hex[:12]}",
        "description": "test order",
        "relatedParty": [
            {
                "id": identity["customer"],
                "name": "Test Customer",
                "role": "customer",
                "@referredType": "Individual",
            }
        ],
        "serviceOrderItem": list(items) or [add_item(identity)],
    }
