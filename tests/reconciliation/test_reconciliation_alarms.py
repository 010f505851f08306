"""Reconciliation's alarms reach the NMS (snmptrapd on loopback): leakage over the threshold
and a failed run each raise a ``major`` X.733 alarm that names the run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from adapters.snmp import (
    ADDITIONAL_TEXT_OID,
    EVENT_TYPE_OID,
    MANAGED_OBJECT_OID,
    PROBABLE_CAUSE_OID,
    SEVERITY_OID,
)
from hub.alarms import EventType, PerceivedSeverity, ProbableCause, notification_id
from hub.settings import RetrySettings, Settings
from tests.conftest import Hub, Simulators, eventually
from tests.reconciliation.runs import finished, make_data, start
from tests.snmp_fixtures import Notification, TrapReceiver, start_trap_receiver

COMMUNITY = "recon-c0mmunity"


@pytest.fixture
def nms(tmp_path: Path) -> Iterator[TrapReceiver]:
    workdir = tmp_path / "nms"
    workdir.mkdir()
    receiver = start_trap_receiver(
        workdir,
        community=COMMUNITY,
        user="unused",
        auth_key="unused-auth-key",
        priv_key="unused-priv-key",
        sender_engine_id="8000d90304" + b"hub".hex(),
    )
    yield receiver
    receiver.daemon.stop()


@pytest.fixture
def hub_settings(hub_settings: Settings, nms: TrapReceiver) -> Settings:
    hub_settings.snmp_targets = SecretStr(f"v2c:{COMMUNITY}@127.0.0.1:{nms.port}")
    hub_settings.retry = {
        **hub_settings.retry,
        "alarms": RetrySettings(
            initial_interval=timedelta(milliseconds=100),
            maximum_attempts=2,
            attempt_timeout=timedelta(seconds=5),
        ),
    }
    return hub_settings


async def alarm(nms: TrapReceiver, workflow_id: str, kind: str) -> Notification:
    async def arrived() -> list[Notification]:
        return nms.with_id(notification_id(f"{workflow_id}/{kind}"))

    [received] = await eventually(arrived, timeout=30)
    return received


async def test_leakage_over_the_threshold_raises_a_major_alarm(
    hub: Hub, sims: Simulators, nms: TrapReceiver, tmp_path: Path
) -> None:
    make_data(tmp_path / "data", records=2_000)
    started = await start(
        hub,
        networkSource=str(tmp_path / "data" / "network"),
        billingSource=str(tmp_path / "data" / "billing"),
        leakageThresholdPct=0.1,
    )
    run = await finished(hub, started["id"])
    assert run["status"] == "completed" and run["caseId"]
    received = await alarm(nms, run["workflowId"], "leakage")
    assert received.value(SEVERITY_OID) == str(PerceivedSeverity.MAJOR.value)
    assert received.value(EVENT_TYPE_OID) == str(EventType.QUALITY_OF_SERVICE_ALARM.value)
    assert received.value(PROBABLE_CAUSE_OID) == str(ProbableCause.THRESHOLD_CROSSED.value)
    assert received.value(MANAGED_OBJECT_OID) == f"billing-reconciliation={run['workflowId']}"
    text = received.value(ADDITIONAL_TEXT_OID)
    assert "revenue leakage" in text and run["caseId"] in text


async def test_a_failed_run_raises_a_major_alarm(
    hub: Hub, sims: Simulators, nms: TrapReceiver, tmp_path: Path
) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    started = await start(hub, networkSource=str(empty), billingSource=str(empty))
    run = await finished(hub, started["id"])
    assert run["status"] == "failed"
    received = await alarm(nms, run["workflowId"], "failed")
    assert received.value(SEVERITY_OID) == str(PerceivedSeverity.MAJOR.value)
    assert "no usage files" in received.value(ADDITIONAL_TEXT_OID)
