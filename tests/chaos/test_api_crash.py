"""The API dies between starting an order's workflow and committing the order's row.

Found by killing the API process (SIGKILL) while orders were posted: the workflow had started,
the row was rolled back with the dead process, and the client, never answered, posted the same
``externalId`` again, which created a second order. Both workflows then provisioned the same
subscriber: one completed unseen by the hub (its state writes found no row and were dropped),
the other failed on the HSS's 409 and was reported ``failed``, while the service was live in
every system. Now a workflow waits for its order's row before any outside call and, when the
row never comes, fails having done nothing.

The crash is reproduced exactly rather than by chance: the workflow is started as the API
starts it, and no row is ever committed.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.orders import OrderStoreActivities, RecordOrderStateInput
from api.tmf641 import ServiceOrderCreate, customer_of, order_items
from hub import search_attributes
from tests.conftest import Hub, Simulators, eventually
from tests.factories import new_identity, order
from workflows.service_activation import (
    ServiceActivation,
    ServiceActivationInput,
    workflow_id_for,
)

ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"


async def test_a_workflow_whose_order_was_never_committed_does_nothing(
    hub: Hub, sims: Simulators
) -> None:
    identity = new_identity()
    body = order(identity)
    request = ServiceOrderCreate.model_validate(body)
    lost_id = uuid.uuid4().hex
    # What the dead API left behind: a started workflow, and no row.
    stray = await hub.client.start_workflow(
        ServiceActivation.run,
        ServiceActivationInput(
            order_id=lost_id,
            customer=customer_of(request),
            items=order_items(request, sealer=None),
            external_id=request.externalId,
        ),
        id=workflow_id_for(lost_id),
        task_queue=hub.settings.task_queue,
    )
    # The client was never answered, so it posts the same order again.
    again = await hub.api.post(ORDERS, json=body)
    assert again.status_code == 201, again.text
    order_id = again.json()["id"]

    async def final() -> str | None:
        state = (await hub.api.get(f"{ORDERS}/{order_id}")).json()["state"]
        return state if state in ("completed", "failed", "cancelled") else None

    assert await eventually(final, timeout=60) == "completed"

    with pytest.raises(WorkflowFailureError) as failure:
        await stray.result()
    assert isinstance(failure.value.cause, ActivityError)
    assert "not in the hub database" in str(failure.value.cause.cause)
    history = await stray.fetch_history()
    scheduled = {
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    }
    # Its state writes are local activities (no event of their own), and nothing else ran.
    assert scheduled <= {"hub.record_order_state"}, "the stray workflow called outside systems"
    # Operators filtering by status see it failed, not forever running.
    described = await stray.describe()
    assert described.typed_search_attributes.get(search_attributes.HUB_STATUS) == "failed"

    # Exactly one of everything, from the order the hub knows.
    credit = await sims.state("credit")
    assert sum(c["customerId"] == identity["customer"] for c in credit["checks"]) == 1
    hss = await sims.state("hss")
    assert sum(s["imsi"] == identity["imsi"] for s in hss["subscribers"]) == 1
    billing = await sims.state("billing")
    assert sum(s["imsi"] == identity["imsi"] for s in billing["subscriptions"]) == 1


def _scheduled(ago: timedelta) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, scheduled_time=datetime.now(UTC) - ago)
    return env


async def test_the_first_state_write_waits_for_the_row_then_gives_up(hub: Hub) -> None:
    store = OrderStoreActivities(hub.sessions, row_grace=timedelta(seconds=30))
    progress = RecordOrderStateInput(order_id=uuid.uuid4().hex, state="inProgress")

    with pytest.raises(ApplicationError) as early:
        await _scheduled(timedelta(seconds=1)).run(store.record_order_state, progress)
    assert early.value.type == "OrderNotRecordedYet" and not early.value.non_retryable

    with pytest.raises(ApplicationError) as late:
        await _scheduled(timedelta(seconds=31)).run(store.record_order_state, progress)
    assert late.value.type == "OrderNotRecorded" and late.value.non_retryable
