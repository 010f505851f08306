"""Activities that raise and clear the hub's X.733 alarms at the operators' NMS (SNMP).

An alarm reports a failure; it must not become one. The activity therefore returns which
targets got the alarm and which did not, and raises only when the alarm reached *no* target
at all, as a retryable ``ApplicationError`` of type ``AlarmNotDelivered``: the workflow calls
it with a small retry policy, so Temporal tries again a few times and then gives up, and the
workflow goes on (it catches the ``ActivityError``) with the failure visible in its history.

When does "no target at all" happen? With informs, when no NMS acknowledged in time. With
traps, which UDP never acknowledges, only when every send failed locally (the NMS's name did
not resolve, no route): those are worth the same few retries. A partial delivery is a success
with ``failed`` listed: retrying it would repeat the alarm at the NMSs that already have it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from temporalio.exceptions import ApplicationError

from activities.definitions import defn
from hub.alarms import (
    Alarm,
    EventType,
    PerceivedSeverity,
    ProbableCause,
    notification_id,
)

#: ``ApplicationError.type`` when an alarm reached none of the configured NMSs.
ALARM_NOT_DELIVERED = "AlarmNotDelivered"


class AlarmNotifier(Protocol):
    """What the activities need from a notifier: :class:`adapters.snmp.SnmpNotifier` is one."""

    @property
    def target_labels(self) -> list[str]: ...

    async def send(self, alarm: Alarm) -> list[str]: ...


@dataclass
class RaiseAlarmInput:
    """Raise (or, with ``severity`` CLEARED, clear) the alarm identified by ``alarm_key``.

    ``alarm_key`` names the alarm, not the event: ``"<order id>/<alarm kind>"``. Its raise and
    its clear use the same key, and so carry the same X.733 notification id. ``event_time`` is
    when it happened (``workflow.now()``); empty means when the activity runs.
    """

    managed_object: str
    severity: PerceivedSeverity
    event_type: EventType
    probable_cause: ProbableCause
    text: str
    alarm_key: str
    event_time: datetime | None = None


@dataclass
class RaiseAlarmResult:
    notification_id: int
    delivered_to: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class AlarmActivities:
    def __init__(self, notifier: AlarmNotifier) -> None:
        self.notifier = notifier

    @defn("alarms.raise")
    async def raise_alarm(self, data: RaiseAlarmInput) -> RaiseAlarmResult:
        alarm = Alarm(
            managed_object=data.managed_object,
            event_type=EventType(data.event_type),
            probable_cause=ProbableCause(data.probable_cause),
            severity=PerceivedSeverity(data.severity),
            text=data.text,
            notification_id=notification_id(data.alarm_key),
            event_time=data.event_time or datetime.now(UTC),
        )
        labels = self.notifier.target_labels
        failed = await self.notifier.send(alarm)
        result = RaiseAlarmResult(
            notification_id=alarm.notification_id,
            delivered_to=[label for label in labels if label not in failed],
            failed=failed,
        )
        if labels and not result.delivered_to:
            raise ApplicationError(
                f"alarm {alarm.notification_id} ({alarm.severity.name}) reached none of "
                f"{len(labels)} SNMP target(s): {', '.join(failed)}",
                result,
                type=ALARM_NOT_DELIVERED,
                non_retryable=False,
            )
        return result
