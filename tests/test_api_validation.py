"""Bad input gets a 400 with the TMF error body naming the field, and starts nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, Hub, eventually
from tests.factories import TS35208_K, TS35208_OP, TS35208_OPC, add_item, new_identity, order

ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"


def with_characteristic(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        chars = body["serviceOrderItem"][0]["service"]["serviceCharacteristic"]
        chars[:] = [c for c in chars if c["name"] != name]
        if value is not None:
            chars.append({"name": name, "value": value})

    return change


def without(name: str) -> Callable[[dict[str, Any]], None]:
    return with_characteristic(name, None)


def set_path(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def both_keys(body: dict[str, Any]) -> None:
    with_characteristic("op", TS35208_OP)(body)


def neither_key(body: dict[str, Any]) -> None:
    without("opc")(body)


def op_with_long_ki(body: dict[str, Any]) -> None:
    without("opc")(body)
    with_characteristic("op", TS35208_OP)(body)
    with_characteristic("ki", TS35208_K * 2)(body)


CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("imsi-14-digits", with_characteristic("imsi", "00101123456789"), "imsi"),
    ("imsi-letters", with_characteristic("imsi", "00101abcdefghij"), "imsi"),
    ("imsi-number", with_characteristic("imsi", 1010000000001), "imsi"),
    ("msisdn-not-e164", with_characteristic("msisdn", "0664 123"), "msisdn"),
    ("msisdn-leading-zero", with_characteristic("msisdn", "+0436641234567"), "msisdn"),
    ("ki-31-hex", with_characteristic("ki", TS35208_K[:-1]), "ki"),
    ("ki-not-hex", with_characteristic("ki", "z" * 32), "ki"),
    ("opc-not-32-hex", with_characteristic("opc", TS35208_OPC + "00"), "opc"),
    ("op-not-hex", lambda b: (without("opc")(b), with_characteristic("op", "g" * 32)(b)), "op"),
    ("both-op-and-opc", both_keys, "opc and op"),
    ("neither-op-nor-opc", neither_key, "opc and op"),
    ("op-with-256-bit-ki", op_with_long_ki, "128-bit"),
    (
        "unknown-spec",
        set_path(
            ["serviceOrderItem", 0, "service", "serviceSpecification"], {"name": "fixed-fiber"}
        ),
        "serviceSpecification",
    ),
    ("missing-imsi", without("imsi"), "imsi"),
    ("missing-plan", without("plan"), "plan"),
    ("missing-ki", without("ki"), "ki"),
    ("qci-out-of-range", with_characteristic("qci", 0), "qci"),
    ("ambr-negative", with_characteristic("ambrDownlink", -5), "ambrDownlink"),
    ("unknown-characteristic", with_characteristic("ambrDownLink", 5), "ambrDownLink"),
    ("bad-action", set_path(["serviceOrderItem", 0, "action"], "upgrade"), "action"),
    ("no-items", set_path(["serviceOrderItem"], []), "serviceOrderItem"),
    ("no-customer", set_path(["relatedParty"], []), "relatedParty"),
]


@pytest.mark.parametrize(
    ("change", "field"), [(c, f) for _, c, f in CASES], ids=[name for name, _, _ in CASES]
)
async def test_bad_order_is_a_400_naming_the_field(
    hub: Hub, change: Callable[[dict[str, Any]], None], field: str
) -> None:
    body = copy.deepcopy(order(new_identity()))
    change(body)
    response = await hub.api.post(ORDERS, json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == "400" and error["status"] == "400" and error["reason"] == "Bad Request"
    assert field in error["message"]
    # Nothing was stored, nothing was started.
    listed = await hub.api.get(ORDERS, params={"externalId": body["externalId"]})
    assert listed.headers["X-Total-Count"] == "0"


async def test_duplicate_item_ids_and_imsis_are_refused(hub: Hub) -> None:
    identity = new_identity()
    body = order(identity, add_item(identity, item_id="1"), add_item(identity, item_id="1"))
    response = await hub.api.post(ORDERS, json=body)
    assert response.status_code == 400 and "given twice" in response.json()["message"]
    body = order(identity, add_item(identity, item_id="1"), add_item(identity, item_id="2"))
    response = await hub.api.post(ORDERS, json=body)
    assert response.status_code == 400 and "same IMSI" in response.json()["message"]


async def test_malformed_json_is_a_400(hub: Hub) -> None:
    response = await hub.api.post(
        ORDERS, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["message"]


async def test_error_messages_never_echo_keys(hub: Hub) -> None:
    body = order(new_identity())
    with_characteristic("ki", "Q" + TS35208_K[1:])(body)
    response = await hub.api.post(ORDERS, json=body)
    assert response.status_code == 400
    assert TS35208_K[1:] not in response.text


# --- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}],
    ids=["missing", "wrong-header", "wrong-bearer", "not-bearer"],
)
async def test_missing_or_wrong_api_key_is_401(hub: Hub, headers: dict[str, str]) -> None:
    response = await hub.api.get(ORDERS, headers={"X-API-Key": "", **headers})
    assert response.status_code == 401
    assert response.json()["code"] == "401"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_bearer_and_second_key_are_accepted(hub: Hub) -> None:
    response = await hub.api.get(
        ORDERS, headers={"X-API-Key": "", "Authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 200
    second = hub.settings.api_key[1]
    assert (await hub.api.get(ORDERS, headers={"X-API-Key": second})).status_code == 200


async def test_health_and_docs_need_no_key(hub: Hub) -> None:
    async def healthy() -> httpx.Response | None:
        # The workers have just started: their first polls may not have reached Temporal.
        response = await hub.api.get("/health", headers={"X-API-Key": ""})
        return response if response.status_code == 200 else None

    response = await eventually(healthy, timeout=10)
    assert response.json()["checks"] == {"database": "ok", "temporal": "ok", "workers": "ok"}
    assert (await hub.api.get("/openapi.json", headers={"X-API-Key": ""})).status_code == 200
