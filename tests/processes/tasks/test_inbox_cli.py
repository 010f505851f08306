"""``hub tasks`` against a real API server: list, show, a refused claim, claim, approve."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from hub.tools import cli
from tests.conftest import Hub, eventually, served_api
from tests.processes.tasks.probe import InboxProbe, ProbeInput
from tests.processes.tasks.test_inbox import (  # noqa: F401  (fixtures)
    approval,
    hub_settings,
    key_of,
    nms,
    open_task,
    probe_queue,
)
from workflows.runtime import TaskOutcome

runner = CliRunner()


@pytest.fixture
def api_url(hub: Hub) -> Iterator[str]:
    """The hub API served by uvicorn on a free port, as ``hub api`` would serve it."""
    with served_api(hub) as url:
        yield url


async def hub_cli(api_url: str, who: str, *args: str) -> tuple[int, str]:
    """Run ``hub`` with ``who``'s key, off the event loop (the workers run on it)."""
    result = await asyncio.to_thread(
        runner.invoke,
        cli.app,
        [*args, "--api-url", api_url, "--api-key", key_of(who)],
        env={"COLUMNS": "200"},
    )
    return result.exit_code, " ".join(result.output.split())


async def test_the_cli_lists_shows_and_decides(
    hub: Hub,
    probe_queue: str,  # noqa: F811
    api_url: str,
) -> None:
    reference = f"probe-{uuid.uuid4().hex[:8]}"
    handle = await hub.client.start_workflow(
        InboxProbe.run,
        ProbeInput(approval(reference)),
        id=f"probe-{reference}",
        task_queue=probe_queue,
    )
    task: dict[str, Any] = await open_task(hub, reference)
    task_id = task["id"]

    async def server_up() -> bool:
        code, _ = await hub_cli(api_url, "approver", "tasks", "list", "--limit", "1")
        return code == 0

    await eventually(server_up, timeout=20)
    code, out = await hub_cli(api_url, "approver", "tasks", "list", "--group", "regulatory")
    assert code == 0 and task_id in out and "Approve the probe report" in out
    code, out = await hub_cli(api_url, "approver", "tasks", "show", task_id)
    assert code == 0 and "simCardsInUse" in out and "checked: boolean (required)" in out
    assert "created" in out

    code, out = await hub_cli(api_url, "preparer", "tasks", "claim", task_id)
    assert code == 1 and "403" in out and "four-eyes" in out and "Traceback" not in out

    code, out = await hub_cli(api_url, "approver", "tasks", "claim", task_id)
    assert code == 0 and "assigned" in out and "api-key:approver" in out
    code, out = await hub_cli(api_url, "approver", "tasks", "reject", task_id)
    assert code == 1 and "needs a comment" in out
    code, out = await hub_cli(
        api_url, "approver", "tasks", "complete", task_id, "approve", "-f", "checked=true"
    )
    assert code == 0 and "completed" in out and "approve by api-key:approver" in out

    outcome: TaskOutcome = await handle.result()
    assert (outcome.decision, outcome.fields) == ("approve", {"checked": True})
