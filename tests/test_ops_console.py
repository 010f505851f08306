"""The Temporal UI as the operators' console: what they read there, through the Temporal client
(``describe()``, the history, the metadata query the UI itself uses), as the UI shows it.

Real dev server, worker and simulators. Memo, summaries and details are payloads like any other,
encrypted by the codec: the client here decodes them as the UI does through ``/codec``.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle

from hub import search_attributes as sa
from tests.conftest import Hub, Simulators, eventually, process_failure
from tests.factories import TS35208_K, TS35208_OPC, new_identity, order

ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"
LETTERS = "/deadLetters"


async def submit(hub: Hub, body: dict[str, Any]) -> WorkflowHandle[Any, Any]:
    response = await hub.api.post(ORDERS, json=body)
    assert response.status_code == 201, response.text
    return hub.client.get_workflow_handle(f"service-order-{response.json()['id']}")


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """What the UI shows as the workflow's current details (its metadata query)."""
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return metadata.current_details


async def activity_summaries(hub: Hub, handle: WorkflowHandle[Any, Any]) -> list[tuple[str, str]]:
    """(activity type, summary) of every activity the workflow scheduled, in order."""
    history = await handle.fetch_history()
    found = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            [summary] = await hub.client.data_converter.decode([event.user_metadata.summary])
            found.append(
                (event.activity_task_scheduled_event_attributes.activity_type.name, summary)
            )
    return found


async def test_memo_summary_and_details_tell_who_and_what(hub: Hub, sims: Simulators) -> None:
    identity = new_identity()
    handle = await submit(hub, order(identity, external_id=f"crm-{identity['imsi']}"))
    result = await handle.result()
    assert result["state"] == "completed"
    order_id = result["order_id"]

    described = await handle.describe()
    assert await described.memo() == {
        "process": "service-activation",
        "order": order_id,
        "externalId": f"crm-{identity['imsi']}",
        "customer": f"{identity['customer']} (Test Customer)",
        "items": f"1: add IMSI {identity['imsi']} plan STANDARD-5G",
    }
    summary = await described.static_summary()
    assert summary == f"TMF641 order crm-{identity['imsi']} for {identity['customer']}"
    details = await described.static_details()
    assert details is not None and identity["msisdn"] in details
    attributes = described.typed_search_attributes
    assert attributes.get(sa.CUSTOMER_ID) == identity["customer"]
    assert attributes.get(sa.PROCESS_KIND) == "service-activation"
    assert attributes.get(sa.HUB_STATUS) == "completed"
    assert await current_details(handle) == "completed"

    summaries = await activity_summaries(hub, handle)
    # Every activity says which system it calls, first: "billing: 1/billing.create_subscription".
    for activity_type, text in summaries:
        assert text.split(":")[0] == activity_type.split(".")[0], (activity_type, text)
    assert ("hss.create_subscriber", "hss: 1/hss.create_subscriber") in summaries
    # The outside systems' calls; the hub's own writes are local activities (markers, not
    # scheduled activities: workflows.service_activation.FEWER_RECORDS_PATCH).
    assert {t.split(".")[0] for t, _ in summaries} == {"credit", "crm", "hss", "billing"}
    shown = f"{await described.memo()} {summary} {details} {summaries}"
    assert TS35208_K not in shown and TS35208_OPC not in shown


async def test_a_parked_order_says_where_and_why(hub: Hub, sims: Simulators) -> None:
    identity = new_identity()
    await sims.fault("hss", operation="createSubscriber", match=identity["imsi"], kind="transient")
    handle = await submit(hub, order(identity))

    async def parked() -> str | None:
        details = await current_details(handle)
        return details if details.startswith("**parked**") else None

    details = await eventually(parked, timeout=30)
    assert "`1/hss.create_subscriber`" in details and "gave up retrying" in details
    described = await handle.describe()
    assert described.typed_search_attributes.get(sa.HUB_STATUS) == "parked"
    order_id = (await described.memo())["order"]
    [letter] = (await hub.api.get(LETTERS, params={"orderId": order_id})).json()
    assert letter["id"] in details

    assert (await hub.api.post(f"{LETTERS}/{letter['id']}/abort", json={})).status_code == 200
    assert (await process_failure(handle, "OrderFailed"))["state"] == "failed"
    # The README's query for all failed activations of a customer finds it (visibility lags).
    query = (
        f'ProcessKind="service-activation" AND CustomerId="{identity["customer"]}" '
        'AND HubStatus="failed"'
    )

    async def listed() -> list[str]:
        return [w.id async for w in hub.client.list_workflows(query)]

    assert await eventually(listed, timeout=30) == [handle.id]
    assert (await current_details(handle)).startswith("failed: 1/hss.create_subscriber: aborted")
    summaries = await activity_summaries(hub, handle)
    assert ("hss.delete_subscriber", "compensate hss: 1/hss.delete_subscriber") not in summaries
    assert ("crm.delete_customer", "compensate crm: crm.delete_customer") in summaries
