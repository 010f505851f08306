"""A process's contract: what the API needs to start it and talk to it, kept beside the
workflow it belongs to, so no route builds a workflow id, a memo or search attributes by hand.

Each process module defines one :class:`ProcessContract`; the API starts every process with
:meth:`ProcessContract.start` and sends its queries and updates by method
(``handle.execute_update(ProcessWorkflow.decide, ...)``), never by a string.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from temporalio import workflow
from temporalio.client import Client, ScheduleActionStartWorkflow, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

with workflow.unsafe.imports_passed_through():
    from hub import search_attributes as sa

I = TypeVar("I")  # noqa: E741  (the process's input)


@dataclass(frozen=True)
class ProcessContract(Generic[I]):
    """Name, kind, workflow id, search attributes, memo and summary of one process."""

    #: The workflow type name.
    name: str
    #: ``ProcessKind`` in the Temporal UI, ``process`` of its tasks and dead letters.
    kind: str
    #: The workflow's run method (``ServiceActivation.run``).
    run: Callable[[Any, I], Awaitable[Any]]
    #: ``<prefix><business id>``.
    workflow_id_prefix: str
    #: Search attributes beside ``ProcessKind`` and ``HubStatus``: identifiers only.
    search_attributes: Callable[[I], list[SearchAttributePair[Any]]] | None = None
    #: What an operator reads in the Temporal UI's memo (never a secret).
    memo: Callable[[I], dict[str, str]] | None = None
    summary: Callable[[I], str] | None = None
    details: Callable[[I], str] | None = None
    #: The business id's field in the hub's JSON logs (``orderId``), read off the workflow id.
    log_field: str = "businessId"

    def workflow_id(self, business_id: str) -> str:
        return f"{self.workflow_id_prefix}{business_id}"

    def business_id(self, workflow_id: str) -> str:
        return workflow_id.removeprefix(self.workflow_id_prefix)

    def typed_search_attributes(self, data: I) -> TypedSearchAttributes:
        pairs = [
            SearchAttributePair(sa.PROCESS_KIND, self.kind),
            SearchAttributePair(sa.HUB_STATUS, sa.HubStatus.RUNNING.value),
        ]
        if self.search_attributes is not None:
            pairs += self.search_attributes(data)
        return TypedSearchAttributes(pairs)

    async def start(
        self,
        client: Client,
        data: I,
        business_id: str,
        *,
        task_queue: str,
        use_existing: bool = False,
    ) -> WorkflowHandle[Any, Any]:
        """Start the process for ``business_id``. The same id again is refused
        (``WorkflowAlreadyStartedError``), or with ``use_existing`` answers the running one."""
        return await client.start_workflow(
            self.run,
            data,
            id=self.workflow_id(business_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=(
                WorkflowIDConflictPolicy.USE_EXISTING
                if use_existing
                else WorkflowIDConflictPolicy.FAIL
            ),
            search_attributes=self.typed_search_attributes(data),
            memo=self.memo(data) if self.memo else None,
            static_summary=self.summary(data) if self.summary else None,
            static_details=self.details(data) if self.details else None,
        )

    async def start_next(self, data: I, business_id: str) -> None:
        """From inside a run: start the process for ``business_id`` (its next version) as a
        child that outlives this run (``ABANDON``), with the same search attributes and memo
        as :meth:`start` gives. Deterministic: a replay starts nothing twice."""
        await workflow.start_child_workflow(
            self.run,
            data,
            id=self.workflow_id(business_id),
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=self.typed_search_attributes(data),
            memo=self.memo(data) if self.memo else None,
            static_summary=self.summary(data) if self.summary else None,
            static_details=self.details(data) if self.details else None,
        )

    def schedule_action(
        self, data: I, business_id: str, *, task_queue: str
    ) -> ScheduleActionStartWorkflow:
        """What a Temporal Schedule runs to start the process (each run's id gets the
        schedule's time appended by Temporal)."""
        return ScheduleActionStartWorkflow(
            self.run,
            data,
            id=self.workflow_id(business_id),
            task_queue=task_queue,
            typed_search_attributes=self.typed_search_attributes(data),
            memo=self.memo(data) if self.memo else None,
            static_summary=self.summary(data) if self.summary else None,
            static_details=self.details(data) if self.details else None,
        )
