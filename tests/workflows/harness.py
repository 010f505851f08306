"""The probes' workers and what the tests ask of them: start a probe, wait for its task,
send a message that must be refused (and prove it left no trace in history)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker
from temporalio.workflow import UpdateMethodMultiParam

from activities.definitions import HUB, task_queue_for
from activities.policies import ProcessPolicies
from activities.tasks import TaskRecord
from hub.alarms import PerceivedSeverity
from tests.conftest import eventually
from tests.workflows.doubles import AlarmDouble, HubDoubles, ProbeSystem, StepInput
from tests.workflows.probes import (
    ApprovalProbe,
    ApprovalProbeInput,
    ApprovalProbeResult,
    ParkProbe,
    ParkProbeInput,
    ParkProbeResult,
    TogetherProbe,
    fast_policies,
)
from worker import by_system, workflow_runner
from workflows.runtime import ProcessWorkflow, TaskSpec, TaskView


@dataclass
class ProbeHub:
    """Workers serving the probes on a task queue of their own, with the doubles they call."""

    client: Client
    task_queue: str
    hub: HubDoubles = field(default_factory=HubDoubles)
    alarms: AlarmDouble = field(default_factory=AlarmDouble)
    system: ProbeSystem = field(default_factory=ProbeSystem)

    # --- starting -------------------------------------------------------------------------

    async def start_approval(
        self, spec: TaskSpec, *, policies: ProcessPolicies | None = None
    ) -> WorkflowHandle[ApprovalProbe, ApprovalProbeResult]:
        reference = f"approval-{uuid.uuid4().hex[:12]}"
        return await self.client.start_workflow(
            ApprovalProbe.run,
            ApprovalProbeInput(reference, spec, policies or fast_policies()),
            id=f"probe-{reference}",
            task_queue=self.task_queue,
        )

    async def start_park(
        self,
        *,
        skippable: bool = False,
        policies: ProcessPolicies | None = None,
    ) -> WorkflowHandle[ParkProbe, ParkProbeResult]:
        """A park probe whose system is down until the test says otherwise (:meth:`repair`)."""
        reference = f"park-{uuid.uuid4().hex[:12]}"
        workflow_id = f"probe-{reference}"
        self.system.down.add(workflow_id)
        step = StepInput(
            msisdn="436641234567", plan="BASIC", quantity=1, idempotency_key=f"{workflow_id}/step"
        )
        return await self.client.start_workflow(
            ParkProbe.run,
            ParkProbeInput(reference, step, policies or fast_policies(), skippable=skippable),
            id=workflow_id,
            task_queue=self.task_queue,
        )

    def repair(self, handle: WorkflowHandle[Any, Any]) -> None:
        self.system.down.discard(handle.id)

    # --- watching -------------------------------------------------------------------------

    async def open_task(
        self, handle: WorkflowHandle[Any, Any], kind: str | None = None
    ) -> TaskView:
        """The run's one open task (of ``kind``), once it is recorded in the hub database."""

        async def opened() -> TaskView | None:
            tasks = await handle.query(ProcessWorkflow.open_tasks)
            tasks = [task for task in tasks if kind is None or task.kind == kind]
            recorded = {r.id for r in self.records(handle)}
            return tasks[-1] if len(tasks) == 1 and tasks[-1].task_id in recorded else None

        return await eventually(opened, timeout=15)

    def records(
        self, handle: WorkflowHandle[Any, Any], task_id: str | None = None
    ) -> list[TaskRecord]:
        return [
            record
            for record in self.hub.task_records[handle.id]
            if task_id is None or record.id == task_id
        ]

    async def wait_for_record(
        self, handle: WorkflowHandle[Any, Any], task_id: str, action: str
    ) -> TaskRecord:
        async def landed() -> TaskRecord | None:
            return next((r for r in self.records(handle, task_id) if r.action == action), None)

        return await eventually(landed, timeout=15)

    async def wait_for_alarm(
        self, handle: WorkflowHandle[Any, Any], kind: str, severities: list[PerceivedSeverity]
    ) -> None:
        """Until the alarm ``kind`` of the run was sent with exactly ``severities``."""

        async def sent() -> bool:
            return self.alarms.of(handle.id, kind) == severities

        await eventually(sent, timeout=15)

    # --- refusals -------------------------------------------------------------------------

    async def refused(
        self,
        handle: WorkflowHandle[Any, Any],
        update: UpdateMethodMultiParam[[Any, Any], Any],
        arg: Any,
        error_type: str,
        match: str = "",
    ) -> ApplicationError:
        """Send ``update``; assert its validator refused it with ``error_type`` (and a message
        containing ``match``), and that the history holds no trace of it."""
        update_id = f"refused-{uuid.uuid4().hex}"
        with pytest.raises(WorkflowUpdateFailedError) as caught:
            await handle.execute_update(update, arg, id=update_id)
        cause = caught.value.cause
        assert isinstance(cause, ApplicationError), cause
        assert cause.type == error_type, (cause.type, cause.message)
        assert match in cause.message, cause.message
        history = await handle.fetch_history()
        assert update_id not in await accepted_updates(handle)
        assert update_id not in history.to_json()
        return cause


async def accepted_updates(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The ids of the updates the run accepted, as its history records them."""
    history = await handle.fetch_history()
    return [
        event.workflow_execution_update_accepted_event_attributes.accepted_request.meta.update_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]


@asynccontextmanager
async def probe_workers(client: Client) -> AsyncIterator[ProbeHub]:
    """One worker per system, as the hub's worker runs them (:func:`worker.by_system`): the
    probes and the hub doubles on the main queue, the alarm double on ``<queue>.alarms``, the
    probe step on ``<queue>.probe`` (and on the main queue, for eager first attempts). The
    probes run in the sandbox the hub's worker uses."""
    probe = ProbeHub(client, f"workflow-tests-{uuid.uuid4()}")
    runner = workflow_runner("strict")
    doubles = by_system(
        [
            probe.hub.record_task,
            probe.hub.park,
            probe.hub.update_dead_letter,
            probe.alarms.raise_alarm,
            probe.system.step,
        ]
    )
    # As the hub's worker does for its eager systems: the main queue runs the probe's step
    # too, for the first attempts of runs whose policies name it eager.
    doubles[HUB].append(probe.system.step)
    async with AsyncExitStack() as stack:
        for system, functions in doubles.items():
            worker = Worker(
                client,
                task_queue=task_queue_for(probe.task_queue, system),
                workflows=[ApprovalProbe, ParkProbe, TogetherProbe] if system == HUB else [],
                activities=functions,
                workflow_runner=runner,
            )
            await stack.enter_async_context(worker)
        yield probe
