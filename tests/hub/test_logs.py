"""JSON log lines: the Temporal context of a record (from the SDK's loggers or from
``activity.info()``), the business id read off the workflow id, extra fields, errors."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from typing import Any

import pytest
from temporalio import activity
from temporalio.testing import ActivityEnvironment

from hub import logs
from worker import LOG_REFERENCES


def line(record: logging.LogRecord) -> dict[str, Any]:
    return dict(json.loads(logs.JsonLines(LOG_REFERENCES).format(record)))


def test_a_workflow_record_names_its_order() -> None:
    record = logging.makeLogRecord(
        {
            "name": "temporalio.workflow",
            "levelname": "WARNING",
            "msg": "step parked",
            "temporal_workflow": {
                "workflow_id": "service-order-abc123",
                "run_id": "run-1",
                "workflow_type": "ServiceActivation",
                "task_queue": "hub",
                "attempt": 1,
            },
            "step": "hss.create_subscriber",
        }
    )
    found = line(record)
    assert found["message"] == "step parked" and found["level"] == "WARNING"
    assert (found["workflowId"], found["runId"], found["orderId"]) == (
        "service-order-abc123",
        "run-1",
        "abc123",
    )
    assert found["step"] == "hss.create_subscriber"
    assert "temporal_workflow" not in found


@pytest.mark.parametrize(
    ("workflow_id", "field", "value"),
    [
        ("report-kev-2026-Q3-v1-ab", "reportId", "kev-2026-Q3-v1-ab"),
        ("reconciliation-rec-1", "reconciliationId", "rec-1"),
        ("inventory-audit-a1", "auditId", "a1"),
        ("export-orders-2026", "exportId", "orders-2026"),
    ],
)
def test_each_process_names_its_business_id(workflow_id: str, field: str, value: str) -> None:
    record = logging.makeLogRecord({"msg": "x", "temporal_workflow": {"workflow_id": workflow_id}})
    assert line(record)[field] == value


async def test_a_plain_log_in_an_activity_carries_the_activity() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonLines(LOG_REFERENCES))
    logger = logging.getLogger("tests.logs.activity")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)

    @activity.defn(name="hss.create_subscriber")
    async def create_subscriber() -> None:
        logger.info("subscriber created", extra={"imsi_suffix": "0001"})

    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, workflow_id="service-order-o-9", attempt=3, activity_type="hss.create_subscriber"
    )
    try:
        await env.run(create_subscriber)
    finally:
        logger.removeHandler(handler)
    found = json.loads(stream.getvalue())
    assert (
        found["activity"] == "hss.create_subscriber" or found["activity"] == env.info.activity_type
    )
    assert (found["workflowId"], found["orderId"], found["attempt"]) == (
        "service-order-o-9",
        "o-9",
        3,
    )
    assert found["imsi_suffix"] == "0001"


def test_an_error_has_its_traceback_and_text_stays_available() -> None:
    try:
        raise ValueError("bad input")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), exc_info=__import__("sys").exc_info()
        )
    found = line(record)
    assert "ValueError: bad input" in found["error"]
    handler = logs.configure("text")
    try:
        assert isinstance(handler.formatter, logging.Formatter)
        assert not isinstance(handler.formatter, logs.JsonLines)
        again = logs.configure("json")
        ours = [h for h in logging.getLogger().handlers if h in (handler, again)]
        assert ours == [again], "configure replaces the handler it installed before"
    finally:
        logging.getLogger().removeHandler(again)
