"""Connecting to Temporal the same way everywhere (API, worker, CLI, tests)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from hub.codec import data_converter
from hub.settings import Settings

#: Histogram buckets of the hub's own metrics recorded through the SDK's meter
#: (``activities.metrics``), in seconds.
STEP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0]


def metrics_runtime(address: str) -> Runtime:
    """A Temporal runtime whose Prometheus exporter serves ``http://<address>/metrics``: the
    SDK's own metrics (workflow and activity task latencies, pollers, slots...) and the hub's
    step metrics. Durations in seconds and counters ending ``_total``, as Prometheus names
    them."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=address,
                counters_total_suffix=True,
                durations_as_seconds=True,
                histogram_bucket_overrides={
                    "hub_step_duration_seconds": STEP_BUCKETS,
                    "hub_event_delivery_lag_seconds": STEP_BUCKETS,
                },
            )
        )
    )


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client with the hub's data converter (payloads encrypted when keys are set); the
    worker passes a :func:`metrics_runtime` when it exports metrics."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings.payload_keys),
        runtime=runtime,
    )
