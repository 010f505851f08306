"""The task inbox end to end: a test process asks a person, the inbox API lists the task, the
preparer is refused (four-eyes), another claims and decides it; its reminder, escalation and
expiry alarms reach a real NMS (snmptrapd). Real dev server, real hub database and API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from pydantic import SecretStr

from hub import search_attributes as sa
from hub.alarms import PerceivedSeverity, notification_id
from hub.settings import ApiClient, Settings
from tests.conftest import Hub, eventually
from tests.processes.tasks.probe import InboxProbe, ProbeInput, probe_workers
from tests.snmp_fixtures import TrapReceiver
from tests.test_alarms import COMMUNITY, SEVERITY_OID, nms  # noqa: F401  (the NMS fixture)
from worker import build_notifier
from workflows.runtime import FormField, TaskOutcome, TaskSpec

PEOPLE = {
    "preparer": ["regulatory"],
    "approver": ["regulatory"],
    "outsider": ["wholesale"],
    "manager": ["regulatory-managers"],
}


def key_of(name: str) -> str:
    return f"{name}-key-" + "z" * 24


def as_(name: str) -> dict[str, str]:
    return {"X-API-Key": key_of(name)}


@pytest.fixture
def hub_settings(hub_settings: Settings, nms: TrapReceiver) -> Settings:  # noqa: F811
    hub_settings.api_clients = [
        ApiClient(
            name=name,
            key=SecretStr(key_of(name)),
            scopes=["tasks:read", "tasks:decide"],
            groups=groups,
        )
        for name, groups in PEOPLE.items()
    ]
    hub_settings.snmp_targets = SecretStr(f"v2c:{COMMUNITY}@127.0.0.1:{nms.port}")
    return hub_settings


@pytest.fixture
async def probe_queue(hub: Hub) -> AsyncIterator[str]:
    queue = f"{hub.settings.task_queue}-probe"
    async with AsyncExitStack() as stack:
        notifier = build_notifier(hub.settings)
        stack.push_async_callback(notifier.aclose)
        for worker in probe_workers(
            hub.client, hub.settings, hub.sessions, notifier, task_queue=queue
        ):
            await stack.enter_async_context(worker)
        yield queue


def approval(reference: str, **changes: Any) -> TaskSpec:
    spec = TaskSpec(
        kind="approval",
        title=f"Approve the probe report {reference}",
        description="Figures and findings are in the evidence.",
        decisions=["approve", "reject"],
        candidate_groups=["regulatory"],
        reference=reference,
        form=[FormField("checked", "boolean", required=True)],
        form_decisions=["approve"],
        excluded_deciders=["api-key:preparer"],
        comment_required=["reject"],
        evidence={"simCardsInUse": 1234},
        priority=60,
    )
    for name, value in changes.items():
        setattr(spec, name, value)
    return spec


async def open_task(hub: Hub, reference: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        response = await hub.api.get("/tasks", params={"reference": reference, "open": "true"})
        rows = response.json()
        return rows[0] if rows else None

    return await eventually(find, timeout=30)


async def alarms_of(
    receiver: TrapReceiver, workflow_id: str, task_id: str, kind: str, count: int = 1
) -> list[str]:
    """The severities the NMS got for the task's alarm ``kind``, once there are ``count``."""
    alarm = notification_id(f"{workflow_id}/task/{task_id}/{kind}")

    async def check() -> list[str]:
        found = receiver.with_id(alarm)
        return [n.value(SEVERITY_OID) for n in found] if len(found) >= count else []

    return await eventually(check, timeout=30)


