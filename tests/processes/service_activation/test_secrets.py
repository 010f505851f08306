"""Subscriber keys through a whole order: the HSS gets them, nothing an operator sees holds them.

The Temporal Web UI shows a history through the hub's codec, which decrypts every payload. What
it shows is checked here as it is shown: the history fetched from the dev server, every payload
decoded with the payload codec, searched for the keys in every spelling they could take.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToJson
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.hss import CreateSubscriberInput, HssActivities
from adapters.hss import HssClient, QosProfile
from api.tmf641 import ServiceOrderCreate, customer_of, order_items
from hub.codec import EncryptionCodec
from hub.db import session_scope
from hub.models import ServiceOrder, ServiceOrderItem
from hub.sealing import Sealer, Unsealer, generate_seal_key, public_spec
from tests.conftest import (
    PAYLOAD_KEYS,
    SEAL_KEY,
    Hub,
    Simulators,
    eventually,
    process_failure,
)
from tests.factories import TS35208_K, TS35208_OP, TS35208_OPC, add_item, new_identity, order
from tests.test_dead_letters import parked_letter
from tests.test_service_orders import final_state, run_order, submit, subscriber
from workflows.service_activation import (
    ServiceActivation,
    ServiceActivationInput,
    ServiceItem,
    workflow_id_for,
)

SECRETS = (TS35208_K, TS35208_OP, TS35208_OPC)


def _payloads(message: Message) -> Iterator[Payload]:
    """Every Payload inside ``message``: fields, repeated fields and map values."""
    if isinstance(message, Payload):
        yield message
        return
    for descriptor, value in message.ListFields():
        if descriptor.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if descriptor.message_type.GetOptions().map_entry:
            children = list(value.values())
            if children and not isinstance(children[0], Message):
                continue  # a map of scalars
        elif descriptor.is_repeated:
            children = list(value)
        else:
            children = [value]
        for child in children:
            yield from _payloads(child)


async def ui_view(hub: Hub, workflow_id: str) -> str:
    """The history as the Web UI shows it through the codec: decoded payloads, as text."""
    history = await hub.client.get_workflow_handle(workflow_id).fetch_history()
    document = History(events=history.events)
    codec = EncryptionCodec.from_specs(PAYLOAD_KEYS)
    texts = []
    for payload in _payloads(document):
        payload.CopyFrom((await codec.decode([payload]))[0])
        texts.append(payload.data.decode("utf-8", errors="replace"))
    # Failures, summaries and the like are plain fields; payload data as the UI renders it.
    return MessageToJson(document) + "\n" + "\n".join(texts)


def spellings(secret_hex: str) -> list[str]:
    """A key as it could show: hex in either case, base64 of its bytes."""
    raw = bytes.fromhex(secret_hex)
    return [
        secret_hex.lower(),
        secret_hex.upper(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ]


def assert_no_key_in(text: str) -> None:
    for secret in SECRETS:
        for spelling in spellings(secret):
            assert spelling not in text, f"key material in clear: {spelling[:6]}..."


async def test_an_orders_history_shows_no_key_through_the_codec(
    hub: Hub, sims: Simulators, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with_opc, with_op = new_identity(), new_identity()
    with_op["customer"] = with_opc["customer"]
    body: dict[str, Any] = order(
        with_opc,
        add_item(with_opc, item_id="a", ki=TS35208_K, opc=TS35208_OPC),
        add_item(with_op, item_id="b", ki=TS35208_K, opc=None, op=TS35208_OP),
    )
    done = await run_order(hub, body)
    assert done["state"] == "completed", done.get("errorMessage")

    hss = await sims.state("hss")
    for identity in (with_opc, with_op):
        record = subscriber(hss, identity["imsi"])
        assert record is not None
        assert record["security"]["k"] == TS35208_K
        assert record["security"]["opc"] == TS35208_OPC

    shown = await ui_view(hub, workflow_id_for(done["id"]))
    # The view is really decoded: the order's IMSIs are there to read, the keys as tokens.
    assert with_opc["imsi"] in shown and with_op["imsi"] in shown
    assert "sealed:v1:seal-1:" in shown
    assert_no_key_in(shown)
    assert_no_key_in(logged(caplog))


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record logged in this process (the worker's and the API's), with tracebacks."""
    formatter = logging.Formatter("%(name)s %(message)s %(args)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


async def test_an_hss_that_echoes_the_key_puts_it_nowhere(
    hub: Hub, sims: Simulators, caplog: pytest.LogCaptureFixture
) -> None:
    """The HSS quotes the refused key in its error: not in history, logs, dead letter, order."""
    caplog.set_level(logging.DEBUG)
    identity = new_identity()
    echo = f"invalid security.k {TS35208_K.upper()} / opc {TS35208_OPC}"
    rule = await sims.fault(
        "hss", operation="createSubscriber", match=identity["imsi"], message=echo
    )
    created = await submit(hub, order(identity))
    parked = await parked_letter(hub, created["id"])
    assert parked["step"] == "1/hss.create_subscriber"
    assert "invalid security.k *** / opc ***" in parked["lastError"]
    assert parked["input"]["ki"] == "***" and parked["input"]["opc"] == "***"
    assert_no_key_in(str(parked))

    # The step parked with its sealed input; retried once the HSS is repaired, it completes.
    await sims.http.delete(f"{sims.urls['hss']}/_sim/faults/{rule['id']}")
    response = await hub.api.post(
        f"/deadLetters/{parked['id']}/retry", json={"decidedBy": "noc-jane"}
    )
    assert response.status_code == 200, response.text
    done = await final_state(hub, created["id"])
    assert done["state"] == "completed", done.get("errorMessage")
    record = subscriber(await sims.state("hss"), identity["imsi"])
    assert record is not None and record["security"]["k"] == TS35208_K
    assert_no_key_in(await ui_view(hub, workflow_id_for(created["id"])))
    assert "Completing activity as failed" in logged(caplog)  # the failures were logged
    assert_no_key_in(logged(caplog))


# --- orders started directly, as histories from before sealing hold them --------------------


async def start_recorded(hub: Hub, body: dict[str, Any], items: list[ServiceItem]) -> Any:
    """Start the workflow as the API does, rows first, with ``items`` exactly as given."""
    request = ServiceOrderCreate.model_validate(body)
    order_id = uuid.uuid4().hex
    async with session_scope(hub.sessions) as session:
        session.add(
            ServiceOrder(
                id=order_id,
                external_id=request.externalId,
                customer_id=customer_of(request).id,
                workflow_id=workflow_id_for(order_id),
            )
        )
        session.add_all(
            ServiceOrderItem(order_id=order_id, item_id=i.id, action=i.action) for i in items
        )
    return await hub.client.start_workflow(
        ServiceActivation.run,
        ServiceActivationInput(
            order_id=order_id,
            customer=customer_of(request),
            items=items,
            external_id=request.externalId,
        ),
        id=workflow_id_for(order_id),
        task_queue=hub.settings.task_queue,
    )


async def test_an_order_from_before_sealing_still_completes(hub: Hub, sims: Simulators) -> None:
    """Plain Ki and OPc, and plain OP for the activity to derive OPc from: as the API
    built the workflow input before sealing, so in-flight histories look like this."""
    with_opc, with_op = new_identity(), new_identity()
    with_op["customer"] = with_opc["customer"]
    body = order(
        with_opc,
        add_item(with_opc, item_id="a"),
        add_item(with_op, item_id="b", opc=None, op=TS35208_OP),
    )
    items = order_items(ServiceOrderCreate.model_validate(body), sealer=None)
    items[1].service.opc, items[1].service.op = None, TS35208_OP
    assert (items[0].service.ki, items[0].service.opc) == (TS35208_K, TS35208_OPC)

    result = await (await start_recorded(hub, body, items)).result()
    assert result.state == "completed", result.error_message
    hss = await sims.state("hss")
    for identity in (with_opc, with_op):
        record = subscriber(hss, identity["imsi"])
        assert record is not None
        assert record["security"] == {**record["security"], "k": TS35208_K, "opc": TS35208_OPC}


async def test_a_key_moved_to_another_subscriber_fails_the_order(
    hub: Hub, sims: Simulators
) -> None:
    identity, victim = new_identity(), new_identity()
    body = order(identity)
    sealer = hub.settings.sealer()
    assert sealer is not None
    items = order_items(ServiceOrderCreate.model_validate(body), sealer=sealer)
    # Someone who can write workflow inputs copies another subscriber's sealed Ki.
    moved = sealer.seal("ki", TS35208_K, context=victim["imsi"])
    items[0].service.ki = moved

    result = await process_failure(await start_recorded(hub, body, items), "OrderFailed")
    assert result["state"] == "failed"
    assert "ki: the token under key id 'seal-1' does not open" in result["error_message"]
    assert moved.rsplit(":", 1)[1][:16] not in result["error_message"]
    assert subscriber(await sims.state("hss"), identity["imsi"]) is None


# --- the HSS activity against the HSS simulator: rotation, missing keys ---------------------


@pytest.fixture
async def hss_client(sims: Simulators) -> Any:
    client = HssClient(sims.urls["hss"], timeout=5)
    yield client
    await client.aclose()


def create_input(imsi: str, *, ki: str, opc: str) -> CreateSubscriberInput:
    return CreateSubscriberInput(
        imsi=imsi,
        msisdn="+43660000001",
        ki=ki,
        opc=opc,
        qos=QosProfile(qci=9, ambr_downlink=10**8, ambr_uplink=10**7),
        idempotency_key=f"test/{uuid.uuid4().hex}",
    )


async def test_a_key_sealed_under_the_previous_seal_key_still_provisions(
    hss_client: HssClient, sims: Simulators
) -> None:
    """Rotation: the API seals with the new key; orders sealed before carry the old one, and
    unseal while the worker keeps it configured."""
    new = generate_seal_key("seal-2")
    old_sealer = Sealer.from_spec(public_spec(SEAL_KEY))
    imsi = new_identity()["imsi"]
    data = create_input(
        imsi,
        ki=old_sealer.seal("ki", TS35208_K, context=imsi),
        opc=old_sealer.seal("opc", TS35208_OPC, context=imsi),
    )
    rotated = HssActivities(hss_client, Unsealer.from_specs([new, SEAL_KEY]))
    await ActivityEnvironment().run(rotated.create_subscriber, data)

    async def provisioned() -> dict[str, Any] | None:
        return subscriber(await sims.state("hss"), imsi)

    record = await eventually(provisioned, timeout=5)
    assert (record["security"]["k"], record["security"]["opc"]) == (TS35208_K, TS35208_OPC)


async def test_a_worker_without_the_key_retries_and_names_only_the_key_id(
    hss_client: HssClient, sims: Simulators
) -> None:
    imsi = new_identity()["imsi"]
    sealer = Sealer.from_spec(public_spec(SEAL_KEY))
    token = sealer.seal("ki", TS35208_K, context=imsi)
    data = create_input(imsi, ki=token, opc=sealer.seal("opc", TS35208_OPC, context=imsi))
    for activities in (
        HssActivities(hss_client, Unsealer.from_specs([generate_seal_key("seal-2")])),
        HssActivities(hss_client, None),
    ):
        with pytest.raises(ApplicationError) as error:
            await ActivityEnvironment().run(activities.create_subscriber, data)
        # Retryable: the key may still be on its way to this worker; the order parks meanwhile.
        assert error.value.type == "SealKeyMissing" and not error.value.non_retryable
        assert token.rsplit(":", 1)[1][:16] not in str(error.value)
    assert "'seal-1'" in str(error.value) or "HUB_SEAL_KEYS" in str(error.value)
    assert subscriber(await sims.state("hss"), imsi) is None
