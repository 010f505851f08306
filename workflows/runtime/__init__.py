"""The deterministic process runtime every workflow stands on.

- :mod:`~workflows.runtime.options`: activity options derived from the activity's system;
- :mod:`~workflows.runtime.failures`: what a failure means (park, fail, stop);
- :mod:`~workflows.runtime.steps`: steps and compensations;
- :mod:`~workflows.runtime.parking`: a step that waits for an operator;
- :mod:`~workflows.runtime.tasks`: human tasks, their SLA and their updates;
- :mod:`~workflows.runtime.alarms`: X.733 raise, clear, settle;
- :mod:`~workflows.runtime.status`: hub status and current details;
- :mod:`~workflows.runtime.contract`: what the API needs to start and address a process;
- :mod:`~workflows.runtime.process`: one run's :class:`Runtime`, and :class:`ProcessWorkflow`,
  the base class that answers ``decide`` and the task updates.
"""

from __future__ import annotations

from workflows.runtime.contract import ProcessContract
from workflows.runtime.failures import (
    ENDS_AS_FAILED,
    ProcessCancelled,
    StepAborted,
    describe,
    process_failure,
)
from workflows.runtime.options import activity_options, policy_options, system_options
from workflows.runtime.parking import DeadLetterDecision, DecisionResult, ParkedStep
from workflows.runtime.process import ProcessWorkflow, Runtime
from workflows.runtime.status import set_details, set_hub_status, set_open_task
from workflows.runtime.tasks import (
    FormField,
    TaskClaim,
    TaskDecision,
    TaskOutcome,
    TaskSpec,
    TaskView,
)

__all__ = [
    "ENDS_AS_FAILED",
    "DeadLetterDecision",
    "DecisionResult",
    "FormField",
    "ParkedStep",
    "ProcessCancelled",
    "ProcessContract",
    "ProcessWorkflow",
    "Runtime",
    "StepAborted",
    "TaskClaim",
    "TaskDecision",
    "TaskOutcome",
    "TaskSpec",
    "TaskView",
    "activity_options",
    "describe",
    "policy_options",
    "process_failure",
    "set_details",
    "set_hub_status",
    "set_open_task",
    "system_options",
]
