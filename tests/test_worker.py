"""The worker as operators run it: ``python worker.py`` configured by HUB_* variables.

SIGTERM while an activity is in flight lets it finish (graceful shutdown), the process exits
cleanly, and a restarted worker carries the order to completion.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from temporalio.client import Client

from api.main import create_app
from hub.settings import REPO_ROOT, Settings
from tests.conftest import PAYLOAD_KEYS, SEAL_KEY, Simulators, eventually
from tests.factories import new_identity, order


def worker_env(settings: Settings, client: Client) -> dict[str, str]:
    return {
        **os.environ,
        "HUB_ENVIRONMENT": "test",
        "HUB_DATABASE_URL": settings.resolved_database_url,
        "HUB_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "HUB_TASK_QUEUE": settings.task_queue,
        "HUB_PAYLOAD_KEYS": ",".join(PAYLOAD_KEYS),
        "HUB_SEAL_KEYS": SEAL_KEY,
        "HUB_CREDIT_URL": settings.credit_url,
        "HUB_CRM_URL": settings.crm_url,
        "HUB_HSS_URL": settings.hss_url,
        "HUB_BILLING_URL": settings.billing_url,
        "HUB_WORKER_SHUTDOWN_GRACE": "20",
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, str(REPO_ROOT / "worker.py")],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_sigterm_lets_the_activity_finish_and_a_new_worker_completes(
    hub_settings: Settings, temporal_client: Client, sims: Simulators, tmp_path: Path
) -> None:
    identity = new_identity()
    env = worker_env(hub_settings, temporal_client)
    log = tmp_path / "worker.log"
    app = create_app(hub_settings, temporal=temporal_client)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://hub.test",
            headers={"X-API-Key": hub_settings.api_key[0]},
        ) as api,
    ):
        await sims.configure("hss", latency_ms=2500)
        first = start_worker(env, log)
        try:
            response = await api.post(
                "/tmf-api/serviceOrdering/v4/serviceOrder", json=order(identity)
            )
            assert response.status_code == 201, response.text
            order_id = response.json()["id"]
            handle = temporal_client.get_workflow_handle(f"service-order-{order_id}")

            async def in_hss() -> bool:
                status = await handle.query("status")
                return "hss" in (status.get("current_step") or "")

            await eventually(in_hss, timeout=30)
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=30) == 0, log.read_text()[-3000:]
        finally:
            if first.poll() is None:
                first.kill()
        # The in-flight HSS call was allowed to finish before the worker left.
        hss = await sims.state("hss")
        assert any(s["imsi"] == identity["imsi"] for s in hss["subscribers"])
        assert "shutting down" in log.read_text()

        await sims.configure("hss", latency_ms=0)
        second = start_worker(env, log)
        try:

            async def completed() -> str | None:
                state = await api.get(f"/tmf-api/serviceOrdering/v4/serviceOrder/{order_id}")
                value = state.json()["state"]
                return value if value in ("completed", "failed", "cancelled") else None

            assert await eventually(completed, timeout=60) == "completed"
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        hss = await sims.state("hss")
        assert sum(s["imsi"] == identity["imsi"] for s in hss["subscribers"]) == 1
