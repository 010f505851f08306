"""Who decides a task is the token's subject: four-eyes, claim and decision by OIDC callers.

The inbox probe (``tests/processes/tasks/probe.py``) asks for one approval; callers come with
access tokens signed by the real provider's key, their task groups in a ``groups`` claim.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.conftest import Hub, IdentityProvider, eventually
from tests.oauth.clients import call, idp_signed
from tests.processes.tasks.probe import InboxProbe, ProbeInput, probe_workers
from worker import build_notifier
from workflows.runtime import TaskOutcome, TaskSpec

DECIDER_SCOPES = "tasks:read tasks:decide"


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


def person(idp: IdentityProvider, sub: str, **claims: Any) -> str:
    values = {"scope": DECIDER_SCOPES, "groups": ["regulatory"]} | claims
    return idp_signed(idp, sub=sub, client_id=None, **values)


async def test_the_decider_is_the_tokens_subject(
    hub: Hub, idp: IdentityProvider, probe_queue: str
) -> None:
    reference = f"probe-{uuid.uuid4().hex[:8]}"
    handle = await hub.client.start_workflow(
        InboxProbe.run,
        ProbeInput(
            TaskSpec(
                kind="approval",
                title=f"Approve {reference}",
                description="oauth deciders",
                decisions=["approve", "reject"],
                candidate_groups=["regulatory"],
                reference=reference,
                excluded_deciders=["oidc:preparer"],
            )
        ),
        id=f"probe-{reference}",
        task_queue=probe_queue,
    )

    async def find() -> dict[str, Any] | None:
        rows = (await hub.api.get("/tasks", params={"reference": reference})).json()
        return rows[0] if rows else None

    task_id = (await eventually(find, timeout=30))["id"]

    preparer = await call(hub, "POST", f"/tasks/{task_id}/claim", person(idp, "preparer"))
    assert preparer.status_code == 403 and "four-eyes" in preparer.json()["message"]
    # A partner's token has no task groups and no task scopes, whatever it claims.
    partner = person(idp, "partner-x", partner_id="partner-x")
    assert (await call(hub, "GET", f"/tasks/{task_id}", partner)).status_code == 403

    approver = person(idp, "approver")
    claimed = await call(hub, "POST", f"/tasks/{task_id}/claim", approver)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["task"]["assignee"] == "oidc:approver"
    done = await call(
        hub, "POST", f"/tasks/{task_id}/complete", approver, json={"decision": "approve"}
    )
    assert done.status_code == 200, done.text
    assert done.json()["task"]["decidedBy"] == "oidc:approver"
    outcome: TaskOutcome = await handle.result()
    assert (outcome.decision, outcome.decided_by) == ("approve", "oidc:approver")
