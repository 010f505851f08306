"""Who may do what through the API, how much it reads, and what it refuses at the door.

Most tests run the API alone, against a Temporal that was started and then stopped (as in an
outage) or the session's dev server without a worker: what they check is decided before any
process would run.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.service import RetryConfig
from temporalio.testing import WorkflowEnvironment

from api.deps import Principal
from api.inbound import CheckedRoute
from api.listing import MAX_OFFSET
from api.main import create_app
from hub.models import DeadLetter, ReconciliationRun, ServiceOrder
from hub.permissions import PLAIN_KEY_SCOPES, Scope, plain_key_name
from hub.sealing import generate_seal_key, public_spec
from hub.settings import ApiClient, Settings
from tests.conftest import API_KEY, PAYLOAD_KEYS, free_port, temporal_binary
from tests.factories import new_identity, order

ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
CANCELS = "/tmf-api/serviceOrdering/v4/cancelServiceOrder"
UI = "http://127.0.0.1:8233"


def key_of(name: str) -> str:
    return f"{name}-key-{uuid.uuid5(uuid.NAMESPACE_DNS, name).hex}"


#: One client per scope holding only it, one holding none, one holding all, the Web UI's.
CLIENTS = [
    *(
        ApiClient(name=f"only-{scope.value.replace(':', '.')}", key=key_of(scope), scopes=[scope])
        for scope in Scope
    ),
    ApiClient(name="nobody", key=key_of("nobody"), scopes=[]),
    ApiClient(name="noc", key=key_of("noc"), scopes=["*"], groups=["ops"]),
    ApiClient(name="ui", key=key_of("ui"), scopes=["codec:encode", "codec:decode"]),
]


def as_client(name: str) -> dict[str, str]:
    return {"X-API-Key": key_of(name)}


def only(scope: Scope) -> dict[str, str]:
    return {"X-API-Key": key_of(scope)}


@dataclass
class Api:
    http: httpx.AsyncClient
    app: FastAPI
    settings: Settings

    async def add(self, *rows: Any) -> None:
        async with self.app.state.sessions() as session:
            session.add_all(rows)
            await session.commit()


@asynccontextmanager
async def api_for(
    tmp_path: Path, temporal: Client | None = None, **overrides: Any
) -> AsyncIterator[Api]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        temporal_address=f"127.0.0.1:{free_port()}",
        task_queue=f"security-{uuid.uuid4()}",
        api_key=[API_KEY],
        api_clients=CLIENTS,
        payload_keys=PAYLOAD_KEYS,
        **overrides,
    )
    app = create_app(settings, temporal=temporal)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://hub.test",
            headers={"X-API-Key": API_KEY},
        ) as http,
    ):
        yield Api(http, app, settings)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with api_for(tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
async def stopped_temporal() -> AsyncIterator[Client]:
    """A client of a Temporal that answered once and then went away: every call fails as in
    an outage (UNAVAILABLE), at once, as the client is told not to retry."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), dev_server_log_level="error"
    )
    client = await Client.connect(
        env.client.service_client.config.target_host,
        retry_config=RetryConfig(
            initial_interval_millis=10, max_retries=1, max_elapsed_time_millis=200
        ),
    )
    await env.shutdown()
    yield client


@pytest.fixture
async def down(tmp_path: Path, stopped_temporal: Client) -> AsyncIterator[Api]:
    async with api_for(tmp_path, stopped_temporal) as running:
        yield running


@pytest.fixture
async def live(tmp_path: Path, temporal_client: Client) -> AsyncIterator[Api]:
    """The API on the session's dev server, without a worker: orders start and wait."""
    async with api_for(tmp_path, temporal_client) as running:
        yield running


