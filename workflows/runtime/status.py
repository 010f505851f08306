"""Where a process stands, as operators see it in the Temporal UI: the ``HubStatus`` and
``OpenTask`` search attributes and the run's current details."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from hub import search_attributes as sa


def set_hub_status(status: sa.HubStatus) -> None:
    workflow.upsert_search_attributes([sa.HUB_STATUS.value_set(status.value)])


def set_open_task(task_id: str | None) -> None:
    """Name the human task the process waits on (``OpenTask="task-..."``), or none."""
    workflow.upsert_search_attributes(
        [sa.OPEN_TASK.value_set(task_id) if task_id else sa.OPEN_TASK.value_unset()]
    )


def set_details(text: str) -> None:
    """The run's current details (Markdown) in the Temporal UI."""
    workflow.set_current_details(text)
