"""Alarms from the processes to the NMS: real dev server, simulators, worker and net-snmp.

The worker is built from settings as in production (``HUB_SNMP_TARGETS`` and friends), the
NMS is ``snmptrapd`` on loopback, and every assertion reads what it logged: a failed order
raises ``major``, a parked step raises and its repair clears with the same notification id,
a compensation that cannot finish raises ``critical``, and an NMS that does not answer holds
up no order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.worker import Replayer

from adapters.snmp import (
    ADDITIONAL_TEXT_OID,
    ALARM_ACTIVE_OID,
    ALARM_CLEAR_OID,
    EVENT_TYPE_OID,
    MANAGED_OBJECT_OID,
    NOTIFICATION_ID_OID,
    PROBABLE_CAUSE_OID,
    SEVERITY_OID,
)
from hub.alarms import EventType, PerceivedSeverity, ProbableCause, notification_id
from hub.errors import ValidationFailure
from hub.settings import RetrySettings, Settings
from tests.conftest import Hub, Simulators, eventually, process_failure
from tests.factories import new_identity, order
from tests.snmp_fixtures import Notification, TrapReceiver, free_udp_port, start_trap_receiver
from worker import build_notifier
from workflows.service_activation import ServiceActivation

ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
LETTERS = "/deadLetters"
COMMUNITY = "nms-c0mmunity-7d1e"
USER = "hubnoc"
AUTH_KEY = "auth-s3cret-5a0f"
PRIV_KEY = "priv-s3cret-c4e2"
HUB_ENGINE_ID = "8000d90304" + b"hub-alarms".hex()
#: The alarms' retry policy in these tests: small, so a silent NMS costs little.
ALARM_RETRY = RetrySettings(
    initial_interval=timedelta(milliseconds=100),
    maximum_interval=timedelta(milliseconds=200),
    maximum_attempts=2,
    attempt_timeout=timedelta(seconds=5),
    schedule_to_close=timedelta(seconds=15),
)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def nms(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TrapReceiver | None]:
    """snmptrapd as the NMS; ``silent`` (indirect parameter): no NMS at all."""
    if getattr(request, "param", "snmptrapd") == "silent":
        yield None
        return
    workdir = tmp_path / "nms"
    workdir.mkdir()
    receiver = start_trap_receiver(
        workdir,
        community=COMMUNITY,
        user=USER,
        auth_key=AUTH_KEY,
        priv_key=PRIV_KEY,
        sender_engine_id=HUB_ENGINE_ID,
    )
    yield receiver
    receiver.daemon.stop()


@pytest.fixture
def snmp_version() -> str:
    return "v2c"


@pytest.fixture
def hub_settings(  # type: ignore[no-untyped-def]
    hub_settings, nms: TrapReceiver | None, snmp_version: str
) -> Settings:
    """The hub's alarms go to ``nms``: v2c traps by default, v3 traps where a test asks, and
    informs to a port where nothing listens when there is no NMS."""
    if nms is None:
        hub_settings.snmp_targets = SecretStr(f"v2c:{COMMUNITY}@127.0.0.1:{free_udp_port()}")
        hub_settings.snmp_notify_type = "inform"
        hub_settings.snmp_timeout = 0.3
        hub_settings.snmp_retries = 1
    elif snmp_version == "v3":
        spec = f"v3:{USER}:{AUTH_KEY}:{PRIV_KEY}@127.0.0.1:{nms.port}"
        hub_settings.snmp_targets = SecretStr(spec)
        hub_settings.snmp_engine_id = HUB_ENGINE_ID
    else:
        hub_settings.snmp_targets = SecretStr(f"v2c:{COMMUNITY}@127.0.0.1:{nms.port}")
    hub_settings.retry = {**hub_settings.retry, "alarms": ALARM_RETRY}
    hub_settings.park_timeout = timedelta(seconds=60)
    return hub_settings


# --- helpers -----------------------------------------------------------------------------------


async def submit(hub: Hub, body: dict[str, Any]) -> str:
    response = await hub.api.post(ORDERS, json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def final_state(hub: Hub, order_id: str, timeout: float = 60) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        body = (await hub.api.get(f"{ORDERS}/{order_id}")).json()
        return body if body["state"] in ("completed", "failed", "cancelled") else None

    return await eventually(done, timeout=timeout)


async def parked_letter(hub: Hub, order_id: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        rows = (await hub.api.get(LETTERS, params={"orderId": order_id, "status": "parked"})).json()
        return rows[0] if rows else None

    return await eventually(find, timeout=30)


def alarm_id(order_id: str, kind: str) -> int:
    """The notification id the hub gives the alarm ``kind`` of this order's workflow."""
    return notification_id(f"service-order-{order_id}/{kind}")


