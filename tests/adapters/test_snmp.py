"""The SNMP adapter against real net-snmp daemons on loopback: snmptrapd as the NMS, snmpd as
a network element. Nothing on the wire is mocked."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.alarms import (
    ALARM_NOT_DELIVERED,
    AlarmActivities,
    RaiseAlarmInput,
    RaiseAlarmResult,
)
from adapters.snmp import (
    ADDITIONAL_TEXT_OID,
    ALARM_ACTIVE_OID,
    ALARM_CLEAR_OID,
    EVENT_TIME_OID,
    EVENT_TYPE_OID,
    MANAGED_OBJECT_OID,
    NOTIFICATION_ID_OID,
    PROBABLE_CAUSE_OID,
    SEVERITY_OID,
    SYS_DESCR_OID,
    SYS_UPTIME_OID,
    NotifyType,
    SnmpNotifier,
    SnmpTarget,
    date_and_time,
    get,
    notification_oid,
    parse_targets,
)
from hub.alarms import Alarm, EventType, PerceivedSeverity, ProbableCause, notification_id
from hub.errors import NotFoundError, PermanentError, TransientError, ValidationFailure
from tests.conftest import eventually
from tests.snmp_fixtures import (
    Agent,
    Notification,
    TrapReceiver,
    free_udp_port,
    start_agent,
    start_trap_receiver,
)

COMMUNITY = "c0mmunity-s3cret"
USER = "hubuser"
AUTH_KEY = "auth-s3cret-9f2c"
PRIV_KEY = "priv-s3cret-71ab"
SECRETS = (COMMUNITY, AUTH_KEY, PRIV_KEY)
#: The hub's engine id in these tests (RFC 3411 text format under the placeholder arc).
HUB_ENGINE_ID = "8000d90304" + b"hub-test".hex()
SYS_UPTIME_VB = "1.3.6.1.2.1.1.3.0"
TRAP_OID_VB = "1.3.6.1.6.3.1.1.4.1.0"

#: Short enough that "no answer" tests take well under a second.
FAST = {"timeout": 0.2, "retries": 1, "attempts": 2, "backoff": 0.01}


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[TrapReceiver]:
    workdir = tmp_path / "nms"
    workdir.mkdir()
    trapd = start_trap_receiver(
        workdir,
        community=COMMUNITY,
        user=USER,
        auth_key=AUTH_KEY,
        priv_key=PRIV_KEY,
        sender_engine_id=HUB_ENGINE_ID,
    )
    yield trapd
    trapd.daemon.stop()


@pytest.fixture
def second_receiver(tmp_path: Path) -> Iterator[TrapReceiver]:
    workdir = tmp_path / "nms2"
    workdir.mkdir()
    trapd = start_trap_receiver(
        workdir,
        community=COMMUNITY,
        user=USER,
        auth_key=AUTH_KEY,
        priv_key=PRIV_KEY,
        sender_engine_id=HUB_ENGINE_ID,
    )
    yield trapd
    trapd.daemon.stop()


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    workdir = tmp_path / "ne"
    workdir.mkdir()
    snmpd = start_agent(
        workdir,
        community=COMMUNITY,
        sys_descr="hub-test network element 1.0",
        user=USER,
        auth_key=AUTH_KEY,
        priv_key=PRIV_KEY,
    )
    yield snmpd
    snmpd.daemon.stop()


NotifierFactory = Callable[..., SnmpNotifier]


@pytest.fixture
async def notifiers() -> AsyncIterator[NotifierFactory]:
    made: list[SnmpNotifier] = []

    def make(
        targets: list[SnmpTarget], notify_type: NotifyType = "trap", **options: Any
    ) -> SnmpNotifier:
        notifier = SnmpNotifier(
            targets, notify_type=notify_type, engine_id=HUB_ENGINE_ID, **options
        )
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        await notifier.aclose()


def v2c(port: int, community: str = COMMUNITY) -> SnmpTarget:
    return SnmpTarget.parse(f"v2c:{community}@127.0.0.1:{port}")


def v3(port: int, auth_key: str = AUTH_KEY) -> SnmpTarget:
    return SnmpTarget.parse(f"v3:{USER}:{auth_key}:{PRIV_KEY}@127.0.0.1:{port}")


def closed_port() -> int:
    """A UDP port where nothing listens (nothing else binds ports on 127.0.0.1 that fast)."""
    return free_udp_port()


def an_alarm(key: str, **changes: object) -> Alarm:
    fields: dict[str, object] = {
        "managed_object": f"order={key}/step=hss.create_subscriber/system=hss",
        "event_type": EventType.PROCESSING_ERROR_ALARM,
        "probable_cause": ProbableCause.APPLICATION_SUBSYSTEM_FAILURE,
        "severity": PerceivedSeverity.MAJOR,
        "text": "HSS create subscriber failed after 5 attempts: HTTP 503",
        "notification_id": notification_id(f"{key}/step-failed"),
        "event_time": datetime(2026, 3, 14, 15, 9, 26, 500_000, tzinfo=UTC),
        **changes,
    }
    return Alarm(**fields)  # type: ignore[arg-type]


async def received(receiver: TrapReceiver, alarm_id: int, count: int = 1) -> list[Notification]:
    async def check() -> list[Notification]:
        found = receiver.with_id(alarm_id)
        return found if len(found) >= count else []

    return await eventually(check, timeout=5.0, interval=0.02)


def assert_carries(notification: Notification, alarm: Alarm) -> None:
    names = list(notification.varbinds)
    # SNMPv2 order: sysUpTime.0, then snmpTrapOID.0, then the notification's objects.
    assert names[:2] == ["." + SYS_UPTIME_VB, "." + TRAP_OID_VB]
    assert notification.trap_oid == notification_oid(alarm)
    assert notification.value(NOTIFICATION_ID_OID) == str(alarm.notification_id)
    assert notification.value(MANAGED_OBJECT_OID) == alarm.managed_object
    assert notification.value(EVENT_TYPE_OID) == str(int(alarm.event_type))
    assert notification.value(PROBABLE_CAUSE_OID) == str(int(alarm.probable_cause))
    assert notification.value(SEVERITY_OID) == str(int(alarm.severity))
    assert notification.value(ADDITIONAL_TEXT_OID) == alarm.text
    event_time = bytes.fromhex(notification.value(EVENT_TIME_OID))
    assert event_time == date_and_time(alarm.event_time)


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def log_dump(caplog: pytest.LogCaptureFixture) -> str:
    """Messages *and* structured extras of every record: secrets may hide in either."""
    return "\n".join(f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records)


# --- notifications to snmptrapd ---------------------------------------------------------------


async def test_v2c_trap_reaches_the_nms(receiver: TrapReceiver, notifiers: NotifierFactory) -> None:
    alarm = an_alarm("ord-v2c")
    failed = await notifiers([v2c(receiver.port)]).send(alarm)
    assert failed == []
    [notification] = await received(receiver, alarm.notification_id)
    assert_carries(notification, alarm)
    assert notification.trap_oid == ALARM_ACTIVE_OID
    assert notification.value(SEVERITY_OID) == "4"  # major
    assert notification.types["." + NOTIFICATION_ID_OID] == "Gauge32"  # Unsigned32 on the wire


async def test_v3_authpriv_trap_reaches_the_nms(
    receiver: TrapReceiver, notifiers: NotifierFactory
) -> None:
    # snmptrapd only logs v3 messages of hubuser at authPriv ("authUser log hubuser priv"),
    # with keys localized to the hub's engine id: a wrong engine id or key would be dropped.
    alarm = an_alarm("ord-v3", severity=PerceivedSeverity.CRITICAL)
    failed = await notifiers([v3(receiver.port)]).send(alarm)
    assert failed == []
    [notification] = await received(receiver, alarm.notification_id)
    assert_carries(notification, alarm)
    assert notification.value(SEVERITY_OID) == "3"  # critical


async def test_v3_traps_of_two_hub_processes_with_one_engine_id_both_arrive(
    receiver: TrapReceiver, notifiers: NotifierFactory
) -> None:
    # Two workers (or a worker before and after a restart) share the hub's engine id. The NMS
    # drops a v3 trap whose engine boots/time look older than the newest it saw for that id,
    # so both must present the same clock: the older one must not go silent.
    first, second = notifiers([v3(receiver.port)]), notifiers([v3(receiver.port)])
    alarms = [an_alarm(f"ord-two-engines-{n}") for n in range(3)]
    for notifier, alarm in zip((first, second, first), alarms, strict=True):
        assert await notifier.send(alarm) == []
        await received(receiver, alarm.notification_id)


@pytest.mark.parametrize("version", ["v2c", "v3"])
async def test_inform_is_acknowledged(
    version: str, receiver: TrapReceiver, notifiers: NotifierFactory
) -> None:
    target = v2c(receiver.port) if version == "v2c" else v3(receiver.port)
    alarm = an_alarm(f"ord-inform-{version}")
    failed = await notifiers([target], "inform", **FAST).send(alarm)
    # An inform only counts as delivered when snmptrapd answered it.
    assert failed == []
    [notification] = await received(receiver, alarm.notification_id)
    assert_carries(notification, alarm)


async def test_raise_and_clear_share_the_notification_id(
    receiver: TrapReceiver, notifiers: NotifierFactory
) -> None:
    notifier = notifiers([v2c(receiver.port)])
    raised = an_alarm("ord-clear")
    cleared = raised.cleared("HSS create subscriber succeeded on operator retry")
    assert await notifier.send(raised) == []
    assert await notifier.send(cleared) == []
    first, second = await received(receiver, raised.notification_id, count=2)
    assert (
        cleared.notification_id
        == raised.notification_id
        == notification_id("ord-clear/step-failed")
    )
    assert first.trap_oid == ALARM_ACTIVE_OID and first.value(SEVERITY_OID) == "4"
    assert second.trap_oid == ALARM_CLEAR_OID and second.value(SEVERITY_OID) == "1"
    assert second.value(MANAGED_OBJECT_OID) == first.value(MANAGED_OBJECT_OID)
    assert_carries(second, cleared)


async def test_every_target_gets_exactly_one_copy(
    receiver: TrapReceiver, second_receiver: TrapReceiver, notifiers: NotifierFactory
) -> None:
    # A primary and a backup NMS with the same community (the usual set-up), informs: each
    # acknowledges its own copy, and neither gets the other's.
    notifier = notifiers([v2c(receiver.port), v2c(second_receiver.port)], "inform", **FAST)
    for key in ("ord-fanout-1", "ord-fanout-2"):
        alarm = an_alarm(key)
        assert await notifier.send(alarm) == []
        await received(receiver, alarm.notification_id)
        await received(second_receiver, alarm.notification_id)
        assert len(receiver.with_id(alarm.notification_id)) == 1
        assert len(second_receiver.with_id(alarm.notification_id)) == 1


async def test_inform_with_a_wrong_community_is_not_acknowledged(
    receiver: TrapReceiver, notifiers: NotifierFactory
) -> None:
    # snmptrapd answers only the informs it accepts: the acknowledgement is the proof.
    wrong = v2c(receiver.port, community="not-the-community")
    assert await notifiers([wrong], "inform", **FAST).send(an_alarm("ord-bad-c")) == [wrong.label]
    assert receiver.with_id(an_alarm("ord-bad-c").notification_id) == []


async def test_nms_down_trap_does_not_raise(notifiers: NotifierFactory) -> None:
    # UDP cannot tell that nobody listens: a trap is "sent" once it left the socket.
    failed = await notifiers([v2c(closed_port())], **FAST).send(an_alarm("ord-down-trap"))
    assert failed == []


async def test_nms_down_inform_is_reported_not_raised(
    notifiers: NotifierFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    target = v3(closed_port())
    started = time.monotonic()
    failed = await notifiers([target], "inform", **FAST).send(an_alarm("ord-down-inform"))
    assert failed == [target.label]
    assert time.monotonic() - started < 3.0  # timeout x (retries + 1), not a hang
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == "alarm not delivered"
    assert warning.snmp_target == target.label  # type: ignore[attr-defined]
    assert "no acknowledgement" in warning.reason  # type: ignore[attr-defined]
    assert_no_secrets(log_dump(caplog))


async def test_one_nms_down_does_not_hide_the_other(
    receiver: TrapReceiver, notifiers: NotifierFactory
) -> None:
    down = v2c(closed_port())
    notifier = notifiers([v2c(receiver.port), down], "inform", **FAST)
    alarm = an_alarm("ord-partial")
    assert await notifier.send(alarm) == [down.label]
    await received(receiver, alarm.notification_id)


async def test_wrong_v3_key_fails_without_retrying(
    receiver: TrapReceiver, notifiers: NotifierFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = v3(receiver.port, auth_key="not-the-auth-key")
    failed = await notifiers([wrong], "inform", **FAST).send(an_alarm("ord-wrong-key"))
    assert failed == [wrong.label]
    assert not [r for r in caplog.records if r.getMessage() == "alarm delivery failed, retrying"]
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "digest" in warning.reason.lower()  # type: ignore[attr-defined]
    assert "not-the-auth-key" not in log_dump(caplog)
    assert_no_secrets(log_dump(caplog))


async def test_no_targets_sends_nothing(notifiers: NotifierFactory) -> None:
    assert await notifiers([]).send(an_alarm("ord-none")) == []


# --- the activity -------------------------------------------------------------------------------


def raise_input(key: str, **changes: object) -> RaiseAlarmInput:
    fields: dict[str, object] = {
        "managed_object": f"order={key}/step=billing.open_account/system=billing",
        "severity": PerceivedSeverity.MAJOR,
        "event_type": EventType.COMMUNICATIONS_ALARM,
        "probable_cause": ProbableCause.COMMUNICATIONS_SUBSYSTEM_FAILURE,
        "text": "billing unreachable after 12 attempts",
        "alarm_key": f"{key}/dead-letter",
        **changes,
    }
    return RaiseAlarmInput(**fields)  # type: ignore[arg-type]


async def test_activity_reports_where_the_alarm_went(
    receiver: TrapReceiver, notifiers: NotifierFactory
) -> None:
    down = v2c(closed_port())
    activities = AlarmActivities(notifiers([v3(receiver.port), down], "inform", **FAST))
    data = raise_input("ord-act")
    result = await ActivityEnvironment().run(activities.raise_alarm, data)
    assert result == RaiseAlarmResult(
        notification_id=notification_id("ord-act/dead-letter"),
        delivered_to=[v3(receiver.port).label],
        failed=[down.label],
    )
    [notification] = await received(receiver, result.notification_id)
    assert notification.value(PROBABLE_CAUSE_OID) == "505"
    assert notification.value(EVENT_TYPE_OID) == "2"


async def test_activity_raises_retryable_when_no_nms_acknowledged(
    notifiers: NotifierFactory,
) -> None:
    target = v3(closed_port())
    activities = AlarmActivities(notifiers([target], "inform", **FAST))
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(activities.raise_alarm, raise_input("ord-act-down"))
    assert caught.value.type == ALARM_NOT_DELIVERED
    assert not caught.value.non_retryable
    assert target.label in str(caught.value)
    assert_no_secrets(str(caught.value) + repr(caught.value.details))


async def test_activity_with_traps_to_a_down_nms_succeeds(notifiers: NotifierFactory) -> None:
    target = v2c(closed_port())
    activities = AlarmActivities(notifiers([target]))
    result = await ActivityEnvironment().run(activities.raise_alarm, raise_input("ord-act-trap"))
    assert result.delivered_to == [target.label] and result.failed == []


async def test_activity_input_survives_temporal_payloads() -> None:
    data = raise_input("ord-conv", event_time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    converter = DataConverter.default
    [decoded] = await converter.decode(await converter.encode([data]), [RaiseAlarmInput])
    assert decoded == data
    assert isinstance(decoded.severity, PerceivedSeverity)
    assert asdict(decoded)["probable_cause"] == 505


# --- GET from snmpd -----------------------------------------------------------------------------


async def test_get_reads_sysdescr_and_uptime_v2c(agent: Agent) -> None:
    values = await get(
        SnmpTarget.parse(f"v2c:{COMMUNITY}@127.0.0.1:{agent.port}"),
        [
            SYS_DESCR_OID,
            "." + SYS_UPTIME_OID,
        ],
        timeout=1.0,
    )
    assert values[SYS_DESCR_OID] == "hub-test network element 1.0"
    assert int(values[SYS_UPTIME_OID]) >= 0


async def test_get_reads_sysdescr_v3(agent: Agent) -> None:
    target = SnmpTarget.parse(f"v3:{USER}:{AUTH_KEY}:{PRIV_KEY}@127.0.0.1:{agent.port}")
    values = await get(target, [SYS_DESCR_OID], timeout=1.0)
    assert values == {SYS_DESCR_OID: "hub-test network element 1.0"}


async def test_get_of_a_missing_object_is_not_found(agent: Agent) -> None:
    target = SnmpTarget.parse(f"v2c:{COMMUNITY}@127.0.0.1:{agent.port}")
    with pytest.raises(NotFoundError, match=re.escape("1.3.6.1.4.1.55555.99.0")):
        await get(target, ["1.3.6.1.4.1.55555.99.0"], timeout=1.0)


async def test_get_from_a_closed_port_is_transient() -> None:
    target = SnmpTarget.parse(f"v2c:{COMMUNITY}@127.0.0.1:{closed_port()}")
    with pytest.raises(TransientError, match="no answer") as caught:
        await get(target, [SYS_DESCR_OID], timeout=0.2, retries=0)
    assert caught.value.system == "snmp"
    assert_no_secrets(str(caught.value))


async def test_get_with_a_wrong_community_is_transient(agent: Agent) -> None:
    # snmpd does not answer a community it does not know: to the hub that is a timeout.
    target = SnmpTarget.parse(f"v2c:wrong-community@127.0.0.1:{agent.port}")
    started = time.monotonic()
    with pytest.raises(TransientError):
        await get(target, [SYS_DESCR_OID], timeout=0.3, retries=0)
    assert time.monotonic() - started < 3.0


async def test_get_with_a_wrong_v3_key_is_permanent(agent: Agent) -> None:
    target = SnmpTarget.parse(f"v3:{USER}:wrong-auth-key:{PRIV_KEY}@127.0.0.1:{agent.port}")
    with pytest.raises(PermanentError) as caught:
        await get(target, [SYS_DESCR_OID], timeout=0.5, retries=0)
    assert "wrong-auth-key" not in str(caught.value)
    assert_no_secrets(str(caught.value))


async def test_get_refuses_malformed_oids() -> None:
    target = SnmpTarget.parse(f"v2c:{COMMUNITY}@127.0.0.1:161")
    with pytest.raises(PermanentError, match="malformed OID"):
        await get(target, ["SNMPv2-MIB::sysDescr.0"])


# --- pure parts ---------------------------------------------------------------------------------


def test_parse_v2c_and_v3_specs() -> None:
    trap = SnmpTarget.parse("v2c:public@nms.example.net")
    assert (trap.version, trap.host, trap.port, trap.community) == (
        "2c",
        "nms.example.net",
        162,
        "public",
    )
    secure = SnmpTarget.parse(
        f"v3:{USER}:{AUTH_KEY}:{PRIV_KEY}:0x{HUB_ENGINE_ID.upper()}@10.0.0.5:1162"
    )
    assert (secure.version, secure.user, secure.auth_key, secure.priv_key) == (
        "3",
        USER,
        AUTH_KEY,
        PRIV_KEY,
    )
    assert (secure.host, secure.port, secure.engine_id) == ("10.0.0.5", 1162, HUB_ENGINE_ID)
    assert SnmpTarget.parse("v2c:public@[2001:db8::1]:1162").label == "v2c@[2001:db8::1]:1162"
    assert SnmpTarget.parse("v2c:public@ne-01", default_port=161).port == 161
    # Percent-encoding lets secrets hold the separators.
    odd = SnmpTarget.parse("v3:ops:p%40ss%3Aw0rd%2C1:priv%40key99@nms:162")
    assert (odd.auth_key, odd.priv_key) == ("p@ss:w0rd,1", "priv@key99")


def test_parse_targets_reads_a_comma_separated_setting() -> None:
    targets = parse_targets(f" v2c:{COMMUNITY}@nms-a:162 , v3:{USER}:{AUTH_KEY}:{PRIV_KEY}@nms-b,")
    assert [t.label for t in targets] == ["v2c@nms-a:162", "v3:hubuser@nms-b:162"]
    assert parse_targets("") == []


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        (f"{COMMUNITY}@nms:162", "must start with 'v2c:' or 'v3:'"),
        (f"v1:{COMMUNITY}@nms", "must start with 'v2c:' or 'v3:'"),
        (f"v2c:{COMMUNITY}", "expected v2c:"),
        (f"v2c:{COMMUNITY}@", "host is empty"),
        (f"v2c:{COMMUNITY}@nms:0", "port must be a number"),
        (f"v2c:{COMMUNITY}@nms:snmp", "port must be a number"),
        (f"v2c:{COMMUNITY}@2001:db8::1", "IPv6 host must be written in brackets"),
        (f"v2c:{COMMUNITY}@[2001:db8::1", "closing ']'"),
        (f"v2c:{COMMUNITY}:{AUTH_KEY}@nms", "expected v2c:"),
        (f"v3:{USER}:{AUTH_KEY}@nms", "expected v3:"),
        (f"v3:{USER}:{AUTH_KEY}:{PRIV_KEY}:{HUB_ENGINE_ID}:extra@nms", "expected v3:"),
        (f"v3:{USER}:short:{PRIV_KEY}@nms", "auth key must have at least 8 characters"),
        (f"v3:{USER}:{AUTH_KEY}:short@nms", "priv key must have at least 8 characters"),
        (f"v3:{USER}:{AUTH_KEY}:{PRIV_KEY}:abc@nms", "even number of hex digits"),
        (f"v3:{USER}:{AUTH_KEY}:{PRIV_KEY}:0102@nms", "5 to 32 octets"),
    ],
)
def test_parse_errors_are_clear_and_keep_secrets_out(spec: str, complaint: str) -> None:
    with pytest.raises(ValidationFailure) as caught:
        SnmpTarget.parse(spec, position=2)
    assert complaint in str(caught.value)
    assert_no_secrets(str(caught.value))
    assert "short" not in str(caught.value).replace("short:", "")


def test_target_repr_and_label_hide_secrets() -> None:
    for target in (SnmpTarget.parse(f"v2c:{COMMUNITY}@nms"), v3(162)):
        assert_no_secrets(repr(target) + target.label)


def test_one_v3_user_cannot_have_two_key_pairs() -> None:
    with pytest.raises(ValidationFailure, match="different keys"):
        SnmpNotifier([v3(1162), v3(2162, auth_key="another-auth-key")])


def test_notification_id_is_stable_and_31_bit() -> None:
    assert notification_id("ord-1/dead-letter") == notification_id("ord-1/dead-letter")
    assert notification_id("ord-1/dead-letter") != notification_id("ord-2/dead-letter")
    assert all(0 <= notification_id(f"k{i}") < 2**31 for i in range(200))


def test_date_and_time_is_the_11_octet_utc_form() -> None:
    moment = datetime(2026, 3, 14, 15, 9, 26, 500_000, tzinfo=UTC)
    assert date_and_time(moment).hex() == "07ea030e0f091a052b0000"


def test_texts_are_cut_to_255_octets_on_a_character_boundary() -> None:
    from adapters.snmp import alarm_varbinds

    alarm = an_alarm("ord-long", text="é" * 200)  # 400 octets in UTF-8
    text = dict(alarm_varbinds(alarm))[ADDITIONAL_TEXT_OID].asOctets()
    assert len(text) == 254 and text.decode("utf-8") == "é" * 127
