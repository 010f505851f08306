"""The hub's step metrics, recorded around every activity by a worker interceptor.

Recorded through the Temporal SDK's own metric meter (``activity.metric_meter()``), so they
are served by the same Prometheus exporter as the SDK's metrics (the worker's
``HUB_WORKER_METRICS_ADDRESS``) and carry its labels (``namespace``, ``task_queue``,
``activity_type``); the hub adds ``system`` (the outside system the activity calls) and
``outcome``:

- ``hub_steps_total{system,outcome}``: attempts, by outcome ``ok``, ``retryable`` (the
  attempt failed and Temporal retries it), ``failed`` (a non-retryable error: the step parks
  or the process decides) or ``cancelled``;
- ``hub_step_duration_seconds{system,outcome}``: an attempt's time, a histogram (buckets:
  ``hub.temporal.STEP_BUCKETS``);
- ``hub_step_retries_total{system}``: attempts after the first;
- ``hub_step_errors_total{system,error_class}``: failed attempts by the hub's error class
  (``TransientError``, ``AuthenticationError``, ``CreditDeclined``...: a bounded set, never a
  message).

With no exporter configured the meter is Temporal's no-op one: nothing is recorded.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from activities.definitions import HUB, system_of


def error_class(err: BaseException) -> str:
    """The hub's name for an error: an ``ApplicationError``'s type, else its Python class."""
    if isinstance(err, ApplicationError) and err.type:
        return err.type
    return type(err).__name__


def _system(fn: Any) -> str:
    try:
        return system_of(fn)
    except TypeError:
        return HUB


class _StepMetrics(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        meter = activity.metric_meter().with_additional_attributes({"system": _system(input.fn)})
        if activity.info().attempt > 1:
            meter.create_counter("hub_step_retries", "Attempts after a step's first").add(1)
        started = time.perf_counter()
        outcome, error = "ok", None
        try:
            return await self.next.execute_activity(input)
        except BaseException as err:
            error = err
            if isinstance(err, asyncio.CancelledError):
                outcome = "cancelled"
            elif isinstance(err, ApplicationError) and err.non_retryable:
                outcome = "failed"
            else:
                outcome = "retryable"
            raise
        finally:
            attempt = meter.with_additional_attributes({"outcome": outcome})
            attempt.create_counter("hub_steps", "Step attempts, by system and outcome").add(1)
            attempt.create_histogram_float(
                "hub_step_duration_seconds", "Time of a step's attempt", "s"
            ).record(time.perf_counter() - started)
            if error is not None and outcome != "cancelled":
                meter.with_additional_attributes(
                    {"error_class": error_class(error)}
                ).create_counter(
                    "hub_step_errors", "Failed step attempts, by the hub's error class"
                ).add(1)


class StepMetrics(Interceptor):
    """Worker interceptor: :class:`_StepMetrics` around every activity."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _StepMetrics(next)
