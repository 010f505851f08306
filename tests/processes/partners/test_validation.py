"""Bad applications get a 400 naming the field, with the TMF error body, and start nothing:
no row is recorded (the row comes before the workflow), so no workflow was started."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select
from temporalio.client import Client

from api.main import create_app
from hub.db import create_engine, session_factory
from hub.models import PartnerApplication
from hub.settings import Settings
from tests.conftest import API_KEY, PAYLOAD_KEYS

GOOD: dict[str, Any] = {
    "organization": {
        "name": "Alpine Wholesale Telecom GmbH",
        "organizationIdentification": [
            {"identificationType": "companyRegistrationNumber", "identificationId": "FN 123456a"},
            {"identificationType": "vatId", "identificationId": "ATU12345678"},
        ],
    },
    "callbackUrl": "https://partner.example.com/hooks/hub",
    "requestedScopes": ["orders:read"],
}


def change(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        if value is None:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return apply


IDS = ["organization", "organizationIdentification"]
CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("no-vat-id", change([*IDS, 1], None), "organization.organizationIdentification: no entry"),
    ("vat-too-short", change([*IDS, 1, "identificationId"], "ATU1234567"), "[1].identificationId"),
    ("vat-de-letters", change([*IDS, 1, "identificationId"], "DE12345678X"), "not a DE VAT"),
    ("vat-no-country", change([*IDS, 1, "identificationId"], "US123456789"), "country prefix"),
    ("no-registration", change([*IDS, 0], None), "companyRegistrationNumber"),
    ("unknown-id-type", change([*IDS, 0, "identificationType"], "duns"), "'duns'"),
    ("unknown-scope", change(["requestedScopes"], ["orders:read", "x:y"]), "requestedScopes[1]"),
    ("no-scope", change(["requestedScopes"], []), "requestedScopes"),
    ("http-callback", change(["callbackUrl"], "http://partner.example.com/"), "must use https"),
    ("loopback", change(["callbackUrl"], "https://127.0.0.1:8108/hooks/x"), "loopback"),
    ("localhost", change(["callbackUrl"], "https://localhost/hooks/x"), "loopback"),
    ("private", change(["callbackUrl"], "https://10.0.0.7/hooks"), "private"),
    ("metadata", change(["callbackUrl"], "https://169.254.169.254/latest"), "link-local"),
    ("ipv6-loopback", change(["callbackUrl"], "https://[::1]/x"), "loopback"),
    ("credentials", change(["callbackUrl"], "https://a:b@partner.example.com/x"), "credentials"),
    ("not-a-url", change(["callbackUrl"], "partner.example.com/x"), "callbackUrl"),
    ("control-in-name", change(["organization", "name"], "Alpine\u0007 GmbH"), "organization.name"),
    ("unknown-field", change(["organization", "colour"], "blue"), "organization.colour"),
]  # fmt: skip


@pytest.fixture
async def api(
    tmp_path: Path, temporal_client: Client
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        task_queue=f"partner-validation-{uuid.uuid4()}",
        api_key=[API_KEY],
        payload_keys=PAYLOAD_KEYS,
    )
    app = create_app(settings, temporal=temporal_client)
    engine = create_engine(settings.resolved_database_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://hub.test",
            headers={"X-API-Key": API_KEY},
        ) as http,
    ):
        yield http, session_factory(engine)
    await engine.dispose()


async def rows(sessions: Any) -> int:
    async with sessions() as session:
        return int((await session.exec(select(func.count()).select_from(PartnerApplication))).one())


@pytest.mark.parametrize(("case", "mutate", "named"), CASES, ids=[c[0] for c in CASES])
async def test_a_bad_application_is_a_400_naming_the_field(
    api: tuple[httpx.AsyncClient, Any],
    case: str,
    mutate: Callable[[dict[str, Any]], None],
    named: str,
) -> None:
    http, sessions = api
    body = copy.deepcopy(GOOD)
    mutate(body)
    response = await http.post("/partnerApplications", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert (error["code"], error["@type"]) == ("400", "Error")
    assert named in error["message"], error["message"]
    assert await rows(sessions) == 0


async def test_a_good_application_is_recorded_and_started(
    api: tuple[httpx.AsyncClient, Any], temporal_client: Client
) -> None:
    http, sessions = api
    response = await http.post("/partnerApplications", json=GOOD)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "checking" and created["vatId"] == "ATU12345678"
    assert response.headers["Location"].endswith(f"/partnerApplications/{created['id']}")
    description = await temporal_client.get_workflow_handle(created["workflowId"]).describe()
    assert description.workflow_type == "PartnerOnboarding"
    await temporal_client.get_workflow_handle(created["workflowId"]).terminate("test done")
    assert await rows(sessions) == 1


async def test_unknown_ids_are_404s(api: tuple[httpx.AsyncClient, Any]) -> None:
    http, _ = api
    for path in (
        "/partnerApplications/pa-nope",
        "/tmf-api/partyManagement/v4/organization/org-nope",
        "/tmf-api/partyRoleManagement/v4/partyRole/pr-nope",
    ):
        response = await http.get(path)
        assert response.status_code == 404, (path, response.text)
    response = await http.get("/partnerApplications", params={"status": "bogus"})
    assert response.status_code == 400 and "status" in response.json()["message"]
