"""The API's dependencies, as ``Annotated`` aliases the routes declare."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.errors import ApiError
from hub.settings import Settings
from hub.temporal import connect


class TemporalConnection:
    """Connects on first use, so the API starts (and /health answers) while Temporal is down."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    async def get(self, timeout: float = 5.0) -> Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await asyncio.wait_for(connect(self._settings), timeout)
        return self._client


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


async def get_temporal(request: Request) -> Client:
    try:
        return await request.app.state.temporal.get()
    except Exception as exc:
        raise ApiError(503, f"Temporal is not reachable: {type(exc).__name__}") from exc


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]


def require_api_key(request: Request, settings: SettingsDep) -> str:
    """Accept ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``; answer which key."""
    challenge = {"WWW-Authenticate": 'Bearer realm="telecom-hub"'}
    offered = request.headers.get("x-api-key") or None
    if offered is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        offered = token.strip() if scheme.lower() == "bearer" else None
    if not offered:
        raise ApiError(
            401, "missing API key: send X-API-Key or Authorization: Bearer", headers=challenge
        )
    if not settings.api_key:
        raise ApiError(401, "the hub has no API key configured (HUB_API_KEY)", headers=challenge)
    # Compare with every key in constant time, so timing does not tell how much matched.
    matched = [hmac.compare_digest(offered.encode(), key.encode()) for key in settings.api_key]
    if not any(matched):
        raise ApiError(401, "invalid API key", headers=challenge)
    return offered


ApiKeyDep = Annotated[str, Depends(require_api_key)]