def assert_tmf(response: httpx.Response, status: int, *needles: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == str(status) and body["status"] == str(status), body
    for needle in needles:
        assert needle in body["message"], (needle, body["message"])


# --- who may do what -------------------------------------------------------------------------

#: Every route but /health and the docs, with the scope it needs.
ROUTES: list[tuple[str, str, Scope]] = [
    ("POST", ORDERS, Scope.ORDERS_WRITE),
    ("GET", ORDERS, Scope.ORDERS_READ),
    ("GET", ORDERS + "/{order_id}", Scope.ORDERS_READ),
    ("POST", CANCELS, Scope.ORDERS_WRITE),
    ("GET", CANCELS, Scope.ORDERS_READ),
    ("GET", CANCELS + "/{cancel_id}", Scope.ORDERS_READ),
    ("GET", "/deadLetters", Scope.DEADLETTERS_READ),
    ("GET", "/deadLetters/{letter_id}", Scope.DEADLETTERS_READ),
    ("POST", "/deadLetters/{letter_id}/retry", Scope.DEADLETTERS_DECIDE),
    ("POST", "/deadLetters/{letter_id}/skip", Scope.DEADLETTERS_DECIDE),
    ("POST", "/deadLetters/{letter_id}/abort", Scope.DEADLETTERS_DECIDE),
    ("POST", "/deadLetters/retry", Scope.DEADLETTERS_DECIDE),
    ("GET", "/tasks", Scope.TASKS_READ),
    ("GET", "/tasks/{task_id}", Scope.TASKS_READ),
    ("POST", "/tasks/{task_id}/claim", Scope.TASKS_DECIDE),
    ("POST", "/tasks/{task_id}/unclaim", Scope.TASKS_DECIDE),
    ("POST", "/tasks/{task_id}/complete", Scope.TASKS_DECIDE),
    ("POST", "/regulatoryReports", Scope.REPORTS_WRITE),
    ("GET", "/regulatoryReports", Scope.REPORTS_READ),
    ("GET", "/regulatoryReports/schedule", Scope.REPORTS_READ),
    ("PUT", "/regulatoryReports/schedule", Scope.REPORTS_WRITE),
    ("POST", "/regulatoryReports/schedule/trigger", Scope.REPORTS_WRITE),
    ("GET", "/regulatoryReports/{report_id}", Scope.REPORTS_READ),
    ("GET", "/regulatoryReports/{report_id}/document", Scope.REPORTS_READ),
    ("GET", "/regulatoryReports/{report_id}/receipt", Scope.REPORTS_READ),
    ("POST", "/regulatoryReports/{report_id}/corrections", Scope.REPORTS_WRITE),
    ("POST", "/reconciliations", Scope.RECONCILIATIONS_WRITE),
    ("GET", "/reconciliations", Scope.RECONCILIATIONS_READ),
    ("GET", "/reconciliations/schedule", Scope.RECONCILIATIONS_READ),
    ("PUT", "/reconciliations/schedule", Scope.RECONCILIATIONS_WRITE),
    ("POST", "/reconciliations/schedule/trigger", Scope.RECONCILIATIONS_WRITE),
    ("DELETE", "/reconciliations/schedule", Scope.RECONCILIATIONS_WRITE),
    ("GET", "/reconciliations/{run_id}", Scope.RECONCILIATIONS_READ),
    ("POST", "/reconciliations/{run_id}/cancel", Scope.RECONCILIATIONS_WRITE),
    ("GET", "/reconciliations/{run_id}/discrepancies", Scope.RECONCILIATIONS_READ),
    ("GET", "/reconciliations/{run_id}/discrepancies/by-msisdn", Scope.RECONCILIATIONS_READ),
    ("GET", "/reconciliations/{run_id}/discrepancies/download", Scope.RECONCILIATIONS_READ),
    ("POST", "/inventoryAudits", Scope.INVENTORY_WRITE),
    ("GET", "/inventoryAudits", Scope.INVENTORY_READ),
    ("GET", "/inventoryAudits/schedule", Scope.INVENTORY_READ),
    ("PUT", "/inventoryAudits/schedule", Scope.INVENTORY_WRITE),
    ("DELETE", "/inventoryAudits/schedule", Scope.INVENTORY_WRITE),
    ("GET", "/inventoryAudits/{audit_id}", Scope.INVENTORY_READ),
    ("GET", "/inventoryAudits/{audit_id}/differences", Scope.INVENTORY_READ),
    ("POST", "/exportSchedules", Scope.EXPORTS_WRITE),
    ("GET", "/exportSchedules", Scope.EXPORTS_READ),
    ("GET", "/exportSchedules/{export_id}", Scope.EXPORTS_READ),
    ("POST", "/exportSchedules/{export_id}/pause", Scope.EXPORTS_WRITE),
    ("POST", "/exportSchedules/{export_id}/unpause", Scope.EXPORTS_WRITE),
    ("POST", "/exportSchedules/{export_id}/trigger", Scope.EXPORTS_WRITE),
    ("POST", "/exportSchedules/{export_id}/backfill", Scope.EXPORTS_WRITE),
    ("DELETE", "/exportSchedules/{export_id}", Scope.EXPORTS_WRITE),
    ("GET", "/exportRuns", Scope.EXPORTS_READ),
    ("GET", "/exportRuns/{run_id}", Scope.EXPORTS_READ),
    ("POST", "/partnerApplications", Scope.PARTNERS_WRITE),
    ("GET", "/partnerApplications", Scope.PARTNERS_READ),
    ("GET", "/partnerApplications/{application_id}", Scope.PARTNERS_READ),
    ("POST", "/partnerApplications/{application_id}/credentials", Scope.PARTNERS_CREDENTIALS),
    ("POST", "/partnerApplications/{application_id}/offboard", Scope.PARTNERS_WRITE),
    ("GET", "/tmf-api/partyManagement/v4/organization", Scope.PARTNERS_READ),
    ("GET", "/tmf-api/partyManagement/v4/organization/{organization_id}", Scope.PARTNERS_READ),
    ("GET", "/tmf-api/partyRoleManagement/v4/partyRole", Scope.PARTNERS_READ),
    ("GET", "/tmf-api/partyRoleManagement/v4/partyRole/{party_role_id}", Scope.PARTNERS_READ),
    ("POST", "/codec/encode", Scope.CODEC_ENCODE),
    ("GET", "/metrics", Scope.METRICS_READ),
    ("POST", "/codec/decode", Scope.CODEC_DECODE),
]
#: The event hubs (TMF630 /hub) of the APIs that have one.
for _hub in (
    "/tmf-api/serviceOrdering/v4",
    "/tmf-api/partyRoleManagement/v4",
    "/regulatoryReports",
):
    ROUTES += [
        ("POST", f"{_hub}/hub", Scope.EVENTS_WRITE),
        ("GET", f"{_hub}/hub/{{subscription_id}}", Scope.EVENTS_READ),
        ("DELETE", f"{_hub}/hub/{{subscription_id}}", Scope.EVENTS_WRITE),
        ("GET", f"{_hub}/hub/{{subscription_id}}/deliveries", Scope.EVENTS_READ),
        (
            "POST",
            f"{_hub}/hub/{{subscription_id}}/deliveries/{{delivery_id}}/replay",
            Scope.EVENTS_WRITE,
        ),
        ("POST", f"{_hub}/hub/{{subscription_id}}/rotateSecret", Scope.EVENTS_WRITE),
    ]
OPEN = {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "some-id", template)


def scopes_of(route: APIRoute) -> set[Scope]:
    found, pending = set(), [route.dependant]
    while pending:
        dependant = pending.pop()
        if (scope := getattr(dependant.call, "scope", None)) is not None:
            found.add(scope)
        pending += dependant.dependencies
    return found


def api_routes(routes: Sequence[Any]) -> list[APIRoute]:
    """Every APIRoute, also those of included routers (FastAPI >= 0.16x keeps them there)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (router := getattr(route, "original_router", None)) is not None:
            found += api_routes(router.routes)
    return found


def test_every_route_is_in_the_table_and_needs_its_scope() -> None:
    app = create_app(Settings(_env_file=None, environment="test"))  # type: ignore[call-arg]
    table = {(method, path): scope for method, path, scope in ROUTES}
    seen = set()
    for route in api_routes(app.routes):
        if route.path in OPEN:
            continue
        for method in route.methods:
            seen.add((method, route.path))
            assert (method, route.path) in table, f"{method} {route.path}: add it to ROUTES"
            assert scopes_of(route) == {table[method, route.path]}, (method, route.path)
    assert seen == set(table)


def test_every_route_checks_its_text() -> None:
    app = create_app(Settings(_env_file=None, environment="test"))  # type: ignore[call-arg]
    for route in api_routes(app.routes):
        if route.path not in OPEN:
            assert isinstance(route, CheckedRoute), f"{route.path}: route_class=CheckedRoute"


@pytest.mark.parametrize(
    ("method", "path", "scope"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
async def test_each_route_answers_403_naming_the_scope_it_needs(
    api: Api, method: str, path: str, scope: Scope
) -> None:
    refused = await api.http.request(method, concrete(path), headers=as_client("nobody"))
    assert_tmf(refused, 403, scope.value, "api-key:nobody")
    for other in (s for s in Scope if s != scope):
        wrong = await api.http.request(method, concrete(path), headers=only(other))
        assert wrong.status_code == 403, (other, wrong.text)
    # The scope alone gets past the check (to whatever the route answers next).
    for headers in (only(scope), as_client("noc")):
        allowed = await api.http.request(method, concrete(path), headers=headers)
        assert allowed.status_code not in (401, 403), allowed.text


async def test_plain_keys_may_do_everything_but_decode_and_hand_out_secrets(api: Api) -> None:
    for method, path, scope in ROUTES:
        response = await api.http.request(method, concrete(path))
        if scope in (Scope.CODEC_DECODE, Scope.PARTNERS_CREDENTIALS):
            assert_tmf(response, 403, scope.value, f"api-key:{plain_key_name(API_KEY)}")
        else:
            assert response.status_code not in (401, 403), (method, path, response.text)


def test_the_body_cannot_name_the_decider() -> None:
    # Who decides is the caller (tests/test_dead_letters.py checks it on real workflows); the
    # field stays accepted for older clients, documented as ignored.
    app = create_app(Settings(_env_file=None, environment="test"))  # type: ignore[call-arg]
    schemas = app.openapi()["components"]["schemas"]
    for model in ("DecisionBody", "BulkRetryBody"):
        field = schemas[model]["properties"]["decidedBy"]
        assert field.get("deprecated") is True and "Ignored" in field["description"], model


def test_principals_allow_their_scopes_and_groups() -> None:
    reader = Principal("api-key:r", frozenset({"orders:read"}), frozenset({"ops"}))
    assert reader.allows("orders:read") and not reader.allows("orders:write")
    assert reader.member_of("ops") and not reader.member_of("wholesale")
    everyone = Principal("api-key:noc", frozenset({"*"}), frozenset({"*"}))
    assert everyone.allows("codec:decode") and everyone.member_of("wholesale")
    assert Scope.CODEC_DECODE not in PLAIN_KEY_SCOPES
    assert set(Scope) - PLAIN_KEY_SCOPES == {Scope.CODEC_DECODE, Scope.PARTNERS_CREDENTIALS}


def test_clients_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    clients = [{"name": "noc", "key": "n" * 30, "scopes": ["orders:read"], "groups": ["ops"]}]
    monkeypatch.setenv("HUB_API_CLIENTS", json.dumps(clients))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    [noc] = settings.api_clients
    assert noc.name == "noc" and noc.scopes == ["orders:read"] and noc.groups == ["ops"]
    assert noc.key.get_secret_value() == "n" * 30
    assert "n" * 30 not in repr(settings)


@pytest.mark.parametrize(
    ("clients", "api_key", "message"),
    [
        ([{"name": "a", "key": "k1", "scopes": ["orders:steal"]}], [], "orders:steal"),
        ([{"name": "a", "key": "k1"}, {"name": "a", "key": "k2"}], [], "names must differ"),
        ([{"name": "a", "key": "k1"}], ["k1"], "the same key is given twice"),
        ([{"name": "no spaces", "key": "k1"}], [], "name"),
        ([{"name": "a", "key": "k1", "groups": ["o p s"]}], [], "group"),
        ([{"name": "a", "key": "k1", "role": "admin"}], [], "role"),
    ],
    ids=["unknown-scope", "same-name", "same-key", "bad-name", "bad-group", "unknown-field"],
)
def test_bad_clients_are_refused(
    clients: list[dict[str, Any]], api_key: list[str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as raised:
        Settings(_env_file=None, api_clients=clients, api_key=api_key)  # type: ignore[call-arg]
    assert "k1" not in str(raised.value).replace("name", "")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"api_clients": [{"name": "ui", "key": "short"}]}, "'ui' must have at least 24"),
        ({"api_key": ["change-me-please-to-something-long"]}, "key #1 looks like a placeholder"),
        ({"api_key": ["k" * 40]}, "placeholder"),
        ({"codec_allow_anonymous": True}, "HUB_CODEC_ALLOW_ANONYMOUS"),
        ({"api_key": []}, "HUB_API_KEY or HUB_API_CLIENTS"),
    ],
    ids=["short-client-key", "placeholder", "one-letter", "anonymous-codec", "no-keys"],
)
def test_production_refuses_weak_keys_and_an_open_codec(
    overrides: dict[str, Any], message: str
) -> None:
    base: dict[str, Any] = {
        "environment": "production",
        "api_key": ["Vf3kQ9xLp2Rz7Wm4Tn8Yb6Hs1Jd5Gc0A"],
        "payload_keys": PAYLOAD_KEYS,
        "seal_public_key": public_spec(generate_seal_key("s1")),
        "console_session_key": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
    }
    with pytest.raises(ValidationError, match=re.escape(message)) as raised:
        Settings(_env_file=None, **{**base, **overrides})  # type: ignore[call-arg]
    assert "change-me-please" not in str(raised.value) and "short" not in str(raised.value)
    Settings(_env_file=None, **base)  # type: ignore[call-arg]  # the base itself is fine


# --- the codec ---------------------------------------------------------------------------------


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def json_payload(value: object) -> dict[str, object]:
    return {"metadata": {"encoding": b64("json/plain")}, "data": b64(json.dumps(value))}


SECRET_KI = "465b5ce8b199b49faa5f0a2ee238a6bc"


async def sealed(api: Api, *values: object) -> list[dict[str, Any]]:
    encoded = await api.http.post(
        "/codec/encode", json={"payloads": [json_payload(v) for v in values]}
    )
    assert encoded.status_code == 200, encoded.text
    return list(encoded.json()["payloads"])


async def test_decoding_needs_a_key_with_the_decode_scope(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    payloads = await sealed(api, {"ki": SECRET_KI}, 42)
    body = {"payloads": payloads}
    anonymous = await api.http.post("/codec/decode", json=body, headers={"X-API-Key": ""})
    assert_tmf(anonymous, 401)
    assert_tmf(await api.http.post("/codec/decode", json=body), 403, "codec:decode")
    with caplog.at_level(logging.INFO, logger="hub.audit"):
        decoded = await api.http.post(
            "/codec/decode",
            json=body,
            headers={
                "X-API-Key": "",
                "Authorization": f"Bearer {key_of('ui')}",
                "X-Namespace": "default\n",
            },
        )
    assert decoded.status_code == 200, decoded.text
    assert decoded.json()["payloads"] == [json_payload({"ki": SECRET_KI}), json_payload(42)]
    [record] = [r for r in caplog.records if r.name == "hub.audit"]
    assert record.audit == "codec.decode"  # type: ignore[attr-defined]
    assert record.subject == "api-key:ui"  # type: ignore[attr-defined]
    assert record.payloads == 2  # type: ignore[attr-defined]
    assert record.namespace == "default\n"  # type: ignore[attr-defined]
    line = record.getMessage()
    assert "api-key:ui" in line and "\n" not in line  # the namespace cannot forge a line
    assert SECRET_KI not in line and all(SECRET_KI not in str(v) for v in vars(record).values())


async def test_anonymous_decoding_is_an_explicit_development_opt_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with api_for(tmp_path, codec_allow_anonymous=True) as api:
        payloads = await sealed(api, "hello")
        no_key = {"X-API-Key": ""}
        with caplog.at_level(logging.INFO, logger="hub.audit"):
            decoded = await api.http.post(
                "/codec/decode", json={"payloads": payloads}, headers=no_key
            )
        assert decoded.status_code == 200 and decoded.json()["payloads"] == [json_payload("hello")]
        assert [r.subject for r in caplog.records if r.name == "hub.audit"] == ["anonymous"]  # type: ignore[attr-defined]
        # A key that is given must still be a valid one, with the scope.
        wrong = await api.http.post(
            "/codec/decode", json={"payloads": payloads}, headers={"X-API-Key": "nope"}
        )
        assert_tmf(wrong, 401)
        # Nothing else opens up.
        assert_tmf(await api.http.get(ORDERS, headers=no_key), 401)


async def test_the_ui_origin_may_call_the_codec_and_read_its_refusals(api: Api) -> None:
    preflight = await api.http.options(
        "/codec/decode",
        headers={
            "Origin": UI,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == UI
    refused = await api.http.post(
        "/codec/decode", json={"payloads": []}, headers={"Origin": UI, "X-API-Key": ""}
    )
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == UI


@pytest.mark.parametrize(
    "body",
    [
        b"true",
        b"1",
        b"null",
        b"[]",
        b'"payloads"',
        b"[" * 10_000 + b"]" * 10_000,
        b'{"payloads": ' + b"[" * 100 + b"]" * 100 + b"}",
        b'{"payloads": 5}',
        b'{"payloads": [1]}',
        b'{"payloads": [{"data": "\\ud800"}]}',
        b'{"payloads": [{"metadata": {"\\u0000": "AA=="}}]}',
        b'{"payloads": [], "x": NaN}',
        b"{not json",
        b"\xff\xfe",
    ],
    ids=[
        "true",
        "number",
        "null",
        "list",
        "string",
        "deep-list",
        "deep-payloads",
        "payloads-number",
        "payload-number",
        "lone-surrogate",
        "nul-key",
        "nan",
        "not-json",
        "not-utf8",
    ],
)
async def test_a_codec_body_that_is_not_payloads_is_a_400(api: Api, body: bytes) -> None:
    for operation in ("encode", "decode"):
        response = await api.http.post(
            f"/codec/{operation}",
            content=body,
            headers={"Content-Type": "application/json", **as_client("ui")},
        )
        assert_tmf(response, 400)


async def test_codec_batches_are_bounded(tmp_path: Path) -> None:
    async with api_for(tmp_path, codec_max_payloads=3) as api:
        ui = as_client("ui")
        three = [json_payload(i) for i in range(3)]
        assert (
            await api.http.post("/codec/encode", json={"payloads": three}, headers=ui)
        ).status_code == 200
        four = [json_payload(i) for i in range(4)]
        too_many = await api.http.post("/codec/decode", json={"payloads": four}, headers=ui)
        assert_tmf(too_many, 413, "HUB_CODEC_MAX_PAYLOADS")


async def test_codec_bodies_have_a_bound_of_their_own(tmp_path: Path) -> None:
    async with api_for(tmp_path, codec_max_body_bytes=4000, max_body_bytes=200) as api:
        ui = as_client("ui")
        small = {"payloads": [json_payload(i) for i in range(3)]}
        # Over the 200 bytes of the other routes, under the codec's 4000.
        assert (await api.http.post("/codec/encode", json=small, headers=ui)).status_code == 200
        big = {"payloads": [json_payload("x" * 4000)]}
        too_big = await api.http.post("/codec/decode", json=big, headers=ui)
        assert_tmf(too_big, 413, "HUB_CODEC_MAX_BODY_BYTES")


class ThreadSpyCodec:
    """Records which thread encodes and decodes."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.threads.append(threading.get_ident())
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.threads.append(threading.get_ident())
        return list(payloads)


async def test_the_codec_works_off_the_event_loop(api: Api) -> None:
    spy = ThreadSpyCodec()
    api.app.state.codec = spy
    body = {"payloads": [json_payload(1)]}
    for operation in ("encode", "decode"):
        response = await api.http.post(f"/codec/{operation}", json=body, headers=as_client("ui"))
        assert response.status_code == 200, response.text
    assert len(spy.threads) == 2 and threading.get_ident() not in spy.threads


# --- body limits -----------------------------------------------------------------------------


async def test_a_declared_length_over_the_limit_is_413_before_the_body_is_read(
    api: Api,
) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": ORDERS,
        "raw_path": ORDERS.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"hub.test"),
            (b"content-type", b"application/json"),
            (b"content-length", str(50 * 1024 * 1024).encode()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("hub.test", 80),
    }
    await api.app(scope, receive, send)
    assert sent[0]["status"] == 413
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["code"] == "413" and "HUB_MAX_BODY_BYTES" in body["message"]


