"""Fast workflow tests: the process runtime on the real dev server, activities as doubles."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from tests.workflows.harness import ProbeHub, probe_workers


@pytest.fixture(scope="session")
async def probe(temporal_client: Client) -> AsyncIterator[ProbeHub]:
    """The probes' workers, shared by the tests: each test starts runs of its own and reads
    only what the doubles received from them."""
    async with probe_workers(temporal_client) as hub:
        yield hub
