"""Human tasks of the process runtime: decisions, refusals, claims and the SLA's timers.

Every refusal is checked twice: the caller gets the validator's error at once, and the run's
history holds no trace of the update (a refused decision never becomes history).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from hub.alarms import PerceivedSeverity
from tests.workflows.harness import ProbeHub, accepted_updates
from tests.workflows.probes import APPROVAL_PROCESS, ApprovalProbe
from workflows.runtime import FormField, TaskClaim, TaskDecision, TaskSpec
from workflows.runtime.tasks import ANY_GROUP, EXPIRY_DECIDER

OFFICERS = ["regulatory"]
LEADS = ["regulatory-leads"]

REPORT = TaskSpec(
    kind="report-approval",
    title="Approve the Q3 statistics for the regulator",
    decisions=["approve", "reject"],
    candidate_groups=OFFICERS,
    description="Second person's approval before the report is submitted.",
    evidence={"usedSimCards": 1_204_311, "previous": 1_187_004},
)


def report(**changes: Any) -> TaskSpec:
    return dataclasses.replace(REPORT, **changes)


def decision(
    task_id: str, choice: str, who: str, groups: list[str] = OFFICERS, **kw: Any
) -> TaskDecision:
    return TaskDecision(task_id, choice, who, groups=list(groups), **kw)


async def test_a_candidate_approves_and_the_inbox_records_each_change(probe: ProbeHub) -> None:
    handle = await probe.start_approval(report())
    task = await probe.open_task(handle)
    assert (task.kind, task.state, task.assignee) == ("report-approval", "created", None)

    outcome = await handle.execute_update(
        ApprovalProbe.complete_task, decision(task.task_id, "approve", "alice")
    )
    assert (outcome.decision, outcome.decided_by, outcome.expired) == ("approve", "alice", False)
    result = await handle.result()
    assert result.outcome == outcome

    records = probe.records(handle, task.task_id)
    assert [(r.version, r.action, r.state) for r in records] == [
        (1, "created", "created"),
        (2, "completed", "completed"),
    ]
    created, completed = records
    assert (created.process, created.workflow_id) == (APPROVAL_PROCESS, handle.id)
    assert created.decided_by is None and created.decision is None
    assert created.evidence == REPORT.evidence
    assert (completed.decision, completed.decided_by, completed.assignee) == (
        "approve",
        "alice",
        "alice",
    )
    assert completed.actor == "alice"
    assert len(await accepted_updates(handle)) == 1


async def test_a_rejection_needs_a_comment(probe: ProbeHub) -> None:
    handle = await probe.start_approval(report(comment_required=["reject"]))
    task = await probe.open_task(handle)

    for comment in (None, "   "):
        await probe.refused(
            handle,
            ApprovalProbe.complete_task,
            decision(task.task_id, "reject", "bob", comment=comment),
            "BadDecision",
            "needs a comment",
        )
    outcome = await handle.execute_update(
        ApprovalProbe.complete_task,
        decision(task.task_id, "reject", "bob", comment="roaming minutes do not add up"),
    )
    result = await handle.result()
    assert result.outcome is not None
    assert (result.outcome.decision, result.outcome.comment) == (
        "reject",
        "roaming minutes do not add up",
    )
    assert outcome == result.outcome
    records = probe.records(handle, task.task_id)
    assert [r.action for r in records] == ["created", "completed"]
    assert records[-1].comment == "roaming minutes do not add up"


async def test_the_follow_up_time_raises_a_warning_cleared_when_the_task_completes(
    probe: ProbeHub,
) -> None:
    handle = await probe.start_approval(report(follow_up_after=1.0))
    task = await probe.open_task(handle)
    kind = f"task/{task.task_id}/follow-up"

    await probe.wait_for_alarm(handle, kind, [PerceivedSeverity.WARNING])
    reminder = await probe.wait_for_record(handle, task.task_id, "reminded")
    alarm = next(a for a in probe.alarms.sent[handle.id] if a.alarm_key == f"{handle.id}/{kind}")
    assert alarm.event_time is not None
    assert alarm.event_time - reminder.created_at >= timedelta(seconds=1)
    assert task.task_id in alarm.managed_object and task.task_id in alarm.text
    assert reminder.state == "created"  # a reminder changes nothing but the record

    await handle.execute_update(
        ApprovalProbe.complete_task, decision(task.task_id, "approve", "alice")
    )
    await handle.result()
    assert probe.alarms.of(handle.id, kind) == [
        PerceivedSeverity.WARNING,
        PerceivedSeverity.CLEARED,
    ]


async def test_escalation_moves_the_task_to_the_escalation_groups(probe: ProbeHub) -> None:
    handle = await probe.start_approval(report(escalate_after=2.0, escalation_groups=LEADS))
    task = await probe.open_task(handle)
    claimed = await handle.execute_update(
        ApprovalProbe.claim_task, TaskClaim(task.task_id, "alice", OFFICERS)
    )
    assert (claimed.assignee, claimed.state) == ("alice", "assigned")

    escalated = await probe.wait_for_record(handle, task.task_id, "escalated")
    assert escalated.escalated
    assert escalated.candidate_groups == LEADS
    assert (escalated.assignee, escalated.state) == (None, "created")  # alice's claim lapsed
    assert escalated.detail == {"groups": LEADS}
    [view] = await handle.query(ApprovalProbe.open_tasks)
    assert (view.candidate_groups, view.assignee) == (LEADS, None)
    kind = f"task/{task.task_id}/escalation"
    await probe.wait_for_alarm(handle, kind, [PerceivedSeverity.MAJOR])

    # The first group decides no more: not alice, who had claimed it, nor her colleague.
    await probe.refused(
        handle,
        ApprovalProbe.complete_task,
        decision(task.task_id, "approve", "alice"),
        "NotCandidate",
    )
    await probe.refused(
        handle, ApprovalProbe.claim_task, TaskClaim(task.task_id, "bob", OFFICERS), "NotCandidate"
    )
    await handle.execute_update(
        ApprovalProbe.complete_task, decision(task.task_id, "approve", "carol", LEADS)
    )
    result = await handle.result()
    assert result.outcome is not None and result.outcome.decided_by == "carol"
    assert probe.alarms.of(handle.id, kind) == [PerceivedSeverity.MAJOR, PerceivedSeverity.CLEARED]
    assert [r.action for r in probe.records(handle, task.task_id)] == [
        "created",
        "claimed",
        "escalated",
        "completed",
    ]


async def test_reminder_and_escalation_due_at_the_same_moment_both_happen(
    probe: ProbeHub,
) -> None:
    handle = await probe.start_approval(
        report(follow_up_after=1.0, escalate_after=1.0, escalation_groups=LEADS)
    )
    task = await probe.open_task(handle)
    await probe.wait_for_record(handle, task.task_id, "escalated")
    await probe.wait_for_record(handle, task.task_id, "reminded")
    await handle.execute_update(
        ApprovalProbe.complete_task, decision(task.task_id, "approve", "carol", LEADS)
    )
    await handle.result()
    raised_cleared = [PerceivedSeverity.WARNING, PerceivedSeverity.CLEARED]
    assert probe.alarms.of(handle.id, f"task/{task.task_id}/follow-up") == raised_cleared
    assert probe.alarms.of(handle.id, f"task/{task.task_id}/escalation")[0] == (
        PerceivedSeverity.MAJOR
    )


async def test_the_due_time_ends_the_task_with_the_process_s_expiry_decision(
    probe: ProbeHub,
) -> None:
    handle = await probe.start_approval(report(due_after=2.0, expiry_decision="reject"))
    task = await probe.open_task(handle)
    assert task.due_at is not None

    result = await handle.result()
    outcome = result.outcome
    assert outcome is not None
    assert (outcome.decision, outcome.expired, outcome.decided_by) == (
        "reject",
        True,
        EXPIRY_DECIDER,
    )
    assert outcome.decided_at >= task.due_at
    last = probe.records(handle, task.task_id)[-1]
    assert (last.action, last.state, last.decision) == ("expired", "expired", "reject")
    assert last.due_at == task.due_at
    # Raised at the due time, cleared once the process acted on it (settle).
    assert probe.alarms.of(handle.id, f"task/{task.task_id}/expired") == [
        PerceivedSeverity.MINOR,
        PerceivedSeverity.CLEARED,
    ]


@pytest.mark.parametrize(
    ("expiry_decision", "why"),
    [(None, "no expiry decision: never approve by default"), ("escalate", "one it does not offer")],
    ids=["no-expiry-decision", "not-offered"],
)
async def test_a_due_time_needs_an_expiry_decision_the_task_offers(
    probe: ProbeHub, expiry_decision: str | None, why: str
) -> None:
    handle = await probe.start_approval(report(due_after=2.0, expiry_decision=expiry_decision))
    result = await handle.result()
    assert result.outcome is None, why
    assert result.refused is not None and "expiry decision" in result.refused
    assert probe.records(handle) == []  # refused before anything was recorded


async def test_four_eyes_an_excluded_identity_may_neither_claim_nor_decide(
    probe: ProbeHub,
) -> None:
    handle = await probe.start_approval(report(excluded_deciders=["alice"]))
    task = await probe.open_task(handle)
    for groups in (OFFICERS, [ANY_GROUP]):
        await probe.refused(
            handle,
            ApprovalProbe.claim_task,
            TaskClaim(task.task_id, "alice", groups),
            "FourEyes",
        )
        await probe.refused(
            handle,
            ApprovalProbe.complete_task,
            decision(task.task_id, "approve", "alice", groups),
            "FourEyes",
        )
    await handle.execute_update(
        ApprovalProbe.complete_task, decision(task.task_id, "approve", "bob")
    )
    result = await handle.result()
    assert result.outcome is not None and result.outcome.decided_by == "bob"
    records = probe.records(handle, task.task_id)
    assert [r.action for r in records] == ["created", "completed"]
    assert records[0].excluded_deciders == ["alice"]


FORM = report(
    form=[
        FormField("amount", "number", required=True, label="Corrected revenue (EUR)"),
        FormField("lines", "integer"),
        FormField("note", "string"),
        FormField("checked", "boolean", equals=True),
    ],
    form_decisions=["approve"],
    comment_required=["reject"],
)


@pytest.mark.parametrize(
    ("choice", "fields", "comment", "match"),
    [
        ("maybe", None, None, "'maybe' is not offered"),
        ("approve", None, None, "'amount' is required"),
        ("approve", {"amount": "12.5"}, None, "'amount' must be of type number"),
        ("approve", {"amount": True}, None, "'amount' must be of type number"),
        ("approve", {"amount": 12.5, "lines": 2.5}, None, "'lines' must be of type integer"),
        ("approve", {"amount": 12.5, "colour": "red"}, None, "'colour' is not in the task's form"),
        ("reject", {"amount": 12.5}, "too high", "fields go with approve only"),
        ("approve", {"amount": 12.5, "checked": False}, None, "'checked' must be true"),
    ],
    ids=[
        "unknown-decision",
        "missing-required-field",
        "string-for-number",
        "boolean-for-number",
        "float-for-integer",
        "unknown-field",
        "fields-with-the-wrong-decision",
        "acknowledgement-not-given",
    ],
)
async def test_a_decision_that_fails_validation_is_refused_and_leaves_no_history(
    probe: ProbeHub, choice: str, fields: dict[str, Any] | None, comment: str | None, match: str
) -> None:
    handle = await probe.start_approval(FORM)
    task = await probe.open_task(handle)
    await probe.refused(
        handle,
        ApprovalProbe.complete_task,
        decision(task.task_id, choice, "alice", comment=comment, fields=fields),
        "BadDecision",
        match,
    )
    # The task is still open, and a valid decision is taken: an int is a number too.
    await handle.execute_update(
        ApprovalProbe.complete_task,
        decision(task.task_id, "approve", "alice", fields={"amount": 12, "lines": 3}),
    )
    result = await handle.result()
    assert result.outcome is not None and result.outcome.fields == {"amount": 12, "lines": 3}
    assert [r.action for r in probe.records(handle, task.task_id)] == ["created", "completed"]
    assert len(await accepted_updates(handle)) == 1


async def test_a_decision_the_form_does_not_go_with_needs_none_of_its_fields(
    probe: ProbeHub,
) -> None:
    """The form's required field belongs to ``approve``: a rejection is made without it."""
    handle = await probe.start_approval(FORM)
    task = await probe.open_task(handle)
    await handle.execute_update(
        ApprovalProbe.complete_task,
        decision(task.task_id, "reject", "alice", comment="the regulator changed the form"),
    )
    result = await handle.result()
    assert result.outcome is not None
    assert (result.outcome.decision, result.outcome.fields) == ("reject", {})


