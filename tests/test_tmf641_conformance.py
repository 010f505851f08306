"""The TMF641 API's real answers, held to the official v4.0.0 Swagger document.

One hub (real worker, real Temporal dev server, simulators on loopback) answers every operation
the hub offers: create, retrieve and list orders and cancellations, with ``fields=`` and
paging, the replayed and the conflicting create, a held order (a parked step), and the errors.
Each answer is checked against the schema the document gives that operation and status
(:mod:`tests.tmf641_spec`), and against ``null`` anywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from api.main import create_app
from api.tmf641 import CANCEL_SERVICE_ORDER_ATTRIBUTES, SERVICE_ORDER_ATTRIBUTES
from hub.models import OrderStateChange
from hub.settings import Settings
from tests.conftest import Hub, Simulators, eventually, free_port
from tests.factories import new_identity, order
from tests.test_api_security import api_routes
from tests.tmf641_spec import (
    BASE_PATH,
    EXTENSIONS,
    SPEC_PATH,
    assert_conforms,
    attributes,
    documented,
    spec,
)

ORDERS = f"{BASE_PATH}/serviceOrder"
CANCEL = f"{BASE_PATH}/cancelServiceOrder"
LETTERS = "/deadLetters"


def test_the_document_is_tm_forums_v4_0_0() -> None:
    document = spec()
    assert (document["swagger"], document["info"]["version"]) == ("2.0", "4.0.0")
    assert document["basePath"] == BASE_PATH
    assert len(SPEC_PATH.read_text(encoding="utf-8")) == 157_807  # as published (its README)


def test_fields_selects_the_documents_first_level_attributes_and_the_hubs_extensions() -> None:
    assert attributes("ServiceOrder") | EXTENSIONS["ServiceOrder"] == SERVICE_ORDER_ATTRIBUTES
    assert (
        attributes("CancelServiceOrder") | EXTENSIONS["CancelServiceOrder"]
        == CANCEL_SERVICE_ORDER_ATTRIBUTES
    )


async def _held(hub: Hub, order_id: str) -> dict[str, Any]:
    async def held() -> dict[str, Any] | None:
        body = (await hub.api.get(f"{ORDERS}/{order_id}")).json()
        return body if body["state"] == "held" else None

    return await eventually(held, timeout=30)


async def _ended(hub: Hub, order_id: str) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        body = (await hub.api.get(f"{ORDERS}/{order_id}")).json()
        return body if body["state"] in ("completed", "failed", "cancelled") else None

    return await eventually(ended, timeout=60)


async def test_every_answer_holds_to_the_document(hub: Hub, sims: Simulators) -> None:
    api = hub.api
    # --- create: 201, then the same body again (200), then another body (409) ----------------
    identity = new_identity()
    body = order(identity)
    del body["relatedParty"][0]["@referredType"]  # the hub fills what the order leaves out
    created = assert_conforms(await api.post(ORDERS, json=body))
    assert created["state"] == "acknowledged" and "completionDate" not in created
    assert created["relatedParty"][0]["@referredType"] == "Customer"
    assert created["relatedParty"][0]["@type"] == "RelatedParty"
    order_id = created["id"]
    replayed = await api.post(ORDERS, json=body)
    assert replayed.status_code == 200 and assert_conforms(replayed)["id"] == order_id
    # The same body, said differently (keys in another order), is the same body.
    reordered = dict(reversed(list(body.items())))
    assert (await api.post(ORDERS, json=reordered)).status_code == 200
    conflict = await api.post(ORDERS, json={**body, "description": "another order"})
    assert conflict.status_code == 409
    error = assert_conforms(conflict)
    assert order_id in error["message"] and body["externalId"] in error["message"]

    # --- retrieve and list, with fields= ----------------------------------------------------
    assert_conforms(await api.get(f"{ORDERS}/{order_id}"))
    chosen = assert_conforms(
        await api.get(f"{ORDERS}/{order_id}", params={"fields": "state, externalId"})
    )
    assert set(chosen) == {"id", "href", "state", "externalId"}
    unknown = await api.get(f"{ORDERS}/{order_id}", params={"fields": "state,colour"})
    assert unknown.status_code == 400 and "'colour'" in assert_conforms(unknown)["message"]
    nested = await api.get(ORDERS, params={"fields": "serviceOrderItem.state"})
    assert nested.status_code == 400 and assert_conforms(nested)["code"] == "400"
    listed = await api.get(ORDERS, params={"externalId": body["externalId"], "fields": "state"})
    assert [set(o) for o in assert_conforms(listed)] == [{"id", "href", "state"}]
    assert listed.headers["X-Total-Count"] == "1"

    done = await _ended(hub, order_id)
    assert done["state"] == "completed", done.get("errorMessage")
    assert_conforms(await api.get(f"{ORDERS}/{order_id}"))
    assert "completionDate" in done
    refused = await api.post(CANCEL, json={"serviceOrder": {"id": order_id}})
    assert refused.status_code == 409 and "completed" in assert_conforms(refused)["message"]

    # --- held: a parked step holds the order; cancelled while held ---------------------------
    other = new_identity()
    await sims.fault("hss", operation="createSubscriber", match=other["imsi"], kind="transient")
    held_id = assert_conforms(await api.post(ORDERS, json=order(other)))["id"]
    held = await _held(hub, held_id)
    assert_conforms(await api.get(f"{ORDERS}/{held_id}"))
    [letter] = (await api.get(LETTERS, params={"orderId": held_id, "status": "parked"})).json()
    [message] = held["errorMessage"]
    assert (message["code"], message["status"]) == ("held", "held")
    for named in (letter["id"], letter["step"], "gave up retrying"):
        assert named in message["message"]
    assert held["serviceOrderItem"][0]["state"] == "held"
    listed = await api.get(ORDERS, params={"state": "held", "fields": "state,errorMessage"})
    assert held_id in [o["id"] for o in assert_conforms(listed)]

    accepted = await api.post(
        CANCEL, json={"serviceOrder": {"id": held_id}, "cancellationReason": "customer left"}
    )
    assert accepted.status_code == 201
    cancel = assert_conforms(accepted)
    assert "effectiveCancellationDate" not in cancel and cancel["state"] == "inProgress"
    assert accepted.headers["Location"].endswith(f"/cancelServiceOrder/{cancel['id']}")
    again = await api.post(CANCEL, json={"serviceOrder": {"id": held_id}})
    assert again.status_code == 200 and assert_conforms(again)["id"] == cancel["id"]

    ended = await _ended(hub, held_id)
    assert ended["state"] == "cancelled" and "errorMessage" not in ended
    assert_conforms(await api.get(f"{ORDERS}/{held_id}"))
    closed = assert_conforms(await api.get(f"{CANCEL}/{cancel['id']}"))
    assert closed["state"] == "done" and "effectiveCancellationDate" in closed
    async with hub.sessions() as session:
        moves = (
            await session.exec(
                select(OrderStateChange.from_state, OrderStateChange.to_state)
                .where(
                    OrderStateChange.order_id == held_id, col(OrderStateChange.item_id).is_(None)
                )
                .order_by(col(OrderStateChange.id))
            )
        ).all()
    assert [tuple(m) for m in moves] == [
        ("acknowledged", "inProgress"),
        ("inProgress", "held"),
        ("held", "inProgress"),
        ("inProgress", "cancelled"),
    ]

    # --- the cancellations' list: filters, paging, count headers, fields= --------------------
    by_order = await api.get(CANCEL, params={"serviceOrder.id": held_id})
    assert [c["id"] for c in assert_conforms(by_order)] == [cancel["id"]]
    assert by_order.headers["X-Total-Count"] == "1"
    done_page = await api.get(CANCEL, params={"state": "done", "limit": 1, "offset": 0})
    assert len(assert_conforms(done_page)) == 1
    assert int(done_page.headers["X-Total-Count"]) >= 1
    past_the_end = await api.get(CANCEL, params={"offset": 1000})
    assert assert_conforms(past_the_end) == [] and past_the_end.headers["X-Result-Count"] == "0"
    chosen_cancel = await api.get(f"{CANCEL}/{cancel['id']}", params={"fields": "state"})
    assert set(assert_conforms(chosen_cancel)) == {"id", "href", "state"}
    listed_cancels = await api.get(CANCEL, params={"fields": "serviceOrder"})
    assert all(set(c) == {"id", "href", "serviceOrder"} for c in assert_conforms(listed_cancels))
    for bad in ({"state": "acknowledged"}, {"fields": "reason"}, {"limit": 0}):
        refused = await api.get(CANCEL, params=bad)
        assert refused.status_code == 400, bad
        assert_conforms(refused)

    # --- errors ------------------------------------------------------------------------------
    for path in (f"{ORDERS}/nope", f"{CANCEL}/nope"):
        missing = await api.get(path)
        assert missing.status_code == 404 and assert_conforms(missing)["code"] == "404"
    for method in ("PATCH", "DELETE"):  # an order changes through its workflow only
        refused = await api.request(method, f"{ORDERS}/{order_id}", json={})
        assert refused.status_code == 405 and assert_conforms(refused)["code"] == "405"
    invalid = await api.post(ORDERS, json={"serviceOrderItem": []})
    assert invalid.status_code == 400 and "serviceOrderItem" in assert_conforms(invalid)["message"]


API_KEY = "k" * 30


@pytest.fixture
def app(tmp_path: Path) -> Any:
    """The API alone: what is refused before any handler runs needs no worker nor Temporal."""
    return create_app(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            environment="test",
            database_url=f"sqlite:///{tmp_path / 'hub.db'}",
            temporal_address=f"127.0.0.1:{free_port()}",
            api_key=[API_KEY],
        )
    )


@pytest.fixture
async def bare_api(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub.test"
        ) as client,
    ):
        yield client


async def test_a_body_that_is_not_json_is_415_on_every_tmf_route(
    app: Any, bare_api: httpx.AsyncClient
) -> None:
    routes = sorted(
        (method, route.path)
        for route in api_routes(app.routes)
        if route.path.startswith("/tmf-api/") and route.body_field is not None
        for method in route.methods
    )
    assert ("POST", ORDERS) in routes and ("POST", CANCEL) in routes
    headers = {"X-API-Key": API_KEY}
    for method, path in routes:
        for content_type, content in (
            ("text/plain", b'{"serviceOrderItem": []}'),
            ("application/x-www-form-urlencoded", b"serviceOrderItem=1"),
            (None, b"{}"),
        ):
            sent = {**headers, **({"Content-Type": content_type} if content_type else {})}
            response = await bare_api.request(method, path, content=content, headers=sent)
            assert response.status_code == 415, (method, path, response.text)
            assert (content_type or "none") in response.json()["message"]
            if path.startswith(BASE_PATH) and documented(method, path):
                assert_conforms(response)
            else:  # a route of the hub's own beside TMF641's: TMF630's error body all the same
                assert {"code", "reason", "message", "status"} <= set(response.json())


async def test_an_unauthenticated_caller_gets_the_documents_error(
    bare_api: httpx.AsyncClient,
) -> None:
    for path in (ORDERS, CANCEL, f"{ORDERS}/x", f"{CANCEL}/x"):
        answer = await bare_api.get(path)
        assert answer.status_code == 401
        assert_conforms(answer)
