"""The API's documentation: the OpenAPI document as the API really answers, and its pages.

FastAPI's generated document says every route may answer 422 with its own validation body,
which the hub never sends (:mod:`api.errors` answers 400 with the TMF error body), and says
nothing of the errors that do happen. :func:`correct` corrects that in one place for every
route: no 422, and the TMF error body (:class:`api.errors.TmfError`) for each error status
the hub answers. The security schemes come from the authentication dependency
(:data:`api.deps.API_KEY_HEADER`, :data:`api.deps.BEARER`), so every route that needs a key
says so.

``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from the hub itself, from
the files the ``fastapi-offline`` package ships, never from a CDN: they work offline.
"""

from __future__ import annotations

from http import HTTPStatus
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.errors import TmfError

#: Where the docs' scripts and styles are served.
ASSETS = "/docs/assets"
DOCS, REDOC, OAUTH2_REDIRECT = "/docs", "/redoc", "/docs/oauth2-redirect"

#: The error statuses any route that needs a key may answer, and why.
ERRORS: dict[int, str] = {
    400: "The request can never succeed as it is (the message names the field)",
    401: "No API key, or one the hub does not know",
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


def correct(spec: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's document of the API, corrected in place (and idempotent: FastAPI caches the
    document, and this runs on every read of it)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["TmfError"] = TmfError.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    for operations in spec.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if not operation.get("security"):
                continue  # /health and the docs: open, and answer none of these
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
    app.openapi = lambda: correct(generated())  # type: ignore[method-assign]
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
