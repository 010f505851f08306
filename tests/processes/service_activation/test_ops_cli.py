"""``hub deadletters`` and ``hub exports`` against a real API server (uvicorn in a thread, as
``hub api`` serves it), the real worker and the simulators: a parked order found, shown and
retried with a correction from the CLI; an export created, triggered, its run listed, paused."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from hub.settings import Settings
from hub.tools import cli
from tests.conftest import API_KEY, Hub, Simulators, eventually
from tests.factories import new_identity, order
from tests.processes.tasks.test_inbox_cli import api_url  # noqa: F401  (fixture)
from tests.test_dead_letters import parked_letter
from tests.test_service_orders import final_state, submit

runner = CliRunner()


@pytest.fixture
def hub_settings(hub_settings: Settings) -> Settings:
    return hub_settings.model_copy(
        update={
            "export_settle_lag": timedelta(0),
            "export_heartbeat_timeout": timedelta(seconds=10),
            "export_write_timeout": timedelta(seconds=30),
        }
    )


async def hub_cli(api_url: str, *args: str) -> tuple[int, str]:  # noqa: F811
    """Run ``hub`` off the event loop (the worker runs on it)."""
    result = await asyncio.to_thread(
        runner.invoke,
        cli.app,
        [*args, "--api-url", api_url, "--api-key", API_KEY],
        env={"COLUMNS": "250"},
    )
    return result.exit_code, " ".join(result.output.split())


async def test_a_parked_order_is_repaired_from_the_cli(
    hub: Hub,
    sims: Simulators,
    api_url: str,  # noqa: F811
) -> None:
    identity = new_identity()
    fault = await sims.fault(
        "hss", operation="createSubscriber", match=identity["imsi"], kind="transient"
    )
    created = await submit(hub, order(identity))
    letter = await parked_letter(hub, created["id"])

    async def server_up() -> bool:
        code, _ = await hub_cli(api_url, "deadletters", "list", "--limit", "1")
        return code == 0

    await eventually(server_up, timeout=20)
    code, out = await hub_cli(
        api_url, "deadletters", "list", "--order", created["id"], "--status", "parked"
    )
    assert code == 0 and letter["id"] in out and "1/hss.create_subscriber" in out, out
    assert "1 of 1 dead letters" in out
    code, out = await hub_cli(api_url, "deadletters", "show", letter["id"])
    assert code == 0 and identity["msisdn"] in out and "gave up retrying" in out, out
    code, out = await hub_cli(api_url, "deadletters", "skip", letter["id"])
    assert code == 1 and "409" in out and "Traceback" not in out, out  # not skippable

    await sims.http.delete(f"{sims.urls['hss']}/_sim/faults/{fault['id']}")
    # A correction of what other systems hold too would leave them disagreeing: refused.
    code, out = await hub_cli(
        api_url, "deadletters", "retry", letter["id"], "--input", f"msisdn={identity['msisdn']}"
    )
    assert code == 1 and "409" in out and "billing" in out, out
    code, out = await hub_cli(
        api_url, "deadletters", "retry", letter["id"], "--reason", "HSS is back"
    )
    assert code == 0 and "retry accepted" in out, out
    done = await final_state(hub, created["id"])
    assert done["state"] == "completed"
    code, out = await hub_cli(api_url, "deadletters", "show", letter["id"])
    assert code == 0 and "resolved" in out and "HSS is back" in out, out


async def test_an_export_is_created_triggered_and_paused_from_the_cli(
    hub: Hub,
    api_url: str,  # noqa: F811
) -> None:
    export_id = f"cli-{new_identity()['imsi'][-8:]}"
    destination = str(hub.settings.data_dir / "exports" / export_id)

    async def server_up() -> bool:
        code, _ = await hub_cli(api_url, "exports", "runs", "--limit", "1")
        return code == 0

    await eventually(server_up, timeout=20)
    code, out = await hub_cli(
        api_url, "exports", "create", export_id, "--dataset", "orders", "--format", "csv",
        "--destination", destination, "--cron", "0 0 1 1 *", "--note", "from the CLI",
    )  # fmt: skip
    assert code == 0 and "created" in out and f"file://{destination}" in out, out
    code, out = await hub_cli(api_url, "exports", "trigger", export_id)
    assert code == 0 and "a run is queued" in out, out

    async def run_done() -> str | None:
        code, out = await hub_cli(api_url, "exports", "runs", "--export", export_id)
        return out if code == 0 and "completed" in out else None

    out = await eventually(run_done, timeout=60)
    assert "1 of 1 runs" in out and "_manifests" in out, out
    code, out = await hub_cli(api_url, "exports", "pause", export_id, "--reason", "maintenance")
    assert code == 0 and "paused" in out and "maintenance" in out, out

    async def listed() -> str | None:  # Temporal's schedule list is eventually consistent
        code, out = await hub_cli(api_url, "exports", "list")
        return out if code == 0 and export_id in out and "paused" in out else None

    assert "0 0 1 1 *" in await eventually(listed, timeout=30)
    code, out = await hub_cli(api_url, "exports", "trigger", "no-such-export")
    assert code == 1 and "404" in out, out