async def received(nms: TrapReceiver, alarm: int, count: int = 1) -> list[Notification]:
    async def check() -> list[Notification]:
        found = nms.with_id(alarm)
        return found if len(found) >= count else []

    return await eventually(check, timeout=30)


async def replays(hub: Hub, order_id: str) -> None:
    """The run, alarms and all, replays against the current workflow code."""
    history = await hub.client.get_workflow_handle(f"service-order-{order_id}").fetch_history()
    replayer = Replayer(workflows=[ServiceActivation], data_converter=hub.client.data_converter)
    await replayer.replay_workflow(history)


def of_order(nms: TrapReceiver, order_id: str) -> list[Notification]:
    return [
        n
        for n in nms.notifications()
        if n.varbinds.get("." + MANAGED_OBJECT_OID, "").startswith(f"order={order_id}")
    ]


def assert_alarm(
    notification: Notification,
    *,
    severity: PerceivedSeverity,
    managed_object: str,
    event_type: EventType,
    cause: ProbableCause,
) -> None:
    cleared = severity is PerceivedSeverity.CLEARED
    assert notification.trap_oid == (ALARM_CLEAR_OID if cleared else ALARM_ACTIVE_OID)
    assert notification.value(SEVERITY_OID) == str(int(severity))
    assert notification.value(MANAGED_OBJECT_OID) == managed_object
    assert notification.value(EVENT_TYPE_OID) == str(int(event_type))
    assert notification.value(PROBABLE_CAUSE_OID) == str(int(cause))


# --- the processes raise and clear ---------------------------------------------------------------


async def test_a_failed_order_raises_a_major_alarm_naming_the_step(
    hub: Hub, sims: Simulators, nms: TrapReceiver
) -> None:
    identity = new_identity()
    await sims.fault("crm", operation="upsertService", match=identity["imsi"], kind="permanent")
    order_id = await submit(hub, order(identity))
    done = await final_state(hub, order_id)
    assert done["state"] == "failed"

    [alarm] = await received(nms, alarm_id(order_id, "failed"))
    assert_alarm(
        alarm,
        severity=PerceivedSeverity.MAJOR,
        managed_object=f"order={order_id}/step=1/crm.activate_service/system=crm",
        event_type=EventType.PROCESSING_ERROR_ALARM,
        cause=ProbableCause.APPLICATION_SUBSYSTEM_FAILURE,
    )
    text = alarm.value(ADDITIONAL_TEXT_OID)
    assert text.startswith("service-activation failed: 1/crm.activate_service:")
    # Every compensation ran: nothing critical, and no Ki or OPc in what the NMS got.
    handle = hub.client.get_workflow_handle(f"service-order-{order_id}")
    await process_failure(handle, "OrderFailed")
    assert [n.value(SEVERITY_OID) for n in of_order(nms, order_id)] == ["4"]
    assert "465b5ce8b199b49faa5f0a2ee238a6bc" not in nms.daemon.output()
    await replays(hub, order_id)


