"""The API's documentation: the OpenAPI document as the API really answers, and its pages.

FastAPI's generated document says every route may answer 422 with its own validation body,
which the hub never sends (:mod:`api.errors` answers 400 with the TMF error body), and says
nothing of the errors that do happen. :func:`correct` corrects that in one place for every
route: no 422, and the TMF error body (:class:`api.errors.TmfError`) for each error status
the hub answers. The security schemes come from the authentication dependency
(:data:`api.deps.API_KEY_HEADER`, :data:`api.deps.BEARER`), so every route that needs a key
says so; with OAuth2 on (``HUB_OIDC_ISSUER``), an ``oauth2`` client-credentials scheme at the
provider's token endpoint is added, each route requiring the scope its ``require_scope`` names.

``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from the hub itself, from
the files the ``fastapi-offline`` package ships, never from a CDN: they work offline.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from http import HTTPStatus
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from api.errors import TmfError
from hub.permissions import Scope
from hub.settings import Settings

#: Where the docs' scripts and styles are served.
ASSETS = "/docs/assets"
DOCS, REDOC, OAUTH2_REDIRECT = "/docs", "/redoc", "/docs/oauth2-redirect"

#: The error statuses any route that needs a key may answer, and why.
ERRORS: dict[int, str] = {
    400: "The request can never succeed as it is (the message names the field)",
    401: "No API key or bearer token, or one the hub does not accept",
    403: "The caller lacks the scope the route needs",
    404: "No such resource",
    409: "The resource's state does not allow it",
    413: "The body is larger than the hub accepts (HUB_MAX_BODY_BYTES)",
    503: "Temporal or the database does not answer; try again (Retry-After)",
}
#: Only where a route takes a JSON body.
UNSUPPORTED_MEDIA_TYPE = 415
_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TmfError"}}},
    }


def _scope_of(dependant: Dependant) -> str | None:
    """The scope the ``require_scope`` dependency in ``dependant``'s tree names, if any."""
    pending = [dependant]
    while pending:
        current = pending.pop()
        if isinstance(scope := getattr(current.call, "scope", None), Scope):
            return scope.value
        pending += current.dependencies
    return None


def _api_routes(routes: Sequence[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, also those of included routers (FastAPI >= 0.16x keeps them there)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(router.routes)


def route_scopes(app: FastAPI) -> dict[tuple[str, str], str]:
    """``(path, method) -> scope`` of every route that requires one."""
    found: dict[tuple[str, str], str] = {}
    for route in _api_routes(app.routes):
        if (scope := _scope_of(route.dependant)) is not None:
            for method in route.methods or ():
                found[(route.path_format, method.lower())] = scope
    return found


def oauth2_scheme(settings: Settings) -> dict[str, Any] | None:
    """The OAuth2 client-credentials scheme of ``HUB_OIDC_ISSUER``; None while OAuth2 is off.
    The token URL is ``HUB_OIDC_TOKEN_ENDPOINT``, else ``<issuer>/token`` (oidc-provider's)."""
    if not settings.oidc_issuer:
        return None
    token_url = settings.oidc_token_endpoint or settings.oidc_issuer.rstrip("/") + "/token"
    return {
        "type": "oauth2",
        "description": f"An access token (JWT) of {settings.oidc_issuer} for the audience "
        f"{settings.oidc_audience}, in `Authorization: Bearer`",
        "flows": {
            "clientCredentials": {
                "tokenUrl": token_url,
                "scopes": {scope.value: scope.name.replace("_", " ").lower() for scope in Scope},
            }
        },
    }


def correct(
    spec: dict[str, Any],
    *,
    oauth2: dict[str, Any] | None = None,
    scopes: dict[tuple[str, str], str] | None = None,
) -> dict[str, Any]:
    """FastAPI's document of the API, corrected in place (and idempotent: FastAPI caches the
    document, and this runs on every read of it). ``oauth2`` (:func:`oauth2_scheme`) adds
    that scheme to every secured operation, with its scope from ``scopes``
    (:func:`route_scopes`)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    if oauth2 is not None:
        spec["components"].setdefault("securitySchemes", {})["oauth2"] = oauth2
    schemas["TmfError"] = TmfError.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if not operation.get("security"):
                continue  # /health and the docs: open, and answer none of these
            if oauth2 is not None and not any("oauth2" in r for r in operation["security"]):
                scope = (scopes or {}).get((path, method))
                operation["security"].append({"oauth2": [scope] if scope else []})
            for status, description in ERRORS.items():
                responses.setdefault(str(status), _error(description))
            if "requestBody" in operation:
                responses.setdefault(
                    str(UNSUPPORTED_MEDIA_TYPE),
                    _error(f"{HTTPStatus(415).phrase}: send Content-Type: application/json"),
                )
    # FastAPI's validation-error bodies, which no route answers.
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec


def install(app: FastAPI) -> None:
    """Serve the corrected document and the docs pages with local assets. ``app`` is built
    with ``docs_url=None, redoc_url=None`` (FastAPI's own pages load from a CDN)."""
    generated = app.openapi
    oauth2 = oauth2_scheme(app.state.settings)
    app.openapi = lambda: correct(  # type: ignore[method-assign]
        generated(), oauth2=oauth2, scopes=route_scopes(app) if oauth2 else None
    )
    app.mount(
        ASSETS,
        StaticFiles(directory=str(files("fastapi_offline") / "static")),
        name="docs-assets",
    )
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(DOCS, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT}",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            # Keep the key entered in Authorize across reloads of the page.
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
