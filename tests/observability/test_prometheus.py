"""The real Prometheus (Debian's ``prometheus``, installed by ``.ci/run``) scrapes a running hub
(the API served over HTTP, a worker with its exporter) and answers, through its HTTP API, the
hub's metrics of an order it just carried out; the alert rules in ``ops/prometheus/`` pass
``promtool check rules`` and their ``promtool test rules`` unit tests, and load in the server.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from hub.settings import ApiClient, Settings
from tests.conftest import (
    Hub,
    Simulators,
    eventually,
    free_port,
    metrics_client,
    running_hub,
    served_api,
)
from tests.factories import new_identity, order

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus"
METRICS_KEY = "prometheus-scraper-" + "p" * 24
ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"


def binary(name: str) -> str:
    """The program's path; fails (does not skip) with the package to install."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: apt-get install prometheus (.ci/run installs it)")
    return found


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args],
        cwd=RULES,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout
    tested = promtool("test", "rules", "alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.fixture
def hub_settings(hub_settings: Settings) -> Settings:
    hub_settings.api_clients = [
        ApiClient(name="prometheus", key=SecretStr(METRICS_KEY), scopes=["metrics:read"])
    ]
    hub_settings.worker_metrics_address = f"127.0.0.1:{free_port()}"
    return hub_settings


@pytest.fixture
async def metered_hub(
    hub_settings: Settings, temporal_client: Client, sims: Simulators
) -> AsyncIterator[Hub]:
    """The hub, its worker on a client whose runtime exports metrics (as ``worker.run`` does
    with ``HUB_WORKER_METRICS_ADDRESS``)."""
    client = await metrics_client(hub_settings, temporal_client)
    async with running_hub(hub_settings, client) as running:
        yield running


@pytest.fixture
def api_url(metered_hub: Hub) -> Iterator[str]:
    with served_api(metered_hub) as url:
        yield url


@pytest.fixture
def prometheus(tmp_path: Path, metered_hub: Hub, api_url: str) -> Iterator[str]:
    """Prometheus scraping the API and the worker every second; answers its URL."""
    (tmp_path / "metrics-key").write_text(METRICS_KEY)
    config = f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{RULES / "alerts.yml"}"]
scrape_configs:
  - job_name: hub-api
    authorization:
      type: Bearer
      credentials_file: {tmp_path / "metrics-key"}
    static_configs: [{{targets: ["{api_url.removeprefix("http://")}"]}}]
  - job_name: hub-worker
    static_configs: [{{targets: ["{metered_hub.settings.worker_metrics_address}"]}}]
"""
    (tmp_path / "prometheus.yml").write_text(config)
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(
        [
            binary("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


async def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=prometheus, timeout=5) as http:
        try:
            answer = await http.get("/api/v1/query", params={"query": expr})
        except httpx.TransportError:
            return []  # not listening yet
    if answer.status_code == 503:
        return []  # listening, not ready yet ("Service Unavailable", not JSON)
    body = answer.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


async def value_of(prometheus: str, expr: str, timeout: float = 60) -> float:
    """The (single) value of ``expr`` once Prometheus has one."""

    async def scraped() -> float | None:
        result = await query(prometheus, expr)
        return float(result[0]["value"][1]) if result else None

    return await eventually(scraped, timeout=timeout)


async def test_prometheus_scrapes_the_hub_and_sees_an_order(
    metered_hub: Hub, api_url: str, prometheus: str
) -> None:
    assert await value_of(prometheus, 'up{job="hub-api"}') == 1
    assert await value_of(prometheus, 'up{job="hub-worker"}') == 1

    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
        headers = {"X-API-Key": metered_hub.settings.api_key[0]}
        created = await http.post(ORDERS, json=order(new_identity()), headers=headers)
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]

        async def completed() -> bool:
            state = (await http.get(f"{ORDERS}/{order_id}", headers=headers)).json()["state"]
            assert state not in ("failed", "cancelled"), state
            return state == "completed"

        await eventually(completed, timeout=60)

    # The hub's business metrics, from the worker's exporter...
    transitions = 'sum(hub_order_transitions_total{state="completed"})'
    assert await value_of(prometheus, transitions) >= 1
    assert await value_of(prometheus, 'sum(hub_steps_total{system="hss",outcome="ok"})') >= 1
    latency = 'sum(hub_step_duration_seconds_count{system="billing"})'
    assert await value_of(prometheus, latency) >= 1
    # ...the Temporal SDK's own, from the same exporter...
    assert await value_of(prometheus, "sum(temporal_workflow_completed_total)") >= 1
    # ...and the API's, by route template.
    posted = f'hub_http_requests_total{{route="{ORDERS}",method="POST",status="201"}}'
    assert await value_of(prometheus, posted) == 1
    assert await value_of(prometheus, 'hub_orders{state="completed"}') >= 1
    # The rules loaded in the server, and none of them fires for a healthy hub.
    async with httpx.AsyncClient(base_url=prometheus, timeout=5) as http:
        rules = (await http.get("/api/v1/rules")).json()["data"]["groups"]
    assert {rule["name"] for group in rules for rule in group["rules"]} >= {
        "HubParkedStepStale",
        "HubWorkerDown",
    }
    firing = await query(prometheus, 'ALERTS{alertstate="firing"}')
    assert firing == [], firing
