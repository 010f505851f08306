"""``hub reports`` against a real API server: start, list, get, and wait until accepted (the
approval given with ``hub tasks complete ... approve`` under a second person's key)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.tools import cli
from tests.conftest import Hub, served_api
from tests.processes.reporting.conftest import key_of
from tests.processes.reporting.reports import PERIOD, REPORTS, make_usage, report_in

runner = CliRunner()


@pytest.fixture
def api_url(hub: Hub) -> Iterator[str]:
    with served_api(hub) as url:
        yield url


async def hub_cli(api_url: str, who: str, *args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(
        runner.invoke,
        cli.app,
        [*args, "--api-url", api_url, "--api-key", key_of(who)],
        env={"COLUMNS": "200"},
    )
    return result.exit_code, " ".join(result.output.split())


async def test_start_list_get_and_wait(hub: Hub, api_url: str, tmp_path: Path) -> None:
    usage = tmp_path / "usage"
    make_usage(usage, records=600)
    code, out = await hub_cli(
        api_url, "preparer", "reports", "start", "--type", "kev-mobile-quarterly",
        "--period", PERIOD, "--network-source", str(usage / "network"),
        "--billing-source", str(usage / "billing"), "--employees", "12",
    )  # fmt: skip
    assert code == 0, out
    report_id = out.split("report ")[1].split()[0]
    task_id = (await report_in(hub, report_id, "awaitingApproval"))["taskId"]

    code, out = await hub_cli(api_url, "preparer", "reports", "list", "--period", PERIOD)
    assert code == 0 and report_id in out and "awaitingApproval" in out, out
    code, out = await hub_cli(api_url, "preparer", "reports", "get", report_id)
    assert code == 0 and "sim_cards_in_use" in out and "api-key:preparer" in out, out

    code, out = await hub_cli(
        api_url, "approver", "tasks", "complete", task_id, "approve",
        "--field", "findingsAcknowledged=true", "--comment", "checked",
    )  # fmt: skip
    assert code == 0, out
    code, out = await hub_cli(api_url, "preparer", "reports", "wait", report_id, "--timeout", "60")
    assert code == 0, out
    assert "accepted" in out
    body = (await hub.api.get(f"{REPORTS}/{report_id}")).json()
    assert body["receiptId"] in out
