"""The FastAPI application. Run with ``uvicorn --factory api.main:create_app`` or ``hub api``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from temporalio.client import Client

from api import errors, openapi
from api.console.web import create_console
from api.deps import TemporalConnection
from api.limits import BodyLimit
from api.metrics import HttpMetrics, HttpMetricsMiddleware
from api.oauth import TokenValidator
from api.routes import (
    codec,
    dead_letters,
    event_hub,
    exports,
    health,
    inventory_audits,
    metrics,
    parties,
    partners,
    reconciliations,
    regulatory_reports,
    service_orders,
    tasks,
)
from hub import logs
from hub.db import create_engine, migrate, session_factory
from hub.settings import Settings, get_settings


def create_app(
    settings: Settings | None = None,
    *,
    temporal: Client | None = None,
    run_migrations: bool = True,
) -> FastAPI:
    """Build the app; tests pass their own settings and Temporal client."""
    settings = settings or get_settings()
    if settings.environment == "production" and settings.seal_key_specs:
        # The API seals with the public key only; with the private ones, the process that
        # serves /codec to browsers could open every token in every history.
        raise RuntimeError(
            "HUB_SEAL_KEYS must not be given to the API in production: give it "
            "HUB_SEAL_PUBLIC_KEY, and HUB_SEAL_KEYS to the worker only"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.environment != "test":
            # Under uvicorn, after it set up its loggers: every line in the hub's format.
            logs.configure(settings.log_format, settings.log_level)
        if run_migrations:
            migrate(settings.resolved_database_url)
        engine = create_engine(settings.resolved_database_url)
        app.state.sessions = session_factory(engine)
        app.state.temporal = TemporalConnection(settings, temporal)
        try:
            yield
        finally:
            if app.state.tokens is not None:
                await app.state.tokens.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Telecom integration hub",
        version="0.1.0",
        description=(
            "Durable business processes between CRM, billing, HSS and partners, on Temporal. "
            "Authenticate with an API key (`X-API-Key` or `Authorization: Bearer`) or an OAuth2 "
            "access token of the hub's OpenID provider (`Authorization: Bearer`)."
        ),
        lifespan=lifespan,
        # Served by api.openapi with local assets: FastAPI's own pages load from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = HttpMetrics()
    app.state.state_gauges = metrics.StateGauges()
    # OAuth2 bearer JWTs beside API keys, when an issuer is configured (api.oauth).
    app.state.tokens = TokenValidator(settings) if settings.oidc_issuer else None
    # Added first, so CORS wraps it: a browser can read the 413 too.
    app.add_middleware(
        BodyLimit,
        limit=(settings.max_body_bytes, "HUB_MAX_BODY_BYTES"),
        by_prefix={
            codec.router.prefix + "/": (settings.codec_max_body_bytes, "HUB_CODEC_MAX_BODY_BYTES")
        },
    )
    app.add_middleware(
        CORSMiddleware,
        # Only the Temporal Web UI calls the hub from a browser (the codec endpoint).
        allow_origins=settings.codec_cors_origins,
        allow_methods=["POST", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization", "X-API-Key", "X-Namespace"],
        allow_credentials=True,
    )
    # Added last, so it is outermost: it counts every answer, a 413 or a CORS refusal too.
    app.add_middleware(HttpMetricsMiddleware, metrics=app.state.metrics)
    errors.install(app)
    openapi.install(app)
    _audit_to_stderr()
    app.include_router(health.router)
    app.include_router(service_orders.router)
    app.include_router(event_hub.service_ordering_router)
    app.include_router(event_hub.party_role_router)
    # Before the reports' own routes: /regulatoryReports/hub/{id} is not a report.
    app.include_router(event_hub.regulatory_reporting_router)
    app.include_router(dead_letters.router)
    app.include_router(tasks.router)
    app.include_router(reconciliations.router)
    app.include_router(inventory_audits.router)
    app.include_router(regulatory_reports.router)
    app.include_router(partners.router)
    app.include_router(parties.party_router)
    app.include_router(parties.party_role_router)
    app.include_router(exports.router)
    app.include_router(codec.router)
    app.include_router(metrics.router)
    # The operations console's pages: an app of its own (HTML, sessions), on this one's state.
    app.mount("/console", create_console(app.state))
    return app


def _audit_to_stderr() -> None:
    """Audit events (``hub.audit``, INFO) must reach a log even where nothing configured
    logging (uvicorn configures only its own loggers); where something did, they go there."""
    audit = logging.getLogger("hub.audit")
    audit.setLevel(logging.INFO)
    if not audit.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        audit.addHandler(handler)
