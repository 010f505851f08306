"""What a step's failure means: park it for a person, fail the step, or stop the process.

Activities raise the hub's error classes (:mod:`hub.errors`); :func:`activities.errors.
outside_call` sends the class name as ``ApplicationError.type``. Here the name is mapped back
to the class and the class decides: retries exhausted, or a class that ``parks`` (refused
credentials), waits for a person; any other permanent error, business rejections among them,
fails the step at once.

A process that ends failed ends its workflow execution failed too (:func:`process_failure`),
so the Temporal UI's failure views and ``ExecutionStatus="Failed"`` find it.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, RetryState

with workflow.unsafe.imports_passed_through():
    from hub.alarms import EventType, ProbableCause
    from hub.errors import AuthenticationError, error_class


#: The ``workflow.patched`` id behind which a failed process fails its workflow execution
#: instead of returning a result that says ``failed``: histories recorded before still replay.
ENDS_AS_FAILED = "ends-as-failed"


def process_failure(kind: str, message: str, result: Any) -> ApplicationError:
    """What a process raises last, once its end is recorded, alarms settled and compensation
    done: non-retryable (a process is never run again by Temporal), ``type`` says how it
    ended, the first detail is the result it would have returned."""
    return ApplicationError(message, result, type=kind, non_retryable=True)


class ProcessCancelled(Exception):
    """The process was asked to stop (between steps, or while parked)."""


class StepAborted(Exception):
    """An operator (or the park deadline) gave up on a parked step."""

    def __init__(self, step: str, error: str, decided_by: str) -> None:
        super().__init__(f"{step}: aborted by {decided_by} after: {error}")
        self.step = step
        self.decided_by = decided_by

    @property
    def error(self) -> BaseException | None:
        """The failure that parked the step."""
        return self.__cause__


def describe(err: BaseException) -> str:
    """The innermost cause's message, saying so when retries ran out."""
    cause: BaseException = err
    while isinstance(cause, FailureError) and cause.cause is not None:
        cause = cause.cause
    message = str(cause.message if isinstance(cause, FailureError) else cause)
    if isinstance(err, ActivityError) and err.retry_state in (
        RetryState.MAXIMUM_ATTEMPTS_REACHED,
        RetryState.TIMEOUT,
    ):
        message = f"gave up retrying ({err.retry_state.name.lower()}): {message}"
    return message


def application_cause(err: ActivityError) -> ApplicationError | None:
    cause = err.cause
    return cause if isinstance(cause, ApplicationError) else None


def retries_exhausted(err: ActivityError) -> bool:
    return err.retry_state in (RetryState.MAXIMUM_ATTEMPTS_REACHED, RetryState.TIMEOUT)


def parkable(err: ActivityError) -> bool:
    """Whether a person should repair this failure (the step parks) rather than fail it."""
    if retries_exhausted(err):
        return True
    cause = application_cause(err)
    cls = error_class(cause.type) if cause is not None else None
    return cls is not None and cls.parks


def alarm_cause(err: BaseException | None) -> tuple[EventType, ProbableCause]:
    """X.733 event type and probable cause of a step's failure (the table in docs/alarms.md)."""
    if isinstance(err, StepAborted):
        err = err.error
    if not isinstance(err, ActivityError):
        return EventType.PROCESSING_ERROR_ALARM, ProbableCause.SOFTWARE_ERROR
    cause = application_cause(err)
    cls = error_class(cause.type) if cause is not None else None
    if cls is not None and issubclass(cls, AuthenticationError):
        return (
            EventType.SECURITY_SERVICE_OR_MECHANISM_VIOLATION,
            ProbableCause.AUTHENTICATION_FAILURE,
        )
    if err.retry_state == RetryState.TIMEOUT:
        return EventType.COMMUNICATIONS_ALARM, ProbableCause.TIMEOUT_EXPIRED
    if err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED:
        return EventType.COMMUNICATIONS_ALARM, ProbableCause.COMMUNICATIONS_SUBSYSTEM_FAILURE
    if cause is not None:  # refused: a 4xx, a SOAP fault, a business rejection
        return EventType.PROCESSING_ERROR_ALARM, ProbableCause.APPLICATION_SUBSYSTEM_FAILURE
    return EventType.PROCESSING_ERROR_ALARM, ProbableCause.SOFTWARE_ERROR
