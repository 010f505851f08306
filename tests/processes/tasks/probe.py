"""A test process that asks one person one thing: the human-task runtime end to end.

It stands on the same runtime as every hub process (policies from settings, the real task
store, alarms to the NMS) and is served by its own workers on a queue of its own, beside the
hub's, so the inbox API, the CLI and the NMS see its task exactly as they see a real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker

from workflows.runtime import ProcessWorkflow, TaskOutcome, TaskSpec

with workflow.unsafe.imports_passed_through():
    from activities.alarms import AlarmActivities
    from activities.definitions import task_queue_for
    from activities.policies import PolicyActivities
    from activities.tasks import TaskStore
    from hub.settings import ALARMS, Settings

PROCESS = "inbox-probe"


@dataclass
class ProbeInput:
    spec: TaskSpec


@workflow.defn(name="InboxProbe")
class InboxProbe(ProcessWorkflow):
    @workflow.run
    async def run(self, data: ProbeInput) -> TaskOutcome:
        policies = await workflow.execute_local_activity_method(
            PolicyActivities.process_policies, start_to_close_timeout=timedelta(seconds=10)
        )
        runtime = self.start_runtime(
            process=PROCESS,
            reference=data.spec.reference,
            policies=policies,
            reference_kind="probe",
        )
        outcome = await runtime.ask(data.spec)
        await runtime.settle()
        return outcome


def probe_workers(
    client: Client, settings: Settings, sessions: Any, notifier: Any, *, task_queue: str
) -> list[Worker]:
    """The probe's workers: itself with the hub's task store, and its alarms' queue."""
    from worker import workflow_runner

    runner = workflow_runner("strict")
    return [
        Worker(
            client,
            task_queue=task_queue,
            workflows=[InboxProbe],
            activities=[PolicyActivities(settings).process_policies, TaskStore(sessions).record],
            workflow_runner=runner,
        ),
        Worker(
            client,
            task_queue=task_queue_for(task_queue, ALARMS),
            activities=[AlarmActivities(notifier).raise_alarm],
        ),
    ]
