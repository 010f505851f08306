"""Which of Temporal's failures the API answers with a 503 (try again) rather than a 500."""

from __future__ import annotations

import pytest
from temporalio.service import RPCError, RPCStatusCode

from api.errors import temporal_unreachable


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (RPCStatusCode.UNAVAILABLE, "connection refused"),
        (RPCStatusCode.DEADLINE_EXCEEDED, "context deadline exceeded"),
        (RPCStatusCode.RESOURCE_EXHAUSTED, "namespace rate limit exceeded"),
        # The SDK's own deadline passing, as an overloaded dev server made it happen.
        (RPCStatusCode.CANCELLED, "Timeout expired"),
    ],
)
def test_temporal_that_does_not_answer_is_a_503_with_retry_after(
    status: RPCStatusCode, message: str
) -> None:
    error = temporal_unreachable(RPCError(message, status, b""))
    assert error is not None
    assert error.status == 503
    assert error.headers == {"Retry-After": "5"}


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (RPCStatusCode.NOT_FOUND, "schedule not found"),
        (RPCStatusCode.CANCELLED, "the request was cancelled"),
        (RPCStatusCode.INVALID_ARGUMENT, "bad cron"),
    ],
)
def test_an_answer_from_temporal_is_left_to_the_route(status: RPCStatusCode, message: str) -> None:
    assert temporal_unreachable(RPCError(message, status, b"")) is None
