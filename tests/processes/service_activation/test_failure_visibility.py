"""A failed or cancelled order is visible as such in the Temporal UI, not as a completed run.

The UI's failure views are ``ExecutionStatus="Failed"`` (and ``"Canceled"``): an order that
failed must end its workflow execution failed, with its type and result in the failure, while
the API goes on answering ``failed`` / ``cancelled`` from the hub database.
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError

from hub import search_attributes
from tests.conftest import Hub, Simulators, eventually
from tests.factories import new_identity, order
from tests.test_dead_letters import letter, parked_letter
from tests.test_service_orders import CANCEL, assert_no_trace, final_state, submit


async def failure_of(handle: WorkflowHandle[Any, Any]) -> ApplicationError:
    """The ``ApplicationError`` a process's workflow failed with (``OrderFailed`` ...)."""
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError), cause
    assert cause.non_retryable
    return cause


async def listed(hub: Hub, query: str) -> list[str]:
    return [w.id async for w in hub.client.list_workflows(query)]


async def test_a_declined_order_fails_its_workflow(hub: Hub, sims: Simulators) -> None:
    identity = new_identity()
    await sims.decline(identity["customer"])
    created = await submit(hub, order(identity))
    workflow_id = f"service-order-{created['id']}"
    handle = hub.client.get_workflow_handle(workflow_id)

    error = await failure_of(handle)
    assert error.type == "OrderFailed"
    assert "credit.check" in error.message and "declined" in error.message
    [result] = error.details
    assert result["order_id"] == created["id"] and result["state"] == "failed"
    assert result["items"] == {"1": "failed"}
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED

    query = (
        f'ExecutionStatus="Failed" AND ProcessKind="service-activation" '
        f'AND CustomerId="{identity["customer"]}"'
    )
    assert await eventually(lambda: listed(hub, query)) == [workflow_id]
    done = await final_state(hub, created["id"])
    assert done["state"] == "failed"
    assert "declined" in done["errorMessage"][0]["message"]
    await assert_no_trace(sims, identity, ("crm", "hss", "billing"))


async def test_an_order_cancelled_through_the_hub_fails_as_order_cancelled(
    hub: Hub, sims: Simulators
) -> None:
    identity = new_identity()
    await sims.configure("hss", latency_ms=1500)
    created = await submit(hub, order(identity))
    handle = hub.client.get_workflow_handle(f"service-order-{created['id']}")

    async def in_hss_step() -> bool:
        status = await handle.query("status")
        return "hss" in (status.get("current_step") or "")

    await eventually(in_hss_step, timeout=30)
    response = await hub.api.post(
        CANCEL,
        json={"serviceOrder": {"id": created["id"]}, "cancellationReason": "changed mind"},
    )
    assert response.status_code == 201, response.text

    error = await failure_of(handle)
    assert error.type == "OrderCancelled"
    assert error.message == f"order {created['id']} cancelled: changed mind"
    [result] = error.details
    assert result["state"] == "cancelled"
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    done = await final_state(hub, created["id"])
    assert done["state"] == "cancelled"
    await assert_no_trace(sims, identity, ("credit", "crm", "hss", "billing"))


async def test_an_order_cancelled_through_temporal_is_undone_and_ends_canceled(
    hub: Hub, sims: Simulators
) -> None:
    """The UI's (or ``temporal workflow cancel``'s) cancel of a parked order: the dead letter
    is aborted, the done steps undone, the order ``cancelled``, the execution CANCELED."""
    identity = new_identity()
    await sims.fault("hss", operation="createSubscriber", match=identity["imsi"], kind="transient")
    created = await submit(hub, order(identity))
    handle = hub.client.get_workflow_handle(f"service-order-{created['id']}")
    parked = await parked_letter(hub, created["id"])

    async def waiting_for_a_person() -> bool:
        # The park's task is recorded and the run waits for its decision (a cancel that lands
        # while the task is still being recorded is not this test's case).
        attributes = (await handle.describe()).typed_search_attributes
        return bool(attributes.get(search_attributes.OPEN_TASK))

    await eventually(waiting_for_a_person)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    done = await final_state(hub, created["id"])
    assert done["state"] == "cancelled"
    assert done["serviceOrderItem"][0]["state"] == "cancelled"
    assert (await letter(hub, parked["id"]))["status"] == "aborted"
    await assert_no_trace(sims, identity, ("credit", "crm", "hss", "billing"))
    query = f'ExecutionStatus="Canceled" AND CustomerId="{identity["customer"]}"'
    assert await eventually(lambda: listed(hub, query)) == [handle.id]