@pytest.mark.parametrize("snmp_version", ["v3"])
async def test_a_parked_step_raises_and_its_retry_clears_with_the_same_id(
    hub: Hub, sims: Simulators, nms: TrapReceiver, snmp_version: str
) -> None:
    identity = new_identity()
    rule = await sims.fault(
        "billing", operation="CreateSubscription", match=identity["imsi"], kind="transient"
    )
    order_id = await submit(hub, order(identity))
    letter = await parked_letter(hub, order_id)
    step = "1/billing.create_subscription"
    kind = f"dead-letter/{step}"
    where = f"order={order_id}/step={step}/system=billing"

    [raised] = await received(nms, alarm_id(order_id, kind))
    assert_alarm(
        raised,
        severity=PerceivedSeverity.MAJOR,
        managed_object=where,
        event_type=EventType.COMMUNICATIONS_ALARM,
        cause=ProbableCause.COMMUNICATIONS_SUBSYSTEM_FAILURE,
    )
    assert letter["id"] in raised.value(ADDITIONAL_TEXT_OID)

    await sims.http.delete(f"{sims.urls['billing']}/_sim/faults/{rule['id']}")
    response = await hub.api.post(f"{LETTERS}/{letter['id']}/retry", json={"decidedBy": "noc"})
    assert response.status_code == 200, response.text
    assert (await final_state(hub, order_id))["state"] == "completed"

    first, clear = await received(nms, alarm_id(order_id, kind), count=2)
    assert first.varbinds == raised.varbinds
    assert_alarm(
        clear,
        severity=PerceivedSeverity.CLEARED,
        managed_object=where,
        event_type=EventType.COMMUNICATIONS_ALARM,
        cause=ProbableCause.COMMUNICATIONS_SUBSYSTEM_FAILURE,
    )
    assert clear.value(ADDITIONAL_TEXT_OID) == f"{step} retried successfully"
    # A completed order leaves no alarm of its own behind.
    await hub.client.get_workflow_handle(f"service-order-{order_id}").result()
    assert not nms.with_id(alarm_id(order_id, "failed"))
    await replays(hub, order_id)


async def test_an_aborted_park_clears_and_the_failed_order_raises(
    hub: Hub, sims: Simulators, nms: TrapReceiver
) -> None:
    identity = new_identity()
    await sims.fault("hss", operation="createSubscriber", match=identity["imsi"], kind="transient")
    order_id = await submit(hub, order(identity))
    letter = await parked_letter(hub, order_id)
    parked_kind = "dead-letter/1/hss.create_subscriber"
    await received(nms, alarm_id(order_id, parked_kind))
    response = await hub.api.post(
        f"{LETTERS}/{letter['id']}/abort", json={"decidedBy": "noc-jane", "reason": "give up"}
    )
    assert response.status_code == 200, response.text
    assert (await final_state(hub, order_id))["state"] == "failed"

    _, clear = await received(nms, alarm_id(order_id, parked_kind), count=2)
    assert clear.value(SEVERITY_OID) == str(int(PerceivedSeverity.CLEARED))
    decider = response.json()["decidedBy"]  # the caller's key, not the body's "noc-jane"
    assert decider.startswith("api-key:") and decider != "noc-jane"
    assert clear.value(ADDITIONAL_TEXT_OID) == f"1/hss.create_subscriber aborted by {decider}"
    [failed] = await received(nms, alarm_id(order_id, "failed"))
    # The order failed because the HSS stayed unreachable: a communications alarm.
    assert_alarm(
        failed,
        severity=PerceivedSeverity.MAJOR,
        managed_object=f"order={order_id}/step=1/hss.create_subscriber/system=hss",
        event_type=EventType.COMMUNICATIONS_ALARM,
        cause=ProbableCause.COMMUNICATIONS_SUBSYSTEM_FAILURE,
    )
    # Sent in the order they were raised: the park's clear before the order's failure.
    ids = [n.value(NOTIFICATION_ID_OID) for n in of_order(nms, order_id)]
    assert ids == [str(alarm_id(order_id, k)) for k in (parked_kind, parked_kind, "failed")]
    handle = hub.client.get_workflow_handle(f"service-order-{order_id}")
    await process_failure(handle, "OrderFailed")
    await replays(hub, order_id)


async def test_a_compensation_that_fails_raises_critical(
    hub: Hub, sims: Simulators, nms: TrapReceiver
) -> None:
    identity = new_identity()
    await sims.fault("crm", operation="upsertService", match=identity["imsi"], kind="permanent")
    await sims.fault("billing", operation="VoidSubscription", kind="permanent")
    order_id = await submit(hub, order(identity))
    done = await final_state(hub, order_id)
    assert done["state"] == "failed"
    assert "compensation failed" in done["errorMessage"][0]["message"]

    step = "1/billing.void_subscription"
    [critical] = await received(nms, alarm_id(order_id, f"compensation/{step}"))
    assert_alarm(
        critical,
        severity=PerceivedSeverity.CRITICAL,
        managed_object=f"order={order_id}/step={step}/system=billing",
        event_type=EventType.PROCESSING_ERROR_ALARM,
        cause=ProbableCause.DATABASE_INCONSISTENCY,
    )
    assert critical.value(ADDITIONAL_TEXT_OID).startswith(
        f"compensation given up, repair by hand: {step}:"
    )
    await received(nms, alarm_id(order_id, "failed"))  # and the order's own major alarm


