"""Where the hub's error taxonomy meets Temporal's retry model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from hub.errors import PermanentError, TransientError


@contextmanager
def outside_call() -> Iterator[None]:
    """Run adapter calls; re-raise their errors as ``ApplicationError``s Temporal understands.

    Permanent errors become non-retryable with the error class as ``type`` (``NotFoundError``,
    ``BusinessRejection``...). Transient ones stay retryable, and a server's ``Retry-After``
    becomes the next retry delay.
    """
    try:
        yield
    except PermanentError as exc:
        raise ApplicationError(
            str(exc), _failure_details(), type=type(exc).__name__, non_retryable=True
        ) from exc
    except TransientError as exc:
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
        raise ApplicationError(
            str(exc), _failure_details(), type="TransientError", next_retry_delay=delay
        ) from exc


def _failure_details() -> dict[str, object]:
    """Which attempt failed and when: a parked step's dead letter reports them."""
    info = activity.info()
    return {"attempt": info.attempt, "failed_at": datetime.now(UTC).isoformat()}