async def test_a_streamed_body_over_the_limit_is_413_and_stores_nothing(api: Api) -> None:
    document = order(new_identity())
    document["description"] = "x" * (2 * 1024 * 1024)  # a 2 MiB order; the bound is 1 MiB
    raw = json.dumps(document).encode()
    chunks_read = 0

    async def chunked() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        for start in range(0, len(raw), 64 * 1024):
            chunks_read += 1
            yield raw[start : start + 64 * 1024]

    response = await api.http.post(
        ORDERS, content=chunked(), headers={"Content-Type": "application/json"}
    )
    assert_tmf(response, 413, "HUB_MAX_BODY_BYTES")
    assert chunks_read <= 17  # stopped at the bound, not after the whole body
    declared = await api.http.post(
        ORDERS, content=raw, headers={"Content-Type": "application/json"}
    )
    assert_tmf(declared, 413)
    assert (await api.http.get(ORDERS)).headers["X-Total-Count"] == "0"


# --- 5xx and wrong codes ---------------------------------------------------------------------

LISTS = [ORDERS, "/deadLetters", "/reconciliations", "/exportRuns", "/inventoryAudits"]


@pytest.mark.parametrize("path", LISTS)
async def test_an_offset_past_the_bound_is_a_400(api: Api, path: str) -> None:
    for offset in (2**63, 2**64, MAX_OFFSET + 1, -1):
        assert_tmf(await api.http.get(path, params={"offset": offset}), 400, "offset")
    last = await api.http.get(path, params={"offset": MAX_OFFSET})
    assert last.status_code == 200 and last.json() == []


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/deadLetters/retry", b'{"process": "\\ud800"}', "process"),
        ("POST", "/deadLetters/retry", b'{"system": "billing", "reason": "a\\u0000b"}', "reason"),
        ("POST", "/deadLetters/some-id/retry", b'{"input": {"msisdn": "\\udfff"}}', "input.msisdn"),
        ("POST", ORDERS, b'{"description": "\\ud83d", "serviceOrderItem": []}', "description"),
        ("POST", ORDERS, b'{"relatedParty": [{"\\ud800": 1}]}', "relatedParty[0]"),
        ("POST", "/reconciliations", b'{"id": "r", "x": [1e999]}', "x[0]"),
        ("POST", "/exportSchedules", b'{"id": NaN}', "body"),
    ],
    ids=["filter", "nul", "correction", "order", "key", "infinity", "nan"],
)
async def test_text_no_system_can_store_is_a_400_naming_the_field(
    api: Api, method: str, path: str, body: bytes, field: str
) -> None:
    response = await api.http.request(
        method, path, content=body, headers={"Content-Type": "application/json"}
    )
    assert_tmf(response, 400, field)


