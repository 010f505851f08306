"""The hub's alarms as ITU-T X.733 defines them, whatever channel carries them to the NOC.

An alarm report names the managed object, event type, probable cause and perceived severity,
with additional text and a notification identifier that its clear shares. The values are
numbered as the ITU-ALARM-MIB family numbers them (RFC 3877: IANA-ITU-ALARM-TC-MIB and
ITU-ALARM-TC-MIB), so an NMS reads them as they are; ``adapters/snmp.py`` sends them as SNMP
notifications, and a second channel takes the same :class:`Alarm`. Workflows choose the
values, so this module imports nothing beyond the standard library.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import IntEnum


class PerceivedSeverity(IntEnum):
    """ITU-ALARM-TC-MIB ``ItuPerceivedSeverity`` (RFC 3877 section 5.2; X.733 8.1.2.3)."""

    CLEARED = 1
    INDETERMINATE = 2
    CRITICAL = 3
    MAJOR = 4
    MINOR = 5
    WARNING = 6


class EventType(IntEnum):
    """IANA-ITU-ALARM-TC-MIB ``IANAItuEventType`` (RFC 3877 section 5.1; X.733 8.1.1)."""

    OTHER = 1
    COMMUNICATIONS_ALARM = 2
    QUALITY_OF_SERVICE_ALARM = 3
    PROCESSING_ERROR_ALARM = 4
    EQUIPMENT_ALARM = 5
    ENVIRONMENTAL_ALARM = 6
    INTEGRITY_VIOLATION = 7
    OPERATIONAL_VIOLATION = 8
    PHYSICAL_VIOLATION = 9
    SECURITY_SERVICE_OR_MECHANISM_VIOLATION = 10
    TIME_DOMAIN_VIOLATION = 11


class ProbableCause(IntEnum):
    """The causes the hub reports, numbered as IANA-ITU-ALARM-TC-MIB ``IANAItuProbableCause``.

    RFC 3877 carries several catalogues side by side (M.3100 in 1-166, QoS in 201-207, X.733
    in 500-555, X.736 in 600-615), with some causes in more than one. Where M.3100 has the
    cause the hub uses that code (158, 163...); where only X.733 has it, the X.733 one (505...).
    An NMS that loads IANA-ITU-ALARM-TC-MIB shows the names below for these numbers.
    """

    CONNECTION_ESTABLISHMENT_ERROR = 22
    INVALID_MESSAGE_RECEIVED = 23
    CORRUPT_DATA = 153
    APPLICATION_SUBSYSTEM_FAILURE = 158
    CONFIGURATION_OR_CUSTOMISATION_ERROR = 159
    DATABASE_INCONSISTENCY = 160
    SOFTWARE_ERROR = 163
    TIMEOUT_EXPIRED = 164
    CONGESTION = 202
    EXCESSIVE_RESPONSE_TIME = 204
    SYSTEM_RESOURCES_OVERLOAD = 207
    COMMUNICATIONS_PROTOCOL_ERROR = 504
    COMMUNICATIONS_SUBSYSTEM_FAILURE = 505
    THRESHOLD_CROSSED = 549
    UNDERLYING_RESOURCE_UNAVAILABLE = 554
    AUTHENTICATION_FAILURE = 600
    OTHER = 1024


def notification_id(key: str) -> int:
    """A stable X.733 notification identifier for an alarm key such as ``"<order>/<kind>"``.

    The first 31 bits of SHA-256: the raise and its clear compute the same id without storing
    anything, and it fits an Unsigned32 and a signed 32-bit field of any NMS alike.
    """
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:4], "big") >> 1


@dataclass(frozen=True)
class Alarm:
    """One X.733 alarm report. ``notification_id`` is shared by an alarm and its clear."""

    managed_object: str
    event_type: EventType
    probable_cause: ProbableCause
    severity: PerceivedSeverity
    text: str
    notification_id: int
    event_time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def cleared(self, text: str | None = None, at: datetime | None = None) -> Alarm:
        """The clear of this alarm: same managed object, cause and notification id."""
        return replace(
            self,
            severity=PerceivedSeverity.CLEARED,
            text=self.text if text is None else text,
            event_time=at or datetime.now(UTC),
        )
