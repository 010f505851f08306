"""Connecting to Temporal the same way everywhere (API, worker, CLI, tests)."""

from __future__ import annotations

from temporalio.client import Client

from hub.codec import data_converter
from hub.settings import Settings


async def connect(settings: Settings) -> Client:
    """A client with the hub's data converter (payloads encrypted when keys are set)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings.payload_keys),
    )
