"""The API's documentation: pages that work offline, and an OpenAPI document that says what the
API really answers, with security schemes generated clients can use."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.main import create_app
from hub.settings import Settings
from tests.conftest import free_port

API_KEY = "k" * 30
OPEN = {"/health"}
METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture
def app(tmp_path: Path) -> Any:
    return create_app(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            environment="test",
            database_url=f"sqlite:///{tmp_path / 'hub.db'}",
            temporal_address=f"127.0.0.1:{free_port()}",
            api_key=[API_KEY],
        )
    )


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub.test"
        ) as client,
    ):
        yield client


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


@pytest.mark.parametrize(
    ("page", "kinds"),
    [("/docs", {"javascript", "css"}), ("/redoc", {"javascript"})],
)
async def test_docs_pages_load_only_local_assets(
    http: httpx.AsyncClient, page: str, kinds: set[str]
) -> None:
    response = await http.get(page)
    assert response.status_code == 200
    html = response.text
    assert "cdn" not in html.lower() and "fonts.googleapis" not in html
    assert not re.search(r"https?://", html), html
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assets = [url for url in urls if url.endswith((".js", ".css"))]
    assert assets, html
    seen = set()
    for url in assets:
        assert url.startswith("/"), url
        asset = await http.get(url)
        assert asset.status_code == 200, url
        kind = asset.headers["content-type"].split(";")[0].split("/")[1]
        assert kind in {"javascript", "css"}, (url, kind)
        assert len(asset.content) > 10_000, url  # the real bundle, not a stub
        seen.add(kind)
    assert seen == kinds
    assert "/openapi.json" in html


async def test_openapi_has_security_schemes_and_every_operation_needs_one(
    http: httpx.AsyncClient,
) -> None:
    spec = (await http.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["apiKey"]["description"],
    }
    assert schemes["bearer"]["type"] == "http" and schemes["bearer"]["scheme"] == "bearer"
    for method, path, operation in operations(spec):
        if path in OPEN:
            assert "security" not in operation, path
            continue
        # Either scheme will do: OpenAPI's list of requirements is an "or".
        assert operation.get("security") == [{"apiKey": []}, {"bearer": []}], (method, path)


async def test_openapi_documents_the_errors_the_api_answers_and_no_422(
    http: httpx.AsyncClient,
) -> None:
    spec = (await http.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert set(schemas["TmfError"]["properties"]) == {
        "@type",
        "code",
        "reason",
        "message",
        "status",
    }
    assert "HTTPValidationError" not in schemas
    error = {"$ref": "#/components/schemas/TmfError"}
    for method, path, operation in operations(spec):
        responses = operation["responses"]
        assert "422" not in responses, (method, path)
        if path in OPEN:
            continue
        expected = {"400", "401", "403", "404", "409", "413", "503"}
        if "requestBody" in operation:
            expected.add("415")
        assert expected <= set(responses), (method, path, sorted(responses))
        for status in expected:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == error, (method, path, status)


def test_openapi_document_is_valid(app: Any) -> None:
    from openapi_spec_validator import validate

    validate(app.openapi())


async def test_a_body_that_is_not_json_is_415_with_the_tmf_body(http: httpx.AsyncClient) -> None:
    for content_type in ("text/plain", None):
        headers = {"X-API-Key": API_KEY}
        if content_type:
            headers["Content-Type"] = content_type
        response = await http.post("/exportSchedules", content=b'{"id": "x"}', headers=headers)
        assert response.status_code == 415, response.text
        body = response.json()
        assert body["code"] == "415" and "application/json" in body["message"]
    # JSON under its +json name is JSON.
    response = await http.post(
        "/exportSchedules",
        content=b'{"id": "x"}',
        headers={"X-API-Key": API_KEY, "Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code != 415


async def test_the_security_schemes_authenticate_as_before(http: httpx.AsyncClient) -> None:
    # Through the schemes, the 401 body and challenge are the hub's.
    missing = await http.get("/exportRuns")
    assert missing.status_code == 401 and missing.json()["code"] == "401"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await http.get("/exportRuns", headers={"Authorization": "Basic " + API_KEY})
    assert wrong.status_code == 401
    for headers in (
        {"X-API-Key": API_KEY},
        {"Authorization": f"Bearer {API_KEY}"},
        {"X-API-Key": "", "Authorization": f"bearer  {API_KEY} "},
    ):
        response = await http.get("/exportRuns", headers=headers)
        assert response.status_code != 401, (headers, response.text)


def test_openapi_with_oauth2_names_the_token_url_and_each_route_scope(tmp_path: Path) -> None:
    from openapi_spec_validator import validate

    from hub.permissions import ALL_SCOPES

    app = create_app(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            environment="test",
            database_url=f"sqlite:///{tmp_path / 'hub.db'}",
            api_key=[API_KEY],
            oidc_issuer="http://127.0.0.1:8110",
        )
    )
    spec = app.openapi()
    flow = spec["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "http://127.0.0.1:8110/token"
    assert set(flow["scopes"]) == ALL_SCOPES
    orders = spec["paths"]["/tmf-api/serviceOrdering/v4/serviceOrder"]
    assert {"oauth2": ["orders:write"]} in orders["post"]["security"]
    assert {"oauth2": ["orders:read"]} in orders["get"]["security"]
    for method, path, operation in operations(spec):
        if path not in OPEN:
            [requirement] = [r for r in operation["security"] if "oauth2" in r]
            assert requirement["oauth2"] and requirement["oauth2"][0] in ALL_SCOPES, (method, path)
    assert app.openapi() == spec  # idempotent
    validate(spec)
