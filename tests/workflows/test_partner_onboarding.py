"""PartnerOnboarding's own logic, fast: every activity a same-named double (``defn``), on the
real dev server. Each finding, the compliance review, expiry, escalation, two approvers for a
high-risk application, a failure at each provisioning step undone in full, a connectivity
test that parks and is retried, offboarding refused while orders are open."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.billing import CloseAccountInput
from activities.definitions import HUB, defn, task_queue_for
from activities.errors import outside_call
from activities.partner_store import (
    CallbackInput,
    CallbackResult,
    HandOutInput,
    HandOutResult,
    OpenOrdersInput,
    OpenOrdersResult,
    PartnerDefaults,
    RecordPartnerInput,
    RemoveCallbackInput,
)
from activities.partners import (
    CompanyScoreInput,
    CompanyScoreResult,
    ConnectivityInput,
    ConnectivityResult,
    CrmOrganizationInput,
    DeleteClientInput,
    DeleteCrmOrganizationInput,
    RegisterClientInput,
    RegisterClientResult,
    RegistryLookupInput,
    RegistryLookupResult,
    ScreeningInput,
    ScreeningResult,
    VatCheckInput,
    VatCheckResult,
    WholesaleAccountInput,
    WholesaleAccountResult,
)
from activities.policies import ProcessPolicies, SystemPolicy
from hub.alarms import PerceivedSeverity
from hub.errors import PermanentError, TransientError
from tests.conftest import eventually, process_failure
from tests.workflows.doubles import AlarmDouble, HubDoubles
from tests.workflows.probes import fast_policies
from worker import SANDBOX_PASSTHROUGH, by_system
from workflows.partner_onboarding import (
    CONTRACT,
    ONBOARDING_FAILED,
    CredentialsRequest,
    OffboardRequest,
    PartnerInput,
    PartnerOnboarding,
    PartnerResult,
)
from workflows.runtime import DeadLetterDecision, ProcessWorkflow, TaskDecision, TaskView

NAME = "Alpine Wholesale Telecom GmbH"


def refusal(error: WorkflowUpdateFailedError) -> str:
    cause = error.cause
    assert isinstance(cause, ApplicationError), cause
    return str(cause.type)


def _run() -> str:
    return str(activity.info().workflow_id)


@dataclass
class Scenario:
    """What the outside systems answer one run."""

    vat_valid: bool = True
    vat_name: str = NAME
    registry_found: bool = True
    registry_name: str = NAME
    registry_status: str = "active"
    score: int = 700
    hits: list[dict[str, Any]] = field(default_factory=list)
    #: The provisioning activity that fails permanently.
    fail_at: str | None = None
    connectivity_down: bool = False
    open_orders: list[str] = field(default_factory=list)


@dataclass
class PartnerDoubles:
    scenarios: dict[str, Scenario] = field(default_factory=lambda: defaultdict(Scenario))
    records: dict[str, list[RecordPartnerInput]] = field(default_factory=lambda: defaultdict(list))
    #: Every side-effecting call, by run: (activity name, its input).
    calls: dict[str, list[tuple[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    approval_due: float = 3600.0
    escalate_after: float = 3600.0

    def _called(self, name: str, data: Any) -> Scenario:
        self.calls[_run()].append((name, data))
        scenario = self.scenarios[_run()]
        with outside_call():
            if scenario.fail_at == name:
                raise PermanentError(f"{name} refused", system=name.partition(".")[0])
        return scenario

    def names(self, workflow_id: str) -> list[str]:
        return [name for name, _ in self.calls[workflow_id]]

    @defn("hub.partner_defaults")
    async def defaults(self) -> PartnerDefaults:
        return PartnerDefaults(
            approver_groups=["wholesale"],
            follow_up_after=3600,
            escalate_after=self.escalate_after,
            escalation_groups=["wholesale-managers"],
            approval_due_after=self.approval_due,
            compliance_groups=["compliance"],
            min_credit_score=500,
            name_match_threshold=85,
            sanctions_threshold=88,
            connectivity_timeout=5,
            currency="EUR",
        )

    @defn("hub.process_policies")
    async def process_policies(self) -> ProcessPolicies:
        policies = fast_policies()
        quick = SystemPolicy(0.05, 1.0, 0.05, 2, 5.0, None)
        for system in ("vies", "registry", "credit", "billing", "crm", "identity", "partner"):
            policies.systems[system] = quick
        return policies

    @defn("hub.record_partner")
    async def record(self, data: RecordPartnerInput) -> None:
        self.records[_run()].append(data)

    @defn("hub.register_partner_callback")
    async def register_callback(self, data: CallbackInput) -> CallbackResult:
        self._called("hub.register_partner_callback", data)
        return CallbackResult("sealed:v1:k:webhook")

    @defn("hub.remove_partner_callback")
    async def remove_callback(self, data: RemoveCallbackInput) -> None:
        self._called("hub.remove_partner_callback", data)

    @defn("hub.hand_out_partner_credentials")
    async def hand_out(self, data: HandOutInput) -> HandOutResult:
        self._called("hub.hand_out_partner_credentials", data)
        return HandOutResult("client-1", "sealed:secret", "sealed:webhook", datetime.now(UTC))

    @defn("hub.partner_open_orders")
    async def open_orders(self, data: OpenOrdersInput) -> OpenOrdersResult:
        return OpenOrdersResult(list(self.scenarios[_run()].open_orders))

    @defn("vies.check_vat")
    async def check_vat(self, data: VatCheckInput) -> VatCheckResult:
        s = self.scenarios[_run()]
        return VatCheckResult(
            data.vat_id, s.vat_valid, s.vat_name if s.vat_valid else None, None, "2026-12-01"
        )

    @defn("registry.lookup_company")
    async def lookup(self, data: RegistryLookupInput) -> RegistryLookupResult:
        s = self.scenarios[_run()]
        if not s.registry_found:
            return RegistryLookupResult(False)
        return RegistryLookupResult(True, s.registry_name, "GmbH", s.registry_status, "AT")

    @defn("credit.company_score")
    async def score(self, data: CompanyScoreInput) -> CompanyScoreResult:
        return CompanyScoreResult(self.scenarios[_run()].score, "chk-1")

    @defn("partners.screen_sanctions", system=HUB)
    async def screen(self, data: ScreeningInput) -> ScreeningResult:
        return ScreeningResult(list(self.scenarios[_run()].hits), "sample.xml", 4)

    @defn("billing.open_wholesale_account")
    async def open_account(self, data: WholesaleAccountInput) -> WholesaleAccountResult:
        self._called("billing.open_wholesale_account", data)
        return WholesaleAccountResult("acc-1", True)

    @defn("billing.close_account")
    async def close_account(self, data: CloseAccountInput) -> None:
        self._called("billing.close_account", data)

    @defn("crm.upsert_organization")
    async def upsert_organization(self, data: CrmOrganizationInput) -> None:
        self._called("crm.upsert_organization", data)

    @defn("crm.delete_organization")
    async def delete_organization(self, data: DeleteCrmOrganizationInput) -> None:
        self._called("crm.delete_organization", data)

    @defn("identity.register_client")
    async def register_client(self, data: RegisterClientInput) -> RegisterClientResult:
        self._called("identity.register_client", data)
        return RegisterClientResult(
            "client-1", "https://idp/reg/client-1", "sealed:secret", "sealed:token", "https://idp/t"
        )

    @defn("identity.delete_client")
    async def delete_client(self, data: DeleteClientInput) -> None:
        self._called("identity.delete_client", data)

    @defn("partner.connectivity_test")
    async def connectivity(self, data: ConnectivityInput) -> ConnectivityResult:
        scenario = self._called("partner.connectivity_test", data)
        with outside_call():
            if scenario.connectivity_down:
                raise TransientError("no answer within 5s", system="partner")
        return ConnectivityResult(204, datetime.now(UTC), data.message_id)


@dataclass
class Partners:
    client: Client
    task_queue: str
    doubles: PartnerDoubles
    hub: HubDoubles
    alarms: AlarmDouble

    async def start(
        self, scenario: Scenario | None = None
    ) -> WorkflowHandle[PartnerOnboarding, PartnerResult]:
        application_id = f"pa-{uuid.uuid4().hex[:10]}"
        workflow_id = CONTRACT.workflow_id(application_id)
        self.doubles.scenarios[workflow_id] = scenario or Scenario()
        data = PartnerInput(
            application_id=application_id,
            organization_id=f"org-{application_id}",
            party_role_id=f"pr-{application_id}",
            name=NAME,
            registration_number="FN 123456a",
            vat_id="ATU12345678",
            callback_url="https://partner.example.com/hooks",
            scopes=["orders:read"],
            applied_by="sales",
            representatives=["Anna Berger"],
        )
        return await self.client.start_workflow(
            PartnerOnboarding.run, data, id=workflow_id, task_queue=self.task_queue
        )

    async def task(self, handle: WorkflowHandle[Any, Any], kind: str) -> TaskView:
        async def opened() -> TaskView | None:
            tasks = await handle.query(ProcessWorkflow.open_tasks)
            return next((t for t in tasks if t.kind == kind), None)

        found: TaskView = await eventually(opened, timeout=20)
        return found

    async def decide(
        self,
        handle: WorkflowHandle[Any, Any],
        kind: str,
        decision: str,
        who: str,
        groups: list[str] | None = None,
    ) -> None:
        task = await self.task(handle, kind)
        await handle.execute_update(
            ProcessWorkflow.complete_task,
            TaskDecision(
                task.task_id,
                decision,
                who,
                groups or ["wholesale"],
                comment="looked at it" if decision != "approve" else None,
            ),
        )

    async def status(self, handle: WorkflowHandle[Any, Any], status: str) -> None:
        async def there() -> bool:
            return bool(await handle.query(PartnerOnboarding.partner_status) == status)

        await eventually(there, timeout=20)

    def statuses(self, handle: WorkflowHandle[Any, Any]) -> list[str]:
        seen: list[str] = []
        for record in self.doubles.records[handle.id]:
            if not seen or seen[-1] != record.status:
                seen.append(record.status)
        return seen

    def findings(self, handle: WorkflowHandle[Any, Any]) -> list[str]:
        for record in self.doubles.records[handle.id]:
            if record.findings is not None:
                return [f["code"] for f in record.findings]
        return []


@pytest.fixture
async def partners(temporal_client: Client) -> AsyncIterator[Partners]:
    doubles, hub, alarms = PartnerDoubles(), HubDoubles(), AlarmDouble()
    queue = f"partner-tests-{uuid.uuid4()}"
    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*SANDBOX_PASSTHROUGH)
    )
    functions = by_system(
        [
            doubles.defaults,
            doubles.process_policies,
            doubles.record,
            doubles.register_callback,
            doubles.remove_callback,
            doubles.hand_out,
            doubles.open_orders,
            doubles.check_vat,
            doubles.lookup,
            doubles.score,
            doubles.screen,
            doubles.open_account,
            doubles.close_account,
            doubles.upsert_organization,
            doubles.delete_organization,
            doubles.register_client,
            doubles.delete_client,
            doubles.connectivity,
            hub.record_task,
            hub.park,
            hub.update_dead_letter,
            alarms.raise_alarm,
        ]
    )
    async with AsyncExitStack() as stack:
        for system, activities in functions.items():
            await stack.enter_async_context(
                Worker(
                    temporal_client,
                    task_queue=task_queue_for(queue, system),
                    workflows=[PartnerOnboarding] if system == HUB else [],
                    activities=activities,
                    workflow_runner=runner,
                )
            )
        yield Partners(temporal_client, queue, doubles, hub, alarms)


PROVISIONED = [
    "billing.open_wholesale_account",
    "crm.upsert_organization",
    "identity.register_client",
    "hub.register_partner_callback",
    "partner.connectivity_test",
]


async def test_an_approved_partner_is_provisioned_then_offboarded(partners: Partners) -> None:
    handle = await partners.start()
    await partners.decide(handle, "approval", "approve", "bob")
    await partners.status(handle, "active")
    assert partners.findings(handle) == []
    assert partners.doubles.names(handle.id) == PROVISIONED
    # The credentials, once.
    handed = await handle.execute_update(
        PartnerOnboarding.hand_out_credentials, CredentialsRequest("k:pub", "olga")
    )
    assert (handed.client_id, handed.token_endpoint) == ("client-1", "https://idp/t")
    with pytest.raises(WorkflowUpdateFailedError) as again:
        await handle.execute_update(
            PartnerOnboarding.hand_out_credentials, CredentialsRequest("k:pub", "olga")
        )
    assert refusal(again.value) == "CredentialsGone"
    accepted = await handle.execute_update(
        PartnerOnboarding.request_offboarding, OffboardRequest("alice", "contract ended")
    )
    assert accepted.task_id.startswith("task-")
    await partners.decide(handle, "offboarding", "approve", "bob")
    result = await handle.result()
    assert result.status == "closed"
    assert partners.doubles.names(handle.id)[len(PROVISIONED) + 1 :] == [
        "identity.delete_client",
        "billing.close_account",
        "crm.upsert_organization",
        "hub.remove_partner_callback",
    ]
    closed_crm = partners.doubles.calls[handle.id][-2][1]
    assert closed_crm.status == "closed"
    assert partners.statuses(handle) == [
        "checking", "awaitingApproval", "provisioning", "testing", "active", "offboarding",
        "closed",
    ]  # fmt: skip
    last = partners.doubles.records[handle.id][-1]
    assert (last.organization_status, last.party_role_status) == ("closed", "terminated")


@pytest.mark.parametrize(
    ("scenario", "finding"),
    [
        (Scenario(vat_valid=False), "vatInvalid"),
        (Scenario(registry_name="Bergbahn Logistik AG"), "nameMismatch"),
        (Scenario(registry_status="dissolved"), "companyInactive"),
        (Scenario(registry_found=False), "companyNotFound"),
        (Scenario(score=420), "lowCreditScore"),
    ],
    ids=["vat", "name", "inactive", "unregistered", "score"],
)
async def test_each_check_finding_goes_to_the_approver(
    partners: Partners, scenario: Scenario, finding: str
) -> None:
    handle = await partners.start(scenario)
    task = await partners.task(handle, "approval")
    assert task.candidate_groups == ["wholesale"]
    assert finding in partners.findings(handle)

    async def recorded() -> list[Any]:
        return [r for r in partners.hub.task_records[handle.id] if r.action == "created"]

    [record] = await eventually(recorded, timeout=15)
    assert finding in [f["code"] for f in record.evidence["findings"]]
    await partners.decide(handle, "approval", "reject", "bob")
    result = await handle.result()
    assert result.status == "rejected" and "bob" in result.reasons[0]
    assert partners.doubles.names(handle.id) == []  # nothing provisioned


async def test_a_sanctions_hit_is_reviewed_by_compliance_first(partners: Partners) -> None:
    hit = {
        "screened": NAME,
        "listed": "Alpine Wholesale",
        "score": 95.0,
        "euReferenceNumber": "EU.T",
    }
    handle = await partners.start(Scenario(hits=[hit]))
    review = await partners.task(handle, "compliance-review")
    assert review.candidate_groups == ["compliance"]
    assert "sanctionsHit" in partners.findings(handle)
    await partners.decide(handle, "compliance-review", "clear", "carla", ["compliance"])
    # Cleared, but high risk: two approvers.
    await partners.decide(handle, "approval", "approve", "bob")
    await partners.decide(handle, "second-approval", "approve", "dora")
    await partners.status(handle, "active")


async def test_a_rejected_sanctions_review_rejects_the_application(partners: Partners) -> None:
    hit = {
        "screened": NAME,
        "listed": "Alpine Wholesale",
        "score": 95.0,
        "euReferenceNumber": "EU.T",
    }
    handle = await partners.start(Scenario(hits=[hit]))
    await partners.decide(handle, "compliance-review", "reject", "carla", ["compliance"])
    result = await handle.result()
    assert result.status == "rejected" and "compliance" in result.reasons[0]
    assert partners.doubles.names(handle.id) == []


async def test_a_high_risk_application_needs_two_different_approvers(partners: Partners) -> None:
    handle = await partners.start(Scenario(score=350))
    await partners.decide(handle, "approval", "approve", "bob")
    second = await partners.task(handle, "second-approval")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            ProcessWorkflow.complete_task,
            TaskDecision(second.task_id, "approve", "bob", ["wholesale"]),
        )
    assert refusal(refused.value) == "FourEyes"
    await partners.decide(handle, "second-approval", "approve", "carol")
    await partners.status(handle, "active")
    approvals = [r.approved_by for r in partners.doubles.records[handle.id] if r.approved_by]
    assert approvals[-1] == ["bob", "carol"]


async def test_an_approval_nobody_decides_expires_rejected(partners: Partners) -> None:
    partners.doubles.approval_due = 0.5
    try:
        handle = await partners.start()
        result = await handle.result()
    finally:
        partners.doubles.approval_due = 3600.0
    assert result.status == "rejected" and "due time" in result.reasons[0]
    assert [r.action for r in partners.hub.task_records[handle.id]][-1] == "expired"
    assert partners.doubles.names(handle.id) == []


async def test_an_approval_escalates_to_the_managers_with_an_alarm(partners: Partners) -> None:
    partners.doubles.escalate_after = 0.3
    try:
        handle = await partners.start()
        task = await partners.task(handle, "approval")

        async def escalated() -> bool:
            return any(r.action == "escalated" for r in partners.hub.task_records[handle.id])

        await eventually(escalated, timeout=15)
    finally:
        partners.doubles.escalate_after = 3600.0
    kind = f"task/{task.task_id}/escalation"

    async def raised() -> bool:
        return partners.alarms.of(handle.id, kind) == [PerceivedSeverity.MAJOR]

    await eventually(raised, timeout=15)
    [record] = [r for r in partners.hub.task_records[handle.id] if r.action == "escalated"]
    assert record.candidate_groups == ["wholesale-managers"]
    await partners.decide(handle, "approval", "approve", "mia", ["wholesale-managers"])
    await partners.status(handle, "active")

    async def cleared() -> bool:
        severities = partners.alarms.of(handle.id, kind)
        return severities == [PerceivedSeverity.MAJOR, PerceivedSeverity.CLEARED]

    await eventually(cleared, timeout=15)


@pytest.mark.parametrize(
    ("failing", "undone"),
    [
        ("billing.open_wholesale_account", []),
        ("crm.upsert_organization", ["billing.close_account"]),
        ("identity.register_client", ["crm.delete_organization", "billing.close_account"]),
    ],
    ids=["billing", "crm", "identity"],
)
async def test_a_provisioning_failure_undoes_every_step_done(
    partners: Partners, failing: str, undone: list[str]
) -> None:
    handle = await partners.start(Scenario(fail_at=failing))
    await partners.decide(handle, "approval", "approve", "bob")
    result = await process_failure(handle, ONBOARDING_FAILED)
    assert result["status"] == "failed" and failing in result["reasons"][0]
    names = partners.doubles.names(handle.id)
    assert names[names.index(failing) + 1 :] == undone
    assert partners.doubles.records[handle.id][-1].status == "failed"


async def test_a_connectivity_test_aborted_after_parking_undoes_everything(
    partners: Partners,
) -> None:
    handle = await partners.start(Scenario(connectivity_down=True))
    await partners.decide(handle, "approval", "approve", "bob")

    async def parked() -> Any:
        return partners.hub.parks[handle.id]

    [letter] = await eventually(parked, timeout=20)
    await partners.task(handle, "dead-letter")  # the run is waiting for the decision now
    await handle.execute_update(
        ProcessWorkflow.decide, DeadLetterDecision(letter.id, "abort", "olga", "partner gone")
    )
    await process_failure(handle, ONBOARDING_FAILED)
    names = partners.doubles.names(handle.id)
    last_test = len(names) - 1 - names[::-1].index("partner.connectivity_test")
    assert names[last_test + 1 :] == [
        "hub.remove_partner_callback",
        "identity.delete_client",
        "crm.delete_organization",
        "billing.close_account",
    ]


async def test_a_failing_connectivity_test_parks_until_the_partner_is_fixed(
    partners: Partners,
) -> None:
    handle = await partners.start(Scenario(connectivity_down=True))
    await partners.decide(handle, "approval", "approve", "bob")

    async def parked() -> Any:
        return partners.hub.parks[handle.id]

    [letter] = await eventually(parked, timeout=20)
    await partners.task(handle, "dead-letter")  # the run is waiting for the decision now
    assert letter.step == "partner.connectivity_test" and "no answer" in letter.last_error
    assert await handle.query(PartnerOnboarding.partner_status) == "testing"
    partners.doubles.scenarios[handle.id].connectivity_down = False  # the partner fixed it
    await handle.execute_update(
        ProcessWorkflow.decide, DeadLetterDecision(letter.id, "retry", "olga", "endpoint fixed")
    )
    await partners.status(handle, "active")
    tests = [n for n in partners.doubles.names(handle.id) if n == "partner.connectivity_test"]
    assert len(tests) >= 3  # two tries before parking, one after the retry


async def test_offboarding_is_refused_while_orders_are_open(partners: Partners) -> None:
    handle = await partners.start(Scenario(open_orders=["so-1"]))
    await partners.decide(handle, "approval", "approve", "bob")
    await partners.status(handle, "active")
    await handle.execute_update(
        PartnerOnboarding.request_offboarding, OffboardRequest("alice", None)
    )
    await partners.decide(handle, "offboarding", "approve", "bob")

    async def refused() -> bool:
        records = partners.doubles.records[handle.id]
        return any(r.reasons and "open orders so-1" in r.reasons[0] for r in records)

    await eventually(refused, timeout=20)
    assert await handle.query(PartnerOnboarding.partner_status) == "active"
    assert "identity.delete_client" not in partners.doubles.names(handle.id)
    partners.doubles.scenarios[handle.id].open_orders = []  # the order completed
    await handle.execute_update(
        PartnerOnboarding.request_offboarding, OffboardRequest("alice", None)
    )
    await partners.decide(handle, "offboarding", "approve", "bob")
    assert (await handle.result()).status == "closed"