async def test_a_nul_in_a_query_or_path_parameter_is_a_400(api: Api) -> None:
    assert_tmf(await api.http.get("/deadLetters", params={"process": "a\x00b"}), 400, "process")
    assert_tmf(await api.http.get(ORDERS, params={"externalId": "\x00"}), 400, "externalId")
    assert_tmf(await api.http.get("/deadLetters/a%00b"), 400, "letter_id")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/reconciliations/schedule", None),
        ("PUT", "/reconciliations/schedule", {}),
        ("POST", "/reconciliations/schedule/trigger", None),
        ("DELETE", "/reconciliations/schedule", None),
        ("GET", "/inventoryAudits/schedule", None),
        ("PUT", "/inventoryAudits/schedule", {}),
        ("DELETE", "/inventoryAudits/schedule", None),
        ("GET", "/exportSchedules", None),
        ("GET", "/exportSchedules/nightly", None),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
async def test_schedules_answer_503_while_temporal_is_down(
    down: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    assert_tmf(await down.http.request(method, path, json=body), 503, "Temporal")


def parked_letter(letter_id: str) -> DeadLetter:
    now = datetime.now(UTC)
    return DeadLetter(
        id=letter_id,
        workflow_id=f"service-order-{letter_id}",
        run_id="run",
        process="service-activation",
        step="1/billing.create_subscription",
        system="billing",
        activity="billing.create_subscription",
        error_type="TransientError",
        last_error="gave up retrying",
        first_failure_at=now,
        last_failure_at=now,
        deadline=now + timedelta(days=1),
    )


async def test_decisions_and_cancels_answer_503_while_temporal_is_down(down: Api) -> None:
    await down.add(
        parked_letter("dl-1"),
        ServiceOrder(id="o-1", workflow_id="service-order-o-1", state="inProgress"),
        ReconciliationRun(
            id="rec-1",
            workflow_id="reconciliation-rec-1",
            period_start=datetime(2026, 3, 1, tzinfo=UTC),
            period_end=datetime(2026, 3, 2, tzinfo=UTC),
        ),
    )
    for action in ("retry", "skip", "abort"):
        response = await down.http.post(f"/deadLetters/dl-1/{action}", json={})
        assert_tmf(response, 503, "Temporal is not reachable")
        assert response.headers["Retry-After"]
    assert_tmf(await down.http.post("/deadLetters/retry", json={}), 503, "0 of 1")
    cancel = await down.http.post(CANCELS, json={"serviceOrder": {"id": "o-1"}})
    assert_tmf(cancel, 503, "Temporal is not reachable")
    # The cancellation it refused is not left behind: asked again later, it is tried again.
    assert_tmf(await down.http.post(CANCELS, json={"serviceOrder": {"id": "o-1"}}), 503)
    assert_tmf(await down.http.post("/reconciliations/rec-1/cancel"), 503, "Temporal")


EMOJI = "\N{GRINNING FACE}"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda body: body.update(externalId=EMOJI * 200), "externalId"),
        (lambda body: body.update(externalId=EMOJI * 64), "externalId"),
        (lambda body: body["relatedParty"][0].update(id=EMOJI * 64), "relatedParty[0].id"),
    ],
    ids=["external-200-emoji", "external-256-bytes", "customer-256-bytes"],
)
async def test_ids_temporal_cannot_index_are_a_400(down: Api, change: Any, field: str) -> None:
    body = order(new_identity())
    change(body)
    assert_tmf(await down.http.post(ORDERS, json=body), 400, field, "255 bytes")


