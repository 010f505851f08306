"""Activity options derived from the activity: its system's task queue, timeouts and retries.

A step never names its system: :func:`activities.definitions.system_of` reads it from the
activity, and the system's policy (read from settings once per run, see
:class:`activities.policies.PolicyActivities`) gives the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.definitions import system_of, task_queue_for
    from activities.policies import ProcessPolicies, SystemPolicy
    from hub.settings import ALARMS

#: Used when the policies a run recorded have none for alarms (they predate it): alarms are
#: always tried a few times only, never without end.
ALARM_FALLBACK_POLICY = SystemPolicy(
    initial_interval=1.0,
    backoff_coefficient=2.0,
    maximum_interval=10.0,
    maximum_attempts=3,
    attempt_timeout=30.0,
    schedule_to_close=60.0,
)
#: A system without a policy of its own (an older run's recorded policies).
DEFAULT_ATTEMPT_TIMEOUT = timedelta(seconds=30)


def policy_options(policy: SystemPolicy) -> dict[str, Any]:
    """Timeouts and retry policy of activity options, from a system's policy."""
    return {
        "start_to_close_timeout": timedelta(seconds=policy.attempt_timeout),
        "schedule_to_close_timeout": (
            timedelta(seconds=policy.schedule_to_close) if policy.schedule_to_close else None
        ),
        "retry_policy": RetryPolicy(
            initial_interval=timedelta(seconds=policy.initial_interval),
            backoff_coefficient=policy.backoff_coefficient,
            maximum_interval=timedelta(seconds=policy.maximum_interval),
            maximum_attempts=policy.maximum_attempts,
        ),
    }


def system_options(policies: ProcessPolicies, system: str) -> dict[str, Any]:
    """Task queue, timeouts and retry policy of one system's activities."""
    options: dict[str, Any] = {"task_queue": task_queue_for(workflow.info().task_queue, system)}
    if system == ALARMS:
        policy = policies.systems.get(ALARMS) or ALARM_FALLBACK_POLICY
        if not policy.maximum_attempts and not policy.schedule_to_close:
            policy = dataclasses.replace(policy, maximum_attempts=3)  # never retry forever
        return {**options, **policy_options(policy)}
    recorded = policies.systems.get(system)
    if recorded is None:
        return {**options, "start_to_close_timeout": DEFAULT_ATTEMPT_TIMEOUT}
    return {**options, **policy_options(recorded)}


def activity_options(policies: ProcessPolicies, activity: Callable[..., Any]) -> dict[str, Any]:
    """The options of ``activity``: its system's (:func:`system_options`)."""
    return system_options(policies, system_of(activity))


def local_activity_options(
    policies: ProcessPolicies, activity: Callable[..., Any]
) -> dict[str, Any]:
    """The options of ``activity`` run as a local activity (in the workflow's worker, within
    its workflow task): its system's timeouts and retry policy, no task queue."""
    options = activity_options(policies, activity)
    del options["task_queue"]
    return options
