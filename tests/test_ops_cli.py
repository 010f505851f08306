"""``hub deadletters`` and ``hub exports`` against a fake API (``httpx.MockTransport``): the
requests they send (paths, filters, bodies) and the tables they print."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from hub.tools import cli
from tests.test_cli import (  # noqa: F401  (fixtures)
    FakeApi,
    fake_api,
    no_ambient_settings,
    output_of,
    runner,
    tmf_error,
)

LETTER = {
    "id": "dl-1a2b",
    "status": "parked",
    "process": "service-activation",
    "workflowId": "service-order-o1",
    "orderId": "o1",
    "step": "1/hss.create_subscriber",
    "system": "hss",
    "activity": "hss.create_subscriber",
    "compensation": False,
    "skippable": False,
    "input": {"imsi": "001010000000001", "msisdn": "33600000001"},
    "errorType": "TransientError",
    "lastError": "gave up retrying: HSS unavailable",
    "attempts": 5,
    "parkedAt": "2026-12-01T08:00:00.123Z",
}
SCHEDULE = {
    "id": "nightly",
    "dataset": "orders",
    "format": "parquet",
    "destination": "file:///data/exports/nightly",
    "interval": None,
    "cron": "0 2 * * *",
    "timezone": "Europe/Vienna",
    "paused": False,
    "note": None,
    "watermark": None,
    "nextRunTimes": ["2026-12-02T01:00:00Z"],
}
RUN = {
    "id": "20261201T010000Z-1a2b3c4d",
    "exportId": "nightly",
    "status": "completed",
    "watermarkFrom": None,
    "watermarkTo": "2026-12-01T01:00:00Z",
    "startedAt": "2026-12-01T01:00:01Z",
    "rows": 12345,
    "files": 2,
    "bytes": 67890,
    "manifestUri": "file:///data/exports/nightly/_manifests/20261201T010000Z-1a2b3c4d.json",
    "errorMessage": None,
}


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli.app, [*args, "--api-key", "k"])
    return result.exit_code, output_of(result)


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


def test_help_lists_the_new_commands() -> None:
    result = runner.invoke(cli.app, ["--help"])
    assert "deadletters" in result.output and "exports" in result.output
    for group, commands in (
        ("deadletters", ("list", "show", "retry", "skip", "abort")),
        ("exports", ("list", "create", "trigger", "pause", "runs")),
    ):
        shown = runner.invoke(cli.app, [group, "--help"]).output
        for command in commands:
            assert f" {command} " in shown, (group, command)


# --- dead letters ----------------------------------------------------------------------------


def test_deadletters_list_sends_the_filters_and_prints_a_table(
    fake_api: Callable[..., FakeApi],  # noqa: F811
) -> None:
    api = fake_api(lambda _: httpx.Response(200, json=[LETTER], headers={"X-Total-Count": "7"}))
    code, out = invoke(
        "deadletters", "list", "--status", "parked", "--system", "hss", "--order", "o1",
        "--process", "service-activation", "--since", "2026-12-01T00:00:00Z", "--limit", "5",
    )  # fmt: skip
    assert code == 0, out
    [request] = api.requests
    assert request.url.path == "/deadLetters"
    assert dict(request.url.params) == {
        "status": "parked",
        "system": "hss",
        "orderId": "o1",
        "process": "service-activation",
        "since": "2026-12-01T00:00:00Z",
        "limit": "5",
    }
    assert "dl-1a2b" in out and "1/hss.create_subscriber" in out and "gave up retrying" in out
    assert "2026-12-01 08:00:00" in out and "1 of 7 dead letters" in out


def test_deadletters_show_prints_input_and_error(
    fake_api: Callable[..., FakeApi],  # noqa: F811
) -> None:
    api = fake_api(lambda _: httpx.Response(200, json=LETTER))
    code, out = invoke("deadletters", "show", "dl-1a2b")
    assert code == 0, out
    assert api.requests[0].url.path == "/deadLetters/dl-1a2b"
    assert '"msisdn": "33600000001"' in out and "TransientError" in out and "attempts 5" in out


def test_deadletters_retry_sends_corrections_as_typed_and_the_reason(
    fake_api: Callable[..., FakeApi],  # noqa: F811
) -> None:
    answer = {"accepted": True, "action": "retry", "decidedBy": "api-key:noc", "deadLetter": LETTER}
    api = fake_api(lambda _: httpx.Response(200, json=answer))
    code, out = invoke(
        "deadletters", "retry", "dl-1a2b", "--input", "msisdn=33612345678",
        "-i", 'qos:={"qci": 8}', "--reason", "number ported",
    )  # fmt: skip
    assert code == 0, out
    [request] = api.requests
    assert (request.method, request.url.path) == ("POST", "/deadLetters/dl-1a2b/retry")
    # An MSISDN stays a string (digits are not a number here); := is JSON.
    assert body_of(request) == {
        "reason": "number ported",
        "input": {"msisdn": "33612345678", "qos": {"qci": 8}},
    }
    assert "retry accepted" in out and "api-key:noc" in out and "hub order wait o1" in out


@pytest.mark.parametrize("action", ["skip", "abort"])
def test_deadletters_skip_and_abort(
    fake_api: Callable[..., FakeApi],  # noqa: F811
    action: str,
) -> None:
    answer = {"accepted": True, "action": action, "decidedBy": "api-key:noc", "deadLetter": LETTER}
    api = fake_api(lambda _: httpx.Response(200, json=answer))
    code, out = invoke("deadletters", action, "dl-1a2b", "-m", "by hand")
    assert code == 0, out
    assert api.requests[0].url.path == f"/deadLetters/dl-1a2b/{action}"
    assert body_of(api.requests[0]) == {"reason": "by hand"}
    assert f"{action} accepted" in out


def test_a_refused_decision_is_shown_and_exits_1(
    fake_api: Callable[..., FakeApi],  # noqa: F811
) -> None:
    fake_api(lambda _: tmf_error(409, "Conflict", "dead letter dl-1a2b is resolved, not parked"))
    code, out = invoke("deadletters", "skip", "dl-1a2b")
    assert code == 1 and "409 Conflict: dead letter dl-1a2b is resolved, not parked" in out


def test_a_malformed_correction_is_refused_before_any_request(
    fake_api: Callable[..., FakeApi],  # noqa: F811
) -> None:
    api = fake_api(lambda _: httpx.Response(500))
    for bad in ("msisdn", "=1", "qos:={not json"):
        code, out = invoke("deadletters", "retry", "dl-1a2b", "--input", bad)
        assert code == 2 and "--input" in out, (bad, out)
    assert api.requests == []


# --- exports ---------------------------------------------------------------------------------


def test_exports_list_prints_each_schedule(fake_api: Callable[..., FakeApi]) -> None:  # noqa: F811
    paused = {**SCHEDULE, "id": "hourly", "cron": None, "interval": "PT1H", "paused": True}
    api = fake_api(lambda _: httpx.Response(200, json=[SCHEDULE, paused]))
    code, out = invoke("exports", "list")
    assert code == 0, out
    assert api.requests[0].url.path == "/exportSchedules"
    assert "nightly" in out and "0 2 * * * (Europe/Vienna)" in out and "2026-12-02 01:00:00" in out
    assert "hourly" in out and "every PT1H" in out and "paused" in out
    assert "2 export schedules" in out


def test_exports_create_sends_the_definition(fake_api: Callable[..., FakeApi]) -> None:  # noqa: F811
    api = fake_api(lambda _: httpx.Response(201, json=SCHEDULE))
    code, out = invoke(
        "exports", "create", "nightly", "--dataset", "orders", "--format", "parquet",
        "--destination", "/data/exports/nightly", "--cron", "0 2 * * *",
        "--timezone", "Europe/Vienna", "--note", "warehouse feed",
    )  # fmt: skip
    assert code == 0, out
    [request] = api.requests
    assert (request.method, request.url.path) == ("POST", "/exportSchedules")
    assert body_of(request) == {
        "id": "nightly",
        "dataset": "orders",
        "format": "parquet",
        "destination": "/data/exports/nightly",
        "paused": False,
        "cron": "0 2 * * *",
        "timezone": "Europe/Vienna",
        "note": "warehouse feed",
    }
    assert "created" in out and "file:///data/exports/nightly" in out


def test_exports_create_takes_an_interval_in_seconds(
    fake_api: Callable[..., FakeApi],  # noqa: F811
) -> None:
    api = fake_api(lambda _: httpx.Response(201, json=SCHEDULE))
    args = ["exports", "create", "x", "--dataset", "orders", "--format", "csv"]
    code, _ = invoke(*args, "--destination", "/d", "--interval", "3600", "--paused")
    assert code == 0
    assert body_of(api.requests[0])["interval"] == 3600
    assert body_of(api.requests[0])["paused"] is True


def test_exports_create_needs_exactly_one_timing(
    fake_api: Callable[..., FakeApi],  # noqa: F811
) -> None:
    api = fake_api(lambda _: httpx.Response(201, json=SCHEDULE))
    base = [
        "exports",
        "create",
        "x",
        "--dataset",
        "orders",
        "--format",
        "csv",
        "--destination",
        "/d",
    ]
    for timing in ([], ["--interval", "PT1H", "--cron", "0 2 * * *"]):
        code, out = invoke(*base, *timing)
        assert code == 2 and "--interval or --cron" in out
    code, out = invoke(*base[:6], "json", "--destination", "/d", "--cron", "0 2 * * *")
    assert code == 2 and "json" in out
    assert api.requests == []


def test_exports_trigger_and_pause(fake_api: Callable[..., FakeApi]) -> None:  # noqa: F811
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/trigger"):
            return httpx.Response(202, json={"accepted": True, "id": "nightly"})
        return httpx.Response(
            200, json={**SCHEDULE, "paused": True, "pauseReason": "warehouse down"}
        )

    api = fake_api(answer)
    code, out = invoke("exports", "trigger", "nightly")
    assert code == 0 and "a run is queued" in out
    code, out = invoke("exports", "pause", "nightly", "--reason", "warehouse down")
    assert code == 0 and "paused" in out and "warehouse down" in out
    trigger, pause = api.requests
    assert (trigger.method, trigger.url.path) == ("POST", "/exportSchedules/nightly/trigger")
    assert pause.url.path == "/exportSchedules/nightly/pause"
    assert body_of(pause) == {"reason": "warehouse down"}


def test_exports_runs_sends_the_filters_and_prints_a_table(
    fake_api: Callable[..., FakeApi],  # noqa: F811
) -> None:
    failed = {**RUN, "id": "r2", "status": "failed", "rows": None, "errorMessage": "disk full"}
    api = fake_api(
        lambda _: httpx.Response(200, json=[RUN, failed], headers={"X-Total-Count": "9"})
    )
    code, out = invoke("exports", "runs", "--export", "nightly", "--status", "completed")
    assert code == 0, out
    assert dict(api.requests[0].url.params) == {
        "exportId": "nightly",
        "status": "completed",
        "limit": "20",
    }
    assert RUN["id"] in out and "12,345" in out and "67,890" in out and "_manifests" in out
    assert "disk full" in out and "2 of 9 runs" in out