# --- input that can never succeed is refused at the door ---------------------------------------


def set_party(**values: str) -> Any:
    return lambda body: body["relatedParty"][0].update(values)


def set_item(**values: str) -> Any:
    return lambda body: body["serviceOrderItem"][0].update(values)


def set_characteristic(name: str, value: str) -> Any:
    def change(body: dict[str, Any]) -> None:
        for characteristic in body["serviceOrderItem"][0]["service"]["serviceCharacteristic"]:
            if characteristic["name"] == name:
                characteristic["value"] = value

    return change


DOOR = [
    ("external-nul", lambda b: b.update(externalId="crm\x00-1"), "externalId"),
    ("external-bell", lambda b: b.update(externalId="crm\x07-1"), "externalId"),
    ("external-bidi", lambda b: b.update(externalId="crm\u202e1-"), "externalId"),
    ("external-nonchar", lambda b: b.update(externalId="crm\ufffe"), "externalId"),
    ("external-newline", lambda b: b.update(externalId="crm-1\n"), "externalId"),
    ("customer-control", set_party(id="CUST\x01"), "relatedParty[0].id"),
    ("customer-slash", set_party(id="CUST/../admin"), "relatedParty[0].id"),
    ("customer-dotdot", set_party(id=".."), "relatedParty[0].id"),
    ("customer-query", set_party(id="CUST?x=1"), "relatedParty[0].id"),
    ("customer-space", set_party(id=" CUST-1"), "relatedParty[0].id"),
    ("name-vertical-tab", set_party(name="ACME\x0bGmbH"), "relatedParty[0].name"),
    ("name-ffff", set_party(name="ACME\uffff"), "relatedParty[0].name"),
    ("name-escape", set_party(name="\x1b[31mACME"), "relatedParty[0].name"),
    ("item-unicode", set_item(id="pos\u00e9"), "serviceOrderItem[0].id"),
    ("item-space", set_item(id="item 1"), "serviceOrderItem[0].id"),
    ("item-crlf", set_item(id="1\r\nX-Evil: 1"), "serviceOrderItem[0].id"),
    ("imsi-fullwidth", set_characteristic("imsi", "\uff10" * 15), "imsi"),
    ("msisdn-arabic", set_characteristic("msisdn", "+43\u0666\u0666\u0664123456"), "msisdn"),
]


