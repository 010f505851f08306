"""X.733 alarms of one process run: raise, clear, and settle before the run closes.

Alarms are sent as SNMP notifications by the ``alarms.raise`` activity (``docs/alarms.md``)
in the background, each after the one before, so the NMS sees a raise before its clear. The
alarm key is ``<workflow id>/<kind>``, so a clear carries the notification id of the alarm
it clears. An alarm that cannot be delivered is logged and given up: it never fails or holds
up the process.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.runtime.failures import describe
from workflows.runtime.options import system_options

with workflow.unsafe.imports_passed_through():
    from activities.alarms import AlarmActivities, RaiseAlarmInput
    from activities.policies import ProcessPolicies
    from hub.alarms import EventType, PerceivedSeverity, ProbableCause
    from hub.settings import ALARMS

#: ``workflow.patched`` id: runs started before alarms existed replay without them.
ALARMS_PATCH = "saga-alarms"


class Alarms:
    """The alarms one run raised and has not cleared, and their delivery."""

    def __init__(
        self,
        *,
        process: str,
        reference: str | None,
        policies: ProcessPolicies,
        reference_kind: str = "order",
    ) -> None:
        self.process = process
        #: The business object alarms are about (an order id); None: the run itself.
        self.reference = reference
        #: What kind of object ``reference`` names, first in the managed object (``order=``).
        self.reference_kind = reference_kind
        self.policies = policies
        #: Alarms raised and not cleared, by kind: a clear repeats what it clears.
        self.active: dict[str, RaiseAlarmInput] = {}
        self._sending: asyncio.Task[None] | None = None
        self._enabled: bool | None = None

    def managed_object(self, step: str | None = None, system: str | None = None) -> str:
        """X.733 managed object: what the alarm is about, most specific last."""
        parts = [
            f"{self.reference_kind}={self.reference}"
            if self.reference
            else f"{self.process}={workflow.info().workflow_id}"
        ]
        if step:
            parts.append(f"step={step}")
        if system:
            parts.append(f"system={system}")
        return "/".join(parts)

    def raise_alarm(
        self,
        kind: str,
        severity: PerceivedSeverity,
        event_type: EventType,
        probable_cause: ProbableCause,
        text: str,
        *,
        step: str | None = None,
        system: str | None = None,
        managed_object: str | None = None,
    ) -> None:
        """Raise (or raise again, with new text) the alarm ``kind`` of this run; it is sent in
        the background. ``kind`` names the matter (``failed``, ``dead-letter/<step>``)."""
        alarm = RaiseAlarmInput(
            managed_object=managed_object or self.managed_object(step, system),
            severity=severity,
            event_type=event_type,
            probable_cause=probable_cause,
            text=text,
            alarm_key=f"{workflow.info().workflow_id}/{kind}",
            event_time=workflow.now(),
        )
        self.active[kind] = alarm
        self._send(alarm)

    def clear_alarm(self, kind: str, text: str) -> None:
        """Clear the alarm ``kind`` if it is raised: same key, so same notification id."""
        raised = self.active.pop(kind, None)
        if raised is not None:
            self._send(
                dataclasses.replace(
                    raised, severity=PerceivedSeverity.CLEARED, text=text, event_time=workflow.now()
                )
            )

    def clear_matching(self, prefix: str, text: str) -> None:
        """Clear every raised alarm whose kind starts with ``prefix``."""
        for kind in [kind for kind in self.active if kind.startswith(prefix)]:
            self.clear_alarm(kind, text)

    async def settle(self) -> None:
        """Wait until the alarms raised so far are sent or given up. A process calls it before
        it returns: a workflow that closes abandons its activities, alarms among them."""
        while self._sending is not None and not self._sending.done():
            await self._sending

    def _send(self, alarm: RaiseAlarmInput) -> None:
        if self._enabled is None:
            # Asked at the first alarm, not at start: right after a local activity (the
            # policies) a replay has not yet been told of a patch marker a later workflow task
            # holds, and would answer False where the first run answered True.
            self._enabled = workflow.patched(ALARMS_PATCH)
        if not self._enabled:
            return
        self._sending = asyncio.create_task(self._deliver(self._sending, alarm))

    async def _deliver(self, previous: asyncio.Task[None] | None, alarm: RaiseAlarmInput) -> None:
        if previous is not None:
            await previous  # never raises: see below
        severity = PerceivedSeverity(alarm.severity).name.lower()
        options: dict[str, Any] = system_options(self.policies, ALARMS)
        try:
            await workflow.execute_activity_method(
                AlarmActivities.raise_alarm,
                alarm,
                summary=f"{ALARMS}: {severity} {alarm.managed_object}",
                **options,
            )
        except ActivityError as err:
            # An alarm reports a failure; it must not become one. History keeps the attempts.
            workflow.logger.warning(
                "alarm not delivered",
                extra={"alarm_key": alarm.alarm_key, "severity": severity, "error": describe(err)},
            )