async def test_claim_and_unclaim(probe: ProbeHub) -> None:
    handle = await probe.start_approval(report())
    task = await probe.open_task(handle)
    task_id = task.task_id

    await probe.refused(
        handle, ApprovalProbe.claim_task, TaskClaim("task-unknown", "alice", OFFICERS), "NoSuchTask"
    )
    await probe.refused(
        handle, ApprovalProbe.claim_task, TaskClaim(task_id, "carol", ["sales"]), "NotCandidate"
    )
    view = await handle.execute_update(
        ApprovalProbe.claim_task, TaskClaim(task_id, "alice", OFFICERS)
    )
    assert (view.assignee, view.state) == ("alice", "assigned")

    await probe.refused(
        handle,
        ApprovalProbe.claim_task,
        TaskClaim(task_id, "bob", OFFICERS),
        "TaskClaimed",
        "claimed by alice",
    )
    await probe.refused(
        handle,
        ApprovalProbe.complete_task,
        decision(task_id, "approve", "bob"),
        "TaskClaimed",
        "claimed by alice",
    )
    await probe.refused(
        handle, ApprovalProbe.unclaim_task, TaskClaim(task_id, "bob", OFFICERS), "TaskClaimed"
    )
    await probe.refused(
        handle,
        ApprovalProbe.claim_task,
        TaskClaim(task_id, "alice", OFFICERS),
        "TaskClaimed",
        "already claimed",
    )

    view = await handle.execute_update(
        ApprovalProbe.unclaim_task, TaskClaim(task_id, "alice", OFFICERS)
    )
    assert (view.assignee, view.state) == (None, "created")
    await probe.refused(
        handle,
        ApprovalProbe.unclaim_task,
        TaskClaim(task_id, "bob", OFFICERS),
        "TaskClaimed",
        "not claimed",
    )
    view = await handle.execute_update(
        ApprovalProbe.claim_task, TaskClaim(task_id, "bob", OFFICERS)
    )
    assert view.assignee == "bob"
    await handle.execute_update(ApprovalProbe.complete_task, decision(task_id, "approve", "bob"))
    result = await handle.result()
    assert result.outcome is not None and result.outcome.decided_by == "bob"

    records = probe.records(handle, task_id)
    assert [(r.version, r.action, r.actor, r.assignee) for r in records] == [
        (1, "created", None, None),
        (2, "claimed", "alice", "alice"),
        (3, "unclaimed", "alice", None),
        (4, "claimed", "bob", "bob"),
        (5, "completed", "bob", "bob"),
    ]
    assert len(await accepted_updates(handle)) == 4


async def test_the_open_tasks_query_lists_the_open_task(probe: ProbeHub) -> None:
    handle = await probe.start_approval(report(due_after=60.0, expiry_decision="reject"))
    task = await probe.open_task(handle)
    [view] = await handle.query(ApprovalProbe.open_tasks)
    assert view == task
    assert (view.kind, view.title, view.state) == (REPORT.kind, REPORT.title, "created")
    assert (view.decisions, view.candidate_groups, view.assignee) == (
        REPORT.decisions,
        OFFICERS,
        None,
    )
    created = probe.records(handle, task.task_id)[0]
    assert view.due_at == created.created_at + timedelta(seconds=60)

    await handle.execute_update(
        ApprovalProbe.complete_task, decision(task.task_id, "approve", "alice")
    )
    await handle.result()
    assert await handle.query(ApprovalProbe.open_tasks) == []