@pytest.mark.parametrize(
    ("change", "field"), [(c, f) for _, c, f in DOOR], ids=[n for n, _, _ in DOOR]
)
async def test_input_no_system_can_take_is_refused_at_the_door(
    live: Api, change: Any, field: str
) -> None:
    body = order(new_identity())
    change(body)
    response = await live.http.post(ORDERS, json=body)
    assert_tmf(response, 400, field)
    assert (await live.http.get(ORDERS)).headers["X-Total-Count"] == "0"


async def test_what_every_system_can_take_is_accepted(live: Api) -> None:
    identity = new_identity()
    body = order(identity)
    body["externalId"] = EMOJI * 63  # 252 bytes: as much as Temporal indexes everywhere
    body["relatedParty"][0].update(id=f"{identity['customer']} Wien", name="Müller & Söhne <GmbH>")
    body["serviceOrderItem"][0]["id"] = "pos-1/a"
    response = await live.http.post(ORDERS, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["externalId"] == EMOJI * 63


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/reconciliations",
            {
                "id": "rec\x00",
                "periodStart": "2026-03-01T00:00:00Z",
                "periodEnd": "2026-03-02T00:00:00Z",
            },
            "id",
        ),
        (
            "/reconciliations",
            {
                "id": "rec 1",
                "periodStart": "2026-03-01T00:00:00Z",
                "periodEnd": "2026-03-02T00:00:00Z",
            },
            "id",
        ),
        (
            "/exportSchedules",
            {
                "id": "nightly\n",
                "dataset": "orders",
                "format": "csv",
                "destination": "/x",
                "cron": "0 2 * * *",
            },
            "id",
        ),
        (
            "/exportSchedules",
            {
                "id": "n\u00e9",
                "dataset": "orders",
                "format": "csv",
                "destination": "/x",
                "cron": "0 2 * * *",
            },
            "id",
        ),
    ],
    ids=["recon-nul", "recon-space", "export-newline", "export-unicode"],
)
async def test_run_and_export_ids_are_refused_at_the_door(
    down: Api, path: str, body: dict[str, Any], field: str
) -> None:
    assert_tmf(await down.http.post(path, json=body), 400, field)


async def test_an_export_id_in_a_path_that_no_schedule_can_have_is_a_404_at_once(
    down: Api,
) -> None:
    # Temporal is down: answering 404 shows the API did not even ask it.
    assert_tmf(await down.http.get("/exportSchedules/nightly%0A"), 404, "no export schedule")
