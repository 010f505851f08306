"""Per-system retry policies, read from the worker's settings.

Workflows cannot read settings (that would be I/O), so they ask this local activity once at
start; the answer is recorded in history, and replays see the same policies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from activities.definitions import defn
from hub.settings import Settings


@dataclass
class SystemPolicy:
    """A Temporal retry policy and timeouts for one outside system, in seconds."""

    initial_interval: float
    backoff_coefficient: float
    maximum_interval: float
    maximum_attempts: int
    attempt_timeout: float
    schedule_to_close: float | None


@dataclass
class ProcessPolicies:
    """What a workflow needs from settings: each system's policy, and how long to park."""

    systems: dict[str, SystemPolicy]
    park_timeout: float
    #: The groups whose members repair parked steps (the candidate groups of their tasks).
    operator_groups: list[str] = field(default_factory=lambda: ["ops"])


class PolicyActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @defn("hub.process_policies")
    async def process_policies(self) -> ProcessPolicies:
        systems = {
            system: SystemPolicy(
                initial_interval=policy.initial_interval.total_seconds(),
                backoff_coefficient=policy.backoff_coefficient,
                maximum_interval=policy.maximum_interval.total_seconds(),
                maximum_attempts=policy.maximum_attempts,
                attempt_timeout=policy.attempt_timeout.total_seconds(),
                schedule_to_close=(
                    policy.schedule_to_close.total_seconds() if policy.schedule_to_close else None
                ),
            )
            for system, policy in self.settings.retry.items()
        }
        return ProcessPolicies(
            systems=systems,
            park_timeout=self.settings.park_timeout.total_seconds(),
            operator_groups=list(self.settings.task_operator_groups),
        )
