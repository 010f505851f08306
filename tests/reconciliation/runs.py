"""Helpers of the reconciliation tests: generated data, and runs through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from simulators.usage import INJECTABLE, UsageManifest, UsageSpec, generate
from tests.conftest import Hub, eventually

RUNS = "/reconciliations"
START = datetime(2026, 11, 1, tzinfo=UTC)
END = START + timedelta(days=1)


def make_data(root: Path, records: int = 6_000, **options: Any) -> UsageManifest:
    options = {"records_per_file": 2_500, "rates": {name: 0.01 for name in INJECTABLE}, **options}
    spec = UsageSpec(START, END, records=records, **options)
    return generate(spec, root)


def truth(root: Path) -> set[tuple[str, str]]:
    table = pq.read_table(root / "ground_truth.parquet")
    return set(zip(table["record_id"].to_pylist(), table["category"].to_pylist(), strict=True))


async def finished(hub: Hub, run_id: str, timeout: float = 90) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        body = (await hub.api.get(f"{RUNS}/{run_id}")).json()
        return body if body["status"] != "running" else None

    return await eventually(done, timeout=timeout)


async def start(hub: Hub, **body: Any) -> dict[str, Any]:
    payload = {"periodStart": START.isoformat(), "periodEnd": END.isoformat(), **body}
    response = await hub.api.post(RUNS, json=payload)
    assert response.status_code == 201, response.text
    return response.json()