async def test_a_parked_compensation_is_critical_until_retried(
    hub: Hub, sims: Simulators, nms: TrapReceiver
) -> None:
    identity = new_identity()
    await sims.fault("crm", operation="upsertService", match=identity["imsi"], kind="permanent")
    void = await sims.fault("billing", operation="VoidSubscription", kind="transient")
    order_id = await submit(hub, order(identity))
    letter = await parked_letter(hub, order_id)
    step = "1/billing.void_subscription"
    assert letter["step"] == step and letter["compensation"] is True
    kind = f"compensation/{step}"
    [raised] = await received(nms, alarm_id(order_id, kind))
    assert raised.value(SEVERITY_OID) == str(int(PerceivedSeverity.CRITICAL))
    assert raised.value(MANAGED_OBJECT_OID) == f"order={order_id}/step={step}/system=billing"

    await sims.http.delete(f"{sims.urls['billing']}/_sim/faults/{void['id']}")
    assert (await hub.api.post(f"{LETTERS}/{letter['id']}/retry", json={})).status_code == 200
    assert (await final_state(hub, order_id))["state"] == "failed"
    _, clear = await received(nms, alarm_id(order_id, kind), count=2)
    assert clear.trap_oid == ALARM_CLEAR_OID
    assert clear.value(ADDITIONAL_TEXT_OID) == f"{step} retried successfully"
    await process_failure(
        hub.client.get_workflow_handle(f"service-order-{order_id}"), "OrderFailed"
    )
    await replays(hub, order_id)


# --- an NMS that does not answer -----------------------------------------------------------------


@pytest.mark.parametrize("nms", ["silent"], indirect=True)
async def test_an_nms_that_does_not_answer_holds_up_no_order(
    hub: Hub, sims: Simulators, nms: None
) -> None:
    identity = new_identity()
    await sims.fault("crm", operation="upsertService", match=identity["imsi"], kind="permanent")
    started = time.monotonic()
    order_id = await submit(hub, order(identity))
    assert (await final_state(hub, order_id))["state"] == "failed"
    handle = hub.client.get_workflow_handle(f"service-order-{order_id}")
    result = await process_failure(handle, "OrderFailed")
    closed_after = time.monotonic() - started
    assert result["state"] == "failed"  # the order's own failure: the alarm failed nothing

    history = await handle.fetch_history()
    alarm_events = {
        e.event_id
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "alarms.raise"
    }
    failures = [
        e.activity_task_failed_event_attributes
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
        and e.activity_task_failed_event_attributes.scheduled_event_id in alarm_events
    ]
    assert len(alarm_events) == 1
    [failure] = failures
    assert failure.failure.application_failure_info.type == "AlarmNotDelivered"
    starts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.scheduled_event_id in alarm_events
    ]
    assert starts == [ALARM_RETRY.maximum_attempts]  # tried as often as the policy allows
    # Two attempts of two unanswered informs 0.3 s apart, plus the order itself: far below
    # the alarm policy's 15 s schedule-to-close budget.
    assert closed_after < 15


# --- settings --------------------------------------------------------------------------------


def test_snmp_settings_keep_their_secrets_out_of_reprs_and_errors() -> None:
    spec = f"v2c:{COMMUNITY}@nms-a.example:10162,v3:{USER}:{AUTH_KEY}:{PRIV_KEY}@nms-b.example"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        snmp_targets=spec,
        snmp_engine_id=HUB_ENGINE_ID,
        snmp_notify_type="inform",
    )
    notifier = build_notifier(settings)
    assert notifier.target_labels == ["v2c@nms-a.example:10162", f"v3:{USER}@nms-b.example:162"]
    assert notifier.notify_type == "inform" and notifier.engine_id == HUB_ENGINE_ID
    for text in (repr(settings), str(settings.model_dump()), repr(notifier.targets)):
        for secret in (COMMUNITY, AUTH_KEY, PRIV_KEY):
            assert secret not in text

    broken = Settings(_env_file=None, snmp_targets=f"v3:{USER}:{AUTH_KEY}@nms")  # type: ignore[call-arg]
    with pytest.raises(ValidationFailure) as refused:
        build_notifier(broken)
    assert "snmp target #1" in str(refused.value) and AUTH_KEY not in str(refused.value)
    assert build_notifier(Settings(_env_file=None)).target_labels == []  # type: ignore[call-arg]
