"""PartnerOnboarding: a wholesale partner from its application to an active partner, and out.

The steps:

1. **checks**, in parallel: the VAT number (VIES-like SOAP), the company registry, the
   company's credit score, and the sanctions list (company, trading name, representatives).
   What they find (an invalid VAT number, a registry name that differs from the VAT name, an
   inactive company, a low score, a check that could not run) are findings for the approver,
   never a silent rejection;
2. **compliance review**, only for a sanctions hit (or a list that could not be screened): a
   task for the compliance group; ``reject`` ends the application ``rejected``;
3. **approval**: a task for the approver group, with follow-up, escalation and a due time
   that rejects (never approves). A high-risk application (low score, sanctions review) needs
   a second approval by another person (four-eyes);
4. **provisioning**, a saga: the wholesale billing account, the organization in the CRM, the
   OAuth2 client at the identity provider (its secrets sealed where they arrive), the callback
   with its signing secret; a failure undoes what was done, newest first;
5. **connectivity test**: a signed test notification to the callback, which must answer 2xx
   in time; a partner that does not parks the step (dead letter and task) until an operator
   retries it, the partner's endpoint fixed. Then the organization is ``validated`` and the
   role ``active``, and the credentials can be handed out once (:meth:`hand_out_credentials`).

The run then waits, ``active``, for :meth:`request_offboarding`: a task decides it (another
person than who asked); approved, and no order of the partner still open, the client is
revoked, the billing account and the CRM record closed, the callback removed: ``closed``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.partner_assessment import Assessment, assess
from workflows.runtime import (
    ProcessContract,
    ProcessWorkflow,
    StepAborted,
    TaskOutcome,
    TaskSpec,
    activity_options,
    describe,
    process_failure,
    set_hub_status,
)
from workflows.runtime.failures import application_cause

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities, CloseAccountInput
    from activities.partner_store import (
        CallbackInput,
        CallbackResult,
        HandOutInput,
        HandOutResult,
        OpenOrdersInput,
        OpenOrdersResult,
        PartnerDefaults,
        PartnerStore,
        RecordPartnerInput,
        RemoveCallbackInput,
    )
    from activities.partners import (
        CompanyScoreInput,
        ConnectivityInput,
        CrmOrganizationInput,
        DeleteClientInput,
        DeleteCrmOrganizationInput,
        PartnerCheckActivities,
        PartnerProvisioningActivities,
        RegisterClientInput,
        RegisterClientResult,
        RegistryLookupInput,
        ScreeningInput,
        VatCheckInput,
        WholesaleAccountInput,
        WholesaleAccountResult,
    )
    from activities.policies import PolicyActivities
    from hub import search_attributes as sa
    from hub.models import PartnerStatus

WORKFLOW_NAME = "PartnerOnboarding"
PROCESS_KIND = "partner-onboarding"
WORKFLOW_ID_PREFIX = "partner-"
#: The ``ApplicationError`` type a failed onboarding ends its workflow with.
ONBOARDING_FAILED = "PartnerOnboardingFailed"
#: The TMF669 party role's status once the application has ended.
ROLE_STATUS_AT_END = {
    PartnerStatus.CLOSED: "terminated",
    PartnerStatus.REJECTED: "rejected",
    PartnerStatus.FAILED: "failed",
}


@dataclass
class PartnerInput:
    application_id: str
    organization_id: str
    party_role_id: str
    name: str
    registration_number: str
    vat_id: str
    callback_url: str
    scopes: list[str]
    applied_by: str
    trading_name: str | None = None
    #: The representatives' names, screened with the company's.
    representatives: list[str] = field(default_factory=list)


@dataclass
class PartnerResult:
    application_id: str
    status: str
    reasons: list[str] = field(default_factory=list)


@dataclass
class OffboardRequest:
    """The ``request_offboarding`` update: who asks is the authenticated caller."""

    requested_by: str
    reason: str | None = None


@dataclass
class OffboardAccepted:
    task_id: str


@dataclass
class CredentialsRequest:
    """The ``hand_out_credentials`` update: ``recipient`` is a public key the asking request
    alone holds the private half of (``hub.sealing``)."""

    recipient: str
    requested_by: str


@dataclass
class CredentialsHandOut:
    client_id: str
    #: Sealed to the recipient: fields ``client_secret`` and ``webhook_secret``.
    client_secret: str
    webhook_secret: str
    token_endpoint: str


class Ended(Exception):
    """The application ends here, with ``status`` and ``reasons`` (rejected, failed)."""

    def __init__(self, status: PartnerStatus, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.status = status
        self.reasons = reasons


@workflow.defn(name=WORKFLOW_NAME)
class PartnerOnboarding(ProcessWorkflow):
    def __init__(self) -> None:
        self._status = PartnerStatus.CHECKING
        self._data: PartnerInput | None = None
        self._client: RegisterClientResult | None = None
        self._offboard: OffboardRequest | None = None
        self._offboard_task: str | None = None
        self._handed_out = False
        self._account_id: str | None = None

    @workflow.query
    def partner_status(self) -> str:
        return self._status.value

    # --- messages -------------------------------------------------------------------------

    @workflow.update
    async def request_offboarding(self, request: OffboardRequest) -> OffboardAccepted:
        """Ask to offboard the partner; answers the task that decides it."""
        self._offboard = request
        await workflow.wait_condition(lambda: self._offboard_task is not None)
        assert self._offboard_task is not None
        return OffboardAccepted(self._offboard_task)

    @request_offboarding.validator
    def _validate_offboarding(self, request: OffboardRequest) -> None:
        if self._status != PartnerStatus.ACTIVE:
            raise ApplicationError(
                f"the partner is {self._status.value}: only an active one is offboarded",
                type="NotActive",
                non_retryable=True,
            )
        if self._offboard is not None:
            raise ApplicationError(
                "an offboarding is being decided already", type="NotActive", non_retryable=True
            )

    @workflow.update
    async def hand_out_credentials(self, request: CredentialsRequest) -> CredentialsHandOut:
        """The client's credentials, once, sealed to the asking request."""
        if self._handed_out or self._client is None or self._data is None:
            raise ApplicationError("handed out already", type="CredentialsGone", non_retryable=True)
        self._handed_out = True
        options = activity_options(self.runtime.policies, PartnerStore.hand_out_credentials)
        options["retry_policy"] = RetryPolicy(
            initial_interval=timedelta(milliseconds=200), maximum_attempts=3
        )
        try:
            result: HandOutResult = await workflow.execute_activity_method(
                PartnerStore.hand_out_credentials,
                HandOutInput(self._data.application_id, request.recipient, request.requested_by),
                summary="hub: hand out the partner's credentials",
                **options,
            )
        except ActivityError as err:
            cause = application_cause(err)
            if cause is not None and cause.type == "CredentialsGone":
                raise ApplicationError(
                    cause.message, type="CredentialsGone", non_retryable=True
                ) from None
            self._handed_out = False  # nothing was handed out: it may be asked again
            raise ApplicationError(
                describe(err), type="HandOutFailed", non_retryable=True
            ) from None
        return CredentialsHandOut(
            result.client_id, result.client_secret, result.webhook_secret,
            self._client.token_endpoint,
        )  # fmt: skip

    @hand_out_credentials.validator
    def _validate_hand_out(self, request: CredentialsRequest) -> None:
        if self._handed_out:
            raise ApplicationError(
                "the credentials were handed out already", type="CredentialsGone",
                non_retryable=True,
            )  # fmt: skip
        if self._status != PartnerStatus.ACTIVE:
            raise ApplicationError(
                f"the partner is {self._status.value}: credentials are handed out once it is "
                "active",
                type="NotActive",
                non_retryable=True,
            )

    # --- the run --------------------------------------------------------------------------

    @workflow.run
    async def run(self, data: PartnerInput) -> PartnerResult:
        self._data = data
        defaults: PartnerDefaults = await workflow.execute_local_activity_method(
            PartnerStore.defaults, start_to_close_timeout=timedelta(seconds=10)
        )
        policies = await workflow.execute_local_activity_method(
            PolicyActivities.process_policies, start_to_close_timeout=timedelta(seconds=10)
        )
        self.start_runtime(
            process=PROCESS_KIND,
            reference=data.application_id,
            policies=policies,
            reference_kind="partner",
        )
        set_hub_status(sa.HubStatus.RUNNING)
        failed: str | None = None
        try:
            result = await self._onboard(data, defaults)
        except Ended as ended:
            result = await self._ended(data, ended.status, ended.reasons)
        except (ActivityError, StepAborted) as err:
            step = self.runtime.current_step or self._status.value
            failed = str(err) if isinstance(err, StepAborted) else f"{step}: {describe(err)}"
            self.runtime.alarm_failed(err, failed)
            set_hub_status(sa.HubStatus.COMPENSATING)
            given_up = await self.runtime.compensate()
            result = await self._ended(
                data, PartnerStatus.FAILED, [failed, *(f"not undone: {g}" for g in given_up)]
            )
        await self.runtime.settle()
        if failed is not None:
            raise process_failure(
                ONBOARDING_FAILED, f"partner {data.application_id} failed: {failed}", result
            )
        return result

    async def _onboard(self, data: PartnerInput, defaults: PartnerDefaults) -> PartnerResult:
        assessment = await self._checks(data, defaults)
        await self._record(
            data,
            PartnerStatus.CHECKING,
            checks=assessment.checks,
            findings=assessment.findings,
            high_risk=assessment.high_risk,
        )
        if assessment.needs_compliance:
            await self._compliance_review(data, defaults, assessment)
        approvers = await self._approval(data, defaults, assessment)
        await self._provision(data, defaults, approvers)
        # Active: nothing is undone any more; offboarding is its own, approved, way back.
        self.runtime.steps.forget_compensations()
        await self._record(
            data,
            PartnerStatus.ACTIVE,
            organization_status="validated",
            party_role_status="active",
        )
        workflow.set_current_details("**active**: the partner places orders with its client")
        while True:
            await workflow.wait_condition(lambda: self._offboard is not None)
            if await self._offboarding_approved(data, defaults):
                break
        return await self._offboard_partner(data)

    # --- checks ---------------------------------------------------------------------------

    async def _checks(self, data: PartnerInput, defaults: PartnerDefaults) -> Assessment:
        wid = workflow.info().workflow_id
        policies = self.runtime.policies
        workflow.set_current_details("**checking**: VAT, registry, credit and sanctions")
        names = [data.name, data.trading_name or "", *data.representatives]
        calls = {
            "vat": workflow.execute_activity_method(
                PartnerCheckActivities.check_vat,
                VatCheckInput(data.vat_id),
                summary="vies: check the VAT number",
                **activity_options(policies, PartnerCheckActivities.check_vat),
            ),
            "registry": workflow.execute_activity_method(
                PartnerCheckActivities.lookup_company,
                RegistryLookupInput(data.registration_number),
                summary="registry: look the company up",
                **activity_options(policies, PartnerCheckActivities.lookup_company),
            ),
            "credit": workflow.execute_activity_method(
                PartnerCheckActivities.company_score,
                CompanyScoreInput(
                    data.organization_id, data.name, f"{wid}/credit", defaults.currency
                ),
                summary="credit: the company's score",
                **activity_options(policies, PartnerCheckActivities.company_score),
            ),
            "sanctions": workflow.execute_activity_method(
                PartnerCheckActivities.screen_sanctions,
                ScreeningInput([n for n in names if n], defaults.sanctions_threshold),
                summary="hub: screen against the sanctions list",
                **activity_options(policies, PartnerCheckActivities.screen_sanctions),
            ),
        }
        results = await asyncio.gather(*calls.values(), return_exceptions=True)
        answers: dict[str, Any] = {}
        for name, result in zip(calls, results, strict=True):
            if isinstance(result, ActivityError):
                answers[name] = describe(result)  # a finding: the approver decides
            elif isinstance(result, BaseException):
                raise result
            else:
                answers[name] = result
        return assess(data.registration_number, defaults, answers)

    # --- people ---------------------------------------------------------------------------

    def _evidence(self, data: PartnerInput, assessment: Assessment) -> dict[str, Any]:
        return {
            "application": data.application_id,
            "organization": data.organization_id,
            "name": data.name,
            "registrationNumber": data.registration_number,
            "vatId": data.vat_id,
            "requestedScopes": data.scopes,
            "checks": assessment.checks,
            "findings": assessment.findings,
            "highRisk": assessment.high_risk,
        }

    async def _decide(self, data: PartnerInput, spec: TaskSpec) -> TaskOutcome:
        """Open the task, name it in the row, wait for its outcome."""
        task = await self.runtime.tasks.open(spec)
        await self._record(data, self._status, task_id=task.id)
        try:
            outcome = await self.runtime.tasks.outcome(task.id)
        except asyncio.CancelledError:
            await self.runtime.tasks.cancel(task.id, "the application was cancelled")
            raise
        set_hub_status(sa.HubStatus.RUNNING)
        return outcome

    async def _compliance_review(
        self, data: PartnerInput, defaults: PartnerDefaults, assessment: Assessment
    ) -> None:
        self._status = PartnerStatus.AWAITING_APPROVAL
        outcome = await self._decide(
            data,
            TaskSpec(
                kind="compliance-review",
                title=f"Sanctions review of {data.name}",
                description=(
                    "The application resembles an entry of the sanctions list (or could not be "
                    "screened). Clear it to go on to the approval, or reject it."
                ),
                decisions=["clear", "reject"],
                candidate_groups=list(defaults.compliance_groups),
                reference=data.application_id,
                comment_required=["clear", "reject"],
                evidence=self._evidence(data, assessment),
                due_after=defaults.approval_due_after,
                expiry_decision="reject",
                priority=80,
            ),
        )
        if outcome.decision != "clear":
            why = outcome.comment or ("the review's due time passed" if outcome.expired else "")
            raise Ended(
                PartnerStatus.REJECTED,
                [f"compliance review: rejected by {outcome.decided_by}: {why}"],
            )

    def _approval_spec(
        self,
        data: PartnerInput,
        defaults: PartnerDefaults,
        assessment: Assessment,
        *,
        second: bool,
        excluded: list[str],
    ) -> TaskSpec:
        return TaskSpec(
            kind="second-approval" if second else "approval",
            title=(
                f"{'Second approval' if second else 'Approve'} of wholesale partner {data.name}"
            ),
            description=(
                ("High risk: a second person must approve too. " if assessment.high_risk else "")
                + "Read the findings; approve to provision the partner, or reject with the reason."
            ),
            decisions=["approve", "reject"],
            candidate_groups=list(defaults.approver_groups),
            reference=data.application_id,
            comment_required=["reject"],
            excluded_deciders=excluded,
            evidence=self._evidence(data, assessment),
            follow_up_after=defaults.follow_up_after,
            escalate_after=defaults.escalate_after,
            escalation_groups=list(defaults.escalation_groups),
            due_after=defaults.approval_due_after,
            expiry_decision="reject",
            priority=70,
        )

    async def _approval(
        self, data: PartnerInput, defaults: PartnerDefaults, assessment: Assessment
    ) -> list[str]:
        """The approvers (two different people for a high-risk application); raises
        :class:`Ended` on a rejection or when a task's due time passes."""
        self._status = PartnerStatus.AWAITING_APPROVAL
        approvers: list[str] = []
        rounds = 2 if assessment.high_risk else 1
        for number in range(rounds):
            spec = self._approval_spec(
                data, defaults, assessment, second=number > 0, excluded=list(approvers)
            )
            outcome = await self._decide(data, spec)
            if outcome.decision != "approve":
                why = outcome.comment or (
                    "the approval's due time passed" if outcome.expired else ""
                )
                raise Ended(PartnerStatus.REJECTED, [f"rejected by {outcome.decided_by}: {why}"])
            approvers.append(outcome.decided_by)
            await self._record(data, self._status, approved_by=approvers, task_closed=True)
        return approvers

    # --- provisioning ---------------------------------------------------------------------

    async def _provision(
        self, data: PartnerInput, defaults: PartnerDefaults, approvers: list[str]
    ) -> None:
        wid = workflow.info().workflow_id
        await self._record(data, PartnerStatus.PROVISIONING, task_closed=True)
        account: WholesaleAccountResult = await self.runtime.call(
            "billing.open_wholesale_account",
            PartnerProvisioningActivities.open_wholesale_account,
            WholesaleAccountInput(
                data.organization_id, data.name, data.vat_id, defaults.currency, f"{wid}/billing"
            ),
        )
        self.runtime.push(
            "billing.close_account",
            BillingActivities.close_account,
            CloseAccountInput(account.account_id, f"{wid}/billing/undo"),
        )
        await self._record(data, PartnerStatus.PROVISIONING, billing_account_id=account.account_id)

        organization = CrmOrganizationInput(
            data.organization_id,
            data.name,
            data.trading_name,
            data.vat_id,
            data.registration_number,
            account.account_id,
            "active",
            f"{wid}/crm",
        )
        await self.runtime.call(
            "crm.upsert_organization",
            PartnerProvisioningActivities.upsert_organization,
            organization,
        )
        self.runtime.push(
            "crm.delete_organization",
            PartnerProvisioningActivities.delete_organization,
            DeleteCrmOrganizationInput(data.organization_id, f"{wid}/crm/undo"),
        )
        await self._record(data, PartnerStatus.PROVISIONING, crm_recorded=True)

        client: RegisterClientResult = await self.runtime.call(
            "identity.register_client",
            PartnerProvisioningActivities.register_client,
            RegisterClientInput(
                data.application_id, data.organization_id, f"{data.name} ({data.organization_id})",
                list(data.scopes),
            ),
        )  # fmt: skip
        self._client = client
        self.runtime.push(
            "identity.delete_client",
            PartnerProvisioningActivities.delete_client,
            DeleteClientInput(
                data.application_id, client.registration_client_uri,
                client.registration_token_sealed,
            ),
        )  # fmt: skip
        await self._record(
            data,
            PartnerStatus.PROVISIONING,
            client_id=client.client_id,
            registration_client_uri=client.registration_client_uri,
            client_secret_sealed=client.client_secret_sealed,
            registration_token_sealed=client.registration_token_sealed,
        )

        callback: CallbackResult = await self.runtime.call(
            "hub.register_partner_callback",
            PartnerStore.register_callback,
            CallbackInput(data.application_id, data.callback_url),
        )
        self.runtime.push(
            "hub.remove_partner_callback",
            PartnerStore.remove_callback,
            RemoveCallbackInput(data.application_id),
        )

        await self._record(data, PartnerStatus.TESTING)
        await self.runtime.call(
            "partner.connectivity_test",
            PartnerProvisioningActivities.connectivity_test,
            ConnectivityInput(
                data.application_id,
                data.organization_id,
                data.callback_url,
                callback.webhook_secret_sealed,
                f"msg_{wid}/connectivity",
                defaults.connectivity_timeout,
            ),
        )
        self.runtime.current_step = None

    # --- offboarding ----------------------------------------------------------------------

    async def _offboarding_approved(self, data: PartnerInput, defaults: PartnerDefaults) -> bool:
        request = self._offboard
        assert request is not None
        spec = TaskSpec(
            kind="offboarding",
            title=f"Offboard wholesale partner {data.name}",
            description=(
                f"Asked by {request.requested_by}"
                + (f": {request.reason}" if request.reason else "")
                + ". Approve to revoke its client and close its accounts."
            ),
            decisions=["approve", "reject"],
            candidate_groups=list(defaults.approver_groups),
            reference=data.application_id,
            comment_required=["reject"],
            excluded_deciders=[request.requested_by],
            evidence={"application": data.application_id, "organization": data.organization_id},
            follow_up_after=defaults.follow_up_after,
            escalate_after=defaults.escalate_after,
            escalation_groups=list(defaults.escalation_groups),
            due_after=defaults.approval_due_after,
            expiry_decision="reject",
        )
        task = await self.runtime.tasks.open(spec)
        self._offboard_task = task.id
        await self._record(data, PartnerStatus.ACTIVE, task_id=task.id)
        outcome = await self.runtime.tasks.outcome(task.id)
        set_hub_status(sa.HubStatus.RUNNING)
        reasons: list[str] = []
        if outcome.decision == "approve":
            orders: OpenOrdersResult = await self.runtime.record(
                PartnerStore.open_orders,
                OpenOrdersInput(data.organization_id),
                "hub: the partner's open orders",
            )
            if not orders.order_ids:
                return True
            reasons = [f"offboarding refused: open orders {', '.join(orders.order_ids[:10])}"]
        else:
            why = outcome.comment or ("its due time passed" if outcome.expired else "")
            reasons = [f"offboarding rejected by {outcome.decided_by}: {why}"]
        self._offboard, self._offboard_task = None, None
        await self._record(data, PartnerStatus.ACTIVE, task_closed=True, reasons=reasons)
        workflow.set_current_details(f"**active**: {reasons[0]}")
        return False

    async def _offboard_partner(self, data: PartnerInput) -> PartnerResult:
        wid = workflow.info().workflow_id
        await self._record(data, PartnerStatus.OFFBOARDING, task_closed=True)
        client = self._client
        assert client is not None
        await self.runtime.call(
            "identity.delete_client",
            PartnerProvisioningActivities.delete_client,
            DeleteClientInput(
                data.application_id, client.registration_client_uri,
                client.registration_token_sealed,
            ),
        )  # fmt: skip
        await self._record(data, PartnerStatus.OFFBOARDING, client_removed=True)
        row_account = self._account_id
        if row_account:
            await self.runtime.call(
                "billing.close_account",
                BillingActivities.close_account,
                CloseAccountInput(row_account, f"{wid}/offboard/billing"),
            )
        await self.runtime.call(
            "crm.upsert_organization",
            PartnerProvisioningActivities.upsert_organization,
            CrmOrganizationInput(
                data.organization_id, data.name, data.trading_name, data.vat_id,
                data.registration_number, row_account, "closed", f"{wid}/offboard/crm",
            ),
        )  # fmt: skip
        await self.runtime.call(
            "hub.remove_partner_callback",
            PartnerStore.remove_callback,
            RemoveCallbackInput(data.application_id),
        )
        self.runtime.current_step = None
        return await self._ended(data, PartnerStatus.CLOSED, [])

    # --- plumbing ---------------------------------------------------------------------------

    async def _ended(
        self, data: PartnerInput, status: PartnerStatus, reasons: list[str]
    ) -> PartnerResult:
        self._status = status
        set_hub_status(
            sa.HubStatus.FAILED if status == PartnerStatus.FAILED else sa.HubStatus.COMPLETED
        )
        workflow.set_current_details(
            f"**{status.value}**" + (f": {'; '.join(reasons)}" if reasons else "")
        )
        await self._record(
            data,
            status,
            task_closed=True,
            reasons=reasons,
            organization_status="closed",
            party_role_status=ROLE_STATUS_AT_END.get(status, "terminated"),
            error_message="; ".join(reasons) if status == PartnerStatus.FAILED else None,
        )
        return PartnerResult(data.application_id, status.value, reasons)

    async def _record(self, data: PartnerInput, status: PartnerStatus, **fields: Any) -> None:
        self._status = status
        if fields.get("billing_account_id"):
            self._account_id = fields["billing_account_id"]
        await self.runtime.record(
            PartnerStore.record,
            RecordPartnerInput(application_id=data.application_id, status=status.value, **fields),
            f"hub: partner {status.value}",
        )


# --- the process contract -------------------------------------------------------------------


def _summary(data: PartnerInput) -> str:
    return f"wholesale partner {data.name} ({data.registration_number})"


def _memo(data: PartnerInput) -> dict[str, str]:
    return {
        "application": data.application_id,
        "organization": data.organization_id,
        "partyRole": data.party_role_id,
        "name": data.name,
        "appliedBy": data.applied_by,
    }


CONTRACT: ProcessContract[PartnerInput] = ProcessContract(
    name=WORKFLOW_NAME,
    kind=PROCESS_KIND,
    run=PartnerOnboarding.run,
    workflow_id_prefix=WORKFLOW_ID_PREFIX,
    memo=_memo,
    summary=_summary,
    log_field="applicationId",
)
