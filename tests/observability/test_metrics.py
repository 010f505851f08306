"""``/metrics`` of the API: the scope it needs, the HTTP metrics by route template (never by
the path a caller made up), and the gauges of the hub's state read from its database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from hub.models import DeadLetter, HumanTask, TaskState, utcnow
from hub.settings import ApiClient, Settings
from tests.conftest import Hub

READER_KEY = "metrics-reader-" + "m" * 24
OTHER_KEY = "orders-only-" + "o" * 24


@pytest.fixture
def hub_settings(hub_settings: Settings) -> Settings:
    hub_settings.api_clients = [
        ApiClient(name="prometheus", key=SecretStr(READER_KEY), scopes=["metrics:read"]),
        ApiClient(name="crm", key=SecretStr(OTHER_KEY), scopes=["orders:read"]),
    ]
    return hub_settings


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(
    hub: Hub, key: str = READER_KEY
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = await hub.api.get("/metrics", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return samples(answer.text)


async def test_metrics_need_their_scope(hub: Hub) -> None:
    anonymous = await hub.api.get("/metrics", headers={"X-API-Key": ""})
    assert anonymous.status_code == 401, anonymous.text
    other = await hub.api.get("/metrics", headers={"X-API-Key": OTHER_KEY})
    assert other.status_code == 403 and "metrics:read" in other.text, other.text
    assert await scrape(hub)


async def test_requests_are_counted_by_route_template_and_status(hub: Hub) -> None:
    orders = "/tmf-api/serviceOrdering/v4/serviceOrder"
    for made_up in ("a", "b", "c"):
        missing = await hub.api.get(f"{orders}/{made_up}")
        assert missing.status_code == 404
    for path in ("/no/such/path", "/another/made/up/path"):
        assert (await hub.api.get(path)).status_code == 404
    found = await scrape(hub)
    route = (("method", "GET"), ("route", f"{orders}/{{order_id}}"), ("status", "404"))
    assert found[("hub_http_requests_total", route)] == 3
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert found[("hub_http_requests_total", unmatched)] == 2
    assert not any("/no/such" in str(labels) for _, labels in found)
    # A made-up method is one label whatever its name: no caller grows the series.
    for method in ("XABCD", "XEFGH"):
        await hub.api.request(method, f"{orders}/a")
    made_up = await scrape(hub)
    methods = {dict(labels).get("method") for name, labels in made_up}
    assert "other" in methods and not methods & {"XABCD", "XEFGH"}
    duration = (("method", "GET"), ("route", f"{orders}/{{order_id}}"))
    assert found[("hub_http_request_duration_seconds_count", duration)] == 3


async def test_the_hubs_state_is_read_at_each_scrape(hub: Hub) -> None:
    now = utcnow()
    async with hub.sessions() as session:
        session.add(
            DeadLetter(
                id="dl-1",
                workflow_id="service-order-1",
                run_id="r",
                process="service-activation",
                step="hss.create_subscriber",
                system="hss",
                activity="hss.create_subscriber",
                error_type="TransientError",
                last_error="HSS down",
                first_failure_at=now - timedelta(minutes=30),
                last_failure_at=now - timedelta(minutes=20),
                parked_at=now - timedelta(minutes=20),
                deadline=now + timedelta(days=1),
            )
        )
        for number, due in enumerate((now - timedelta(hours=1), now + timedelta(hours=1))):
            session.add(
                HumanTask(
                    id=f"task-{number}",
                    workflow_id="report-1",
                    run_id="r",
                    process="regulatory-report",
                    kind="approval",
                    title="Approve",
                    state=TaskState.CREATED,
                    due_at=due,
                )
            )
        await session.commit()
    found = await scrape(hub)
    where = (("process", "service-activation"), ("system", "hss"))
    assert found[("hub_parked_steps", where)] == 1
    assert 20 * 60 <= found[("hub_parked_step_oldest_seconds", where)] < 25 * 60
    task = (("kind", "approval"), ("process", "regulatory-report"))
    assert found[("hub_open_tasks", task)] == 2
    assert found[("hub_overdue_tasks", task)] == 1

    async with hub.sessions() as session:
        letter = await session.get(DeadLetter, "dl-1")
        assert letter is not None
        letter.status = "retried"
        session.add(letter)
        await session.commit()
    assert ("hub_parked_steps", where) not in await scrape(hub)
