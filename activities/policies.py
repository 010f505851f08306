"""Per-system retry policies, read from the worker's settings.

Workflows cannot read settings (that would be I/O), so they ask this local activity once at
start; the answer is recorded in history, and replays see the same policies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from activities.definitions import defn
from hub.settings import SYSTEMS, Settings


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
    #: The systems whose first attempt runs eagerly on the main task queue
    #: (:func:`eager_systems`); none in the runs recorded before it existed.
    eager: list[str] = field(default_factory=list)


def eager_systems(settings: Settings) -> list[str]:
    """The outside systems whose first attempts go through the main queue
    (``HUB_EAGER_FIRST_ATTEMPT``): all but those with a rate limit, which only their own
    queue can enforce."""
    if not settings.eager_first_attempt:
        return []
    return [system for system in SYSTEMS if system not in settings.rate_limit]


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
            eager=eager_systems(self.settings),
        )
