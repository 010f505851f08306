"""``GET /health``: 200 when the database and Temporal answer, 503 naming what does not."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["Operations"])


async def _database(request: Request) -> str:
    try:
        async with request.app.state.sessions() as session:
            connection = await session.connection()
            await asyncio.wait_for(connection.execute(text("SELECT 1")), 3)
        return "ok"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


async def _temporal(request: Request) -> str:
    try:
        client = await request.app.state.temporal.get(timeout=3)
        await asyncio.wait_for(client.service_client.check_health(), 3)
        return "ok"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


@router.get("/health", summary="Liveness of the hub and what it depends on")
async def health(request: Request) -> JSONResponse:
    database, temporal = await asyncio.gather(_database(request), _temporal(request))
    checks = {"database": database, "temporal": temporal}
    down = [name for name, result in checks.items() if result != "ok"]
    body = {"status": "ok" if not down else f"unavailable: {', '.join(down)}", "checks": checks}
    return JSONResponse(body, status_code=503 if down else 200)
