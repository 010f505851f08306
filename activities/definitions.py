"""Activity definitions that know their system.

Every activity belongs to one outside system (``credit``, ``billing``...), to the hub's own
database (``hub``), or to a bulk concern with a queue of its own (``reconciliation``,
``exports``, ``alarms``). :func:`defn` records that on the activity itself, so the system is
derived from the activity everywhere it matters: the worker groups activities by it into one
task queue per system, and a workflow's step takes its queue and retry policy from it. No
step names its system as a string beside the activity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from temporalio import activity

F = TypeVar("F", bound=Callable[..., Any])

#: The hub's own activities (its database, its settings): on the main task queue.
HUB = "hub"

_NAME = "__hub_activity_name__"
_SYSTEM = "__hub_activity_system__"


def defn(name: str, *, system: str | None = None) -> Callable[[F], F]:
    """``@activity.defn(name=name)``, remembering the system (default: the name's prefix,
    ``"credit.check"`` belongs to ``credit``)."""

    def decorate(fn: F) -> F:
        setattr(fn, _NAME, name)
        setattr(fn, _SYSTEM, system or name.partition(".")[0])
        return activity.defn(name=name)(fn)

    return decorate


def name_of(fn: Callable[..., Any]) -> str:
    """The activity type name :func:`defn` gave ``fn``."""
    try:
        return str(getattr(fn, _NAME))
    except AttributeError:
        raise TypeError(f"{fn!r} is not defined with activities.definitions.defn") from None


def system_of(fn: Callable[..., Any]) -> str:
    """The system :func:`defn` recorded for ``fn``."""
    try:
        return str(getattr(fn, _SYSTEM))
    except AttributeError:
        raise TypeError(f"{fn!r} is not defined with activities.definitions.defn") from None


def task_queue_for(task_queue: str, system: str) -> str:
    """The queue of a system's activities: ``<task queue>.<system>``, the hub's own on the main
    one. Each outside system has its own queue, so it can be rate-limited on its own."""
    return task_queue if system == HUB else f"{task_queue}.{system}"
