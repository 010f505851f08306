"""The hub's error taxonomy: what adapters raise, and what activities make of it.

Adapters translate every library exception (httpx, zeep, pysnmp) at their boundary, so nothing
above ``adapters/`` ever sees one. The tree::

    HubError
    ├── TransientError            retry: timeouts, connection refused/reset, 5xx, 408, 429
    └── PermanentError            do not retry: 4xx, SOAP faults, malformed replies
        ├── NotFoundError         the outside system has no such record (404)
        ├── ConflictError         the record exists in a state that forbids the call (409)
        ├── AuthenticationError   our credentials were refused (401, 403): a person must act
        ├── CallbackRefused       a partner's callback refused a notification or may not be
        │                         called (its address): the partner or an operator repairs it
        └── BusinessRejection     the system answered, and the answer is "no"
            ├── CreditDeclined    the credit agency declined the customer
            ├── UnknownPlan       billing does not sell the plan ordered
            ├── InvalidKeys       the subscriber's keys cannot be used (no OPc can be derived)
            └── ReportRejected    the regulator refused a report (schema, period, version)

Activities turn a ``PermanentError`` into a non-retryable ``ApplicationError`` whose ``type``
is the exception's class name (see :func:`activities.errors.outside_call`); a workflow maps
that name back to the class with :func:`error_class`, and decides by class: a class whose
``parks`` is true waits for a person, any other permanent error fails the step.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises on purpose.

    ``system`` names the outside system ("hss", "billing"...), ``status`` the protocol status
    where there is one (HTTP status, or None for SOAP faults and network errors).
    """

    #: A failure of this class waits for a person (parks) instead of failing the step.
    parks: bool = False

    def __init__(self, message: str, *, system: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.system = system
        self.status = status

    def __str__(self) -> str:
        prefix = f"{self.system}: " if self.system else ""
        return f"{prefix}{self.message}"


class TransientError(HubError):
    """Worth retrying: the system may answer differently in a moment.

    ``retry_after`` carries a server's ``Retry-After`` hint in seconds, when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, system=system, status=status)
        self.retry_after = retry_after


class PermanentError(HubError):
    """Retrying the same call cannot succeed; a person or a compensation must act."""


class NotFoundError(PermanentError):
    """The outside system has no record under that key."""


class ConflictError(PermanentError):
    """The record exists, but in a state that forbids the call."""


class AuthenticationError(PermanentError):
    """The system refused our credentials: a technical failure a person repairs (parked)."""

    parks = True


class CallbackRefused(PermanentError):
    """A partner's callback answered a notification with a refusal (a 4xx), or points where
    the hub must not send (a private address): parked until the partner's endpoint is fixed."""

    parks = True


class BusinessRejection(PermanentError):
    """The system worked and said no (credit declined, plan not sold to this customer)."""


class CreditDeclined(BusinessRejection):
    """The credit agency declined the customer for the amount asked."""


class UnknownPlan(BusinessRejection):
    """A plan ordered is not in billing's catalogue."""


class InvalidKeys(BusinessRejection):
    """The subscriber's keys cannot be provisioned (no OPc can be derived from them)."""


class ReportRejected(BusinessRejection):
    """The regulator refused a submitted report: it does not validate, its period has not
    ended, or its version clashes with one received before. Only a new version can fix it."""


class CorrectionRefused(BusinessRejection):
    """A correction of a refused report names a source the hub may not or cannot read: the
    preparer is asked again."""


def error_class(name: str | None) -> type[HubError] | None:
    """The hub error class an ``ApplicationError.type`` names, or None for any other type.

    The type is the class name (:func:`activities.errors.outside_call`); the tree above is
    walked, so a new subclass needs no registration.
    """
    if not name:
        return None
    pending: list[type[HubError]] = [HubError]
    while pending:
        cls = pending.pop()
        if cls.__name__ == name:
            return cls
        pending.extend(cls.__subclasses__())
    return None


class ValidationFailure(ValueError):
    """Input the hub refuses before any process starts; ``field`` is a JSON-path-like name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