async def test_a_task_is_listed_refused_to_the_preparer_and_decided_by_another(
    hub: Hub,
    probe_queue: str,
    nms: TrapReceiver,  # noqa: F811
) -> None:
    reference = f"probe-{uuid.uuid4().hex[:8]}"
    workflow_id = f"probe-{reference}"
    handle = await hub.client.start_workflow(
        InboxProbe.run,
        ProbeInput(
            approval(
                reference,
                follow_up_after=1.0,
                # Long enough that the four-eyes checks below come before it on a loaded
                # machine (after it, the preparer's group is no longer a candidate: a 404).
                escalate_after=8.0,
                escalation_groups=["regulatory-managers"],
            )
        ),
        id=workflow_id,
        task_queue=probe_queue,
    )
    task = await open_task(hub, reference)
    task_id = task["id"]
    assert task["state"] == "created" and task["process"] == "inbox-probe"
    assert task["candidateGroups"] == ["regulatory"] and task["decisions"] == ["approve", "reject"]
    assert task["excludedDeciders"] == ["api-key:preparer"]
    assert task["evidence"] == {"simCardsInUse": 1234}
    listed = await hub.api.get("/tasks", params={"candidateGroup": "regulatory", "open": "true"})
    assert task_id in [t["id"] for t in listed.json()]
    assert int(listed.headers["X-Total-Count"]) >= 1
    elsewhere = await hub.api.get("/tasks", params={"candidateGroup": "wholesale", "open": "true"})
    assert task_id not in [t["id"] for t in elsewhere.json()]

    # The task's row is written by an activity before the workflow task that upserts the
    # search attributes completes: poll for them.
    async def awaiting() -> Any:
        attributes = (await handle.describe()).typed_search_attributes
        return attributes if attributes.get(sa.HUB_STATUS) == "awaiting-approval" else None

    attributes = await eventually(awaiting, timeout=15)
    assert attributes.get(sa.OPEN_TASK) == task_id

    # The reminder reaches the NMS as a warning.
    assert await alarms_of(nms, workflow_id, task_id, "follow-up") == [
        str(int(PerceivedSeverity.WARNING))
    ]

    # Four-eyes: whoever prepared it may neither claim nor decide it.
    refused = await hub.api.post(f"/tasks/{task_id}/claim", headers=as_("preparer"))
    assert refused.status_code == 403 and "four-eyes" in refused.json()["message"]
    refused = await hub.api.post(
        f"/tasks/{task_id}/complete",
        json={"decision": "approve", "fields": {"checked": True}},
        headers=as_("preparer"),
    )
    assert refused.status_code == 403 and "four-eyes" in refused.json()["message"]
    # Not a candidate: another group's task is not even there for it.
    refused = await hub.api.post(f"/tasks/{task_id}/claim", headers=as_("outsider"))
    assert refused.status_code == 404
    assert (await hub.api.get(f"/tasks/{task_id}", headers=as_("outsider"))).status_code == 404
    theirs = await hub.api.get("/tasks", params={"reference": reference}, headers=as_("outsider"))
    assert theirs.json() == [] and theirs.headers["X-Total-Count"] == "0"
    mine = await hub.api.get("/tasks", params={"reference": reference}, headers=as_("approver"))
    assert [t["id"] for t in mine.json()] == [task_id]

    claimed = await hub.api.post(f"/tasks/{task_id}/claim", headers=as_("approver"))
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["task"]["assignee"] == "api-key:approver"
    assert claimed.json()["task"]["state"] == "assigned"

    # Escalation: the managers decide now, the claim lapses, and the NMS hears of it (major).
    assert await alarms_of(nms, workflow_id, task_id, "escalation") == [
        str(int(PerceivedSeverity.MAJOR))
    ]

    async def escalated() -> dict[str, Any] | None:
        body = (await hub.api.get(f"/tasks/{task_id}")).json()
        return body if body["escalated"] else None

    moved = await eventually(escalated, timeout=15)
    assert moved["candidateGroups"] == ["regulatory-managers"] and moved["assignee"] is None
    refused = await hub.api.post(
        f"/tasks/{task_id}/complete",
        json={"decision": "approve", "fields": {"checked": True}},
        headers=as_("approver"),
    )
    assert refused.status_code == 404  # no longer its group's, nor claimed by it

    # Validation: a decision not offered, a missing field, a rejection without a comment.
    for body, status, words in (
        ({"decision": "maybe"}, 400, "not offered"),
        ({"decision": "approve"}, 400, "'checked' is required"),
        ({"decision": "approve", "fields": {"checked": "yes"}}, 400, "type boolean"),
        ({"decision": "reject"}, 400, "needs a comment"),
    ):
        answer = await hub.api.post(f"/tasks/{task_id}/complete", json=body, headers=as_("manager"))
        assert (answer.status_code, words in answer.json()["message"]) == (status, True), (
            answer.text
        )

    done = await hub.api.post(
        f"/tasks/{task_id}/complete",
        json={"decision": "approve", "comment": "figures match", "fields": {"checked": True}},
        headers=as_("manager"),
    )
    assert done.status_code == 200, done.text
    assert done.json()["task"]["state"] == "completed"
    assert done.json()["task"]["decidedBy"] == "api-key:manager"

    outcome: TaskOutcome = await handle.result()
    assert (outcome.decision, outcome.decided_by, outcome.expired) == (
        "approve",
        "api-key:manager",
        False,
    )
    assert outcome.fields == {"checked": True} and outcome.comment == "figures match"
    # Both alarms are cleared, with the ids they were raised with.
    cleared = str(int(PerceivedSeverity.CLEARED))
    assert (await alarms_of(nms, workflow_id, task_id, "follow-up", 2))[-1] == cleared
    assert (await alarms_of(nms, workflow_id, task_id, "escalation", 2))[-1] == cleared

    record = (await hub.api.get(f"/tasks/{task_id}")).json()
    actions = [(event["action"], event["actor"]) for event in record["history"]]
    assert actions == [
        ("created", None),
        ("reminded", None),
        ("claimed", "api-key:approver"),
        ("escalated", None),
        ("completed", "api-key:manager"),
    ]
    described = await handle.describe()
    assert described.typed_search_attributes.get(sa.OPEN_TASK) is None
    assert described.typed_search_attributes.get(sa.HUB_STATUS) == "running"  # decided
    closed = await hub.api.post(f"/tasks/{task_id}/claim", headers=as_("manager"))
    assert closed.status_code == 409


async def test_a_task_past_its_due_time_expires_with_the_process_outcome(
    hub: Hub,
    probe_queue: str,
    nms: TrapReceiver,  # noqa: F811
) -> None:
    reference = f"probe-{uuid.uuid4().hex[:8]}"
    workflow_id = f"probe-{reference}"
    handle = await hub.client.start_workflow(
        InboxProbe.run,
        ProbeInput(approval(reference, due_after=2.0, expiry_decision="reject")),
        id=workflow_id,
        task_queue=probe_queue,
    )
    task = await open_task(hub, reference)
    outcome: TaskOutcome = await handle.result()
    assert (outcome.decision, outcome.expired) == ("reject", True)
    record = (await hub.api.get(f"/tasks/{task['id']}")).json()
    assert record["state"] == "expired" and record["decision"] == "reject"
    assert record["decidedBy"] == "hub: due time passed"
    # The expiry reaches the NMS (minor), and is cleared once the process acted on it.
    severities = await alarms_of(nms, workflow_id, task["id"], "expired", 2)
    assert severities == [str(int(PerceivedSeverity.MINOR)), str(int(PerceivedSeverity.CLEARED))]
    overdue = await hub.api.get("/tasks", params={"overdue": "true", "reference": reference})
    assert overdue.json() == []  # expired is closed, not overdue
