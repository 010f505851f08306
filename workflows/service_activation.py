"""ServiceActivation: one TMF641 service order, carried out as a saga across four systems.

For each order the workflow prices the plans (billing), checks credit, upserts the customer in
the CRM, then per item:

- ``add``: subscriber in the HSS while billing opens the account and subscription (neither
  needs the other), then the service active in CRM;
- ``modify``: the plan's QoS in the HSS, the plan in billing, the plan in the CRM;
- ``delete``: service pending termination in CRM (one the customer has: a delete never
  creates a service), subscription terminated in billing,
  subscriber deleted from the HSS (the point of no return: its keys are gone), service
  removed from the CRM.

Every step that changes an outside system pushes its compensation on a stack. A permanent
failure, or retries exhausted, runs the stack in reverse and the order ends ``failed``. A
cancellation is honoured between steps: the step in flight finishes (its result is needed to
undo it exactly), then the stack runs and the order ends ``cancelled``.

The order's progress is written to the hub database (``hub.record_order_state``, local
activities) before the step that follows: when the workflow starts (with the first item's
``inProgress``), between items, and at the end (with the last item's ``completed``).

Every side-effecting call carries the idempotency key ``<workflow id>/<item>/<step>``, so a
retried activity never creates a second record.

How the workflow execution ends, as the Temporal UI shows it: a completed order returns its
:class:`ServiceActivationResult`; a failed one, once its state is recorded, its alarms settled
and its compensation done, fails the execution with the non-retryable ``ApplicationError``
type ``OrderFailed`` (message: the error; first detail: the result), so the UI's failure views
and ``ExecutionStatus="Failed"`` find it. An order cancelled through the hub
(``cancelServiceOrder``, the ``cancel`` update) fails it with type ``OrderCancelled``: Temporal
ends an execution as *canceled* only when a Temporal cancellation was requested (raising
``CancelledError`` without one fails the execution all the same, as an unnamed
``CancelledError``), and the hub's cancel cannot be one, since a Temporal cancellation
interrupts the step in flight whose result the undo needs. An order cancelled through
Temporal (the UI's or the CLI's cancel) is rolled back like a hub cancel and ends *canceled*.
Runs recorded before this ending (behind ``workflow.patched(ENDS_AS_FAILED)``) still return.

While a step is parked (a dead letter waits for an operator) the order is TMF641 ``held``, its
item too, with an error message naming the dead letter, its step and why; it is ``inProgress``
again once the operator decided (behind ``workflow.patched(ORDER_HELD_PATCH)``: runs parked
before stay ``inProgress`` throughout). Both are recorded state changes like any other.

A failed order raises a ``major`` alarm at the NMS naming the step and system it failed at;
parks and failing compensations raise theirs through the runtime (see ``docs/alarms.md``).
The steps, parking, alarms and the ``decide`` update are the shared process runtime's
(:mod:`workflows.runtime`); this module holds the order's business steps only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

from workflows.runtime import (
    ENDS_AS_FAILED,
    ParkedStep,
    ProcessCancelled,
    ProcessContract,
    ProcessWorkflow,
    StepAborted,
    describe,
    process_failure,
    set_hub_status,
)

with workflow.unsafe.imports_passed_through():
    from activities.billing import (
        BillingActivities,
        ChangePlanInput,
        CloseAccountInput,
        CreateSubscriptionInput,
        OpenAccountInput,
        PricePlansInput,
        SubscriptionInput,
        VoidSubscriptionInput,
    )
    from activities.credit import CreditActivities, CreditCheckInput, ReleaseCreditInput
    from activities.crm import (
        ChangeServicePlanInput,
        ChangeServicePlanResult,
        CrmActivities,
        DeleteCustomerInput,
        DeleteServiceInput,
        ServiceStatusInput,
        ServiceStatusResult,
        UpsertCustomerInput,
        UpsertCustomerResult,
    )
    from activities.hss import (
        CreateSubscriberInput,
        DeleteSubscriberInput,
        HssActivities,
        ReadQosInput,
        UpdateQosInput,
    )
    from activities.orders import OrderStoreActivities, RecordOrderStateInput
    from activities.policies import PolicyActivities
    from adapters.hss import QosProfile
    from hub import search_attributes as sa
    from hub.models import ItemState, OrderState

WORKFLOW_NAME = "ServiceActivation"
PROCESS_KIND = "service-activation"
WORKFLOW_ID_PREFIX = "service-order-"
#: The ``ApplicationError.type`` a failed / hub-cancelled order fails its workflow with.
ORDER_FAILED = "OrderFailed"
ORDER_CANCELLED = "OrderCancelled"
#: ``workflow.patched`` id: a modify changes the CRM's plan too. Modifies that passed the
#: billing step before it replay without the CRM step.
MODIFY_CRM_PLAN_PATCH = "modify-crm-plan"
#: ``workflow.patched`` id: a parked step holds the order (TMF641 ``held``) and its end resumes
#: it, each a recorded state change. Runs parked before it replay without those records.
ORDER_HELD_PATCH = "order-held"
#: ``workflow.patched`` id: the order's states are written by local activities (the worker
#: writes them within the workflow task, no round trip through the server), and in two
#: transactions instead of four: the first item's ``inProgress`` with the order's, the last
#: item's ``completed`` with the order's. Runs from before it replay with one activity per write.
FEWER_RECORDS_PATCH = "records-local-folded"
#: ``workflow.patched`` id: an ``add`` creates the HSS subscriber while billing opens the
#: account and subscription (neither needs the other); before it, one after the other.
ADD_TOGETHER_PATCH = "add-hss-billing-together"


def workflow_id_for(order_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{order_id}"


@dataclass
class Customer:
    id: str
    name: str
    email: str | None = None
    phone: str | None = None


@dataclass
class MobileService:
    """A 4G/5G subscription. Keys are set for ``add`` only; ``opc`` or ``op``, never both."""

    imsi: str
    msisdn: str
    plan: str | None = None
    qos: QosProfile | None = None
    ki: str | None = None
    opc: str | None = None
    op: str | None = None

    @property
    def service_id(self) -> str:
        """The CRM's id of this service: stable across add, modify and delete."""
        return f"svc-{self.imsi}"


@dataclass
class ServiceItem:
    id: str
    action: str  # add | modify | delete
    service: MobileService


@dataclass
class ServiceActivationInput:
    order_id: str
    customer: Customer
    items: list[ServiceItem]
    external_id: str | None = None
    currency: str = "EUR"


def operator_memo(order: ServiceActivationInput) -> dict[str, str]:
    """What an operator reads in the Temporal UI's memo: who and what, never a key. Set when
    the workflow starts (payloads, so the codec endpoint decrypts them for the UI)."""
    memo = {
        "process": PROCESS_KIND,
        "order": order.order_id,
        "customer": f"{order.customer.id} ({order.customer.name})",
        "items": "; ".join(
            f"{item.id}: {item.action} IMSI {item.service.imsi}"
            + (f" plan {item.service.plan}" if item.service.plan else "")
            for item in order.items
        ),
    }
    if order.external_id:
        memo["externalId"] = order.external_id
    return memo


@dataclass
class ServiceActivationResult:
    order_id: str
    state: str
    items: dict[str, str]
    error_message: str | None = None


@dataclass
class OrderStatus:
    """What the ``status`` query answers: enough for an operator or the API."""

    state: str
    current_step: str | None
    items: dict[str, str]
    error_message: str | None
    cancel_requested: bool
    compensations_pending: int
    parked_dead_letter: str | None = None


@dataclass
class CancelRequest:
    reason: str | None = None


#: The fields that carry a line's values (the subscriber, its number, its plan, the service
#: and customer they belong to) in the steps' inputs.
LINE_FIELDS = ("imsi", "msisdn", "plan", "service_id", "customer_id")
#: The fields that carry the customer's values in the order-level steps' inputs.
CUSTOMER_FIELDS = ("customer_id", "customer_name", "name", "currency")


def _line(*others: Callable[..., Awaitable[Any]]) -> dict[str, Sequence[Callable[..., Any]]]:
    """A line step's shared fields: each of the line's values is held by the systems of the
    line's other steps (``others``) too, so a parked step may not correct one alone (see
    :func:`workflows.runtime.parking.held_elsewhere`)."""
    return {name: others for name in LINE_FIELDS}


def _customer(*others: Callable[..., Awaitable[Any]]) -> dict[str, Sequence[Callable[..., Any]]]:
    """An order-level step's shared fields: the customer's values, held by ``others`` too."""
    return {name: others for name in CUSTOMER_FIELDS}


@workflow.defn(name=WORKFLOW_NAME)
class ServiceActivation(ProcessWorkflow):
    def __init__(self) -> None:
        self._state = OrderState.ACKNOWLEDGED
        self._items: dict[str, str] = {}
        self._error: str | None = None
        self._cancel: CancelRequest | None = None
        #: Set once a step that cannot be undone has run (an HSS delete).
        self._past_point_of_no_return = False
        self._current_item: str | None = None
        self._cancelled_by_temporal = False
        #: :data:`FEWER_RECORDS_PATCH`: records as local activities, folded.
        self._fewer_records = False
        #: :data:`ADD_TOGETHER_PATCH`: an add's HSS and billing steps at the same time.
        self._add_together = False
        #: :data:`ORDER_HELD_PATCH`, decided at the start with the patches above (None: runs
        #: from before them, which ask when a step first parks).
        self._order_held: bool | None = None

    # --- messages -------------------------------------------------------------------------

    @workflow.query
    def status(self) -> OrderStatus:
        runtime = self._runtime
        parked = runtime.parked if runtime else None
        in_flight = runtime.steps.in_flight if runtime else []
        return OrderStatus(
            state=self._state.value,
            # The steps running now, named together when run together ("1/hss.create_subscriber
            # and ..."); between steps, the last one. Not the last one started: while an add's
            # HSS call runs on, billing's steps beside it may have started and finished.
            current_step=(" and ".join(in_flight) if in_flight else runtime.current_step)
            if runtime
            else None,
            items=dict(self._items),
            error_message=self._error,
            cancel_requested=self._cancel is not None,
            compensations_pending=runtime.steps.compensations_pending if runtime else 0,
            parked_dead_letter=parked.dead_letter_id if parked else None,
        )

    @workflow.update
    async def cancel(self, request: CancelRequest) -> OrderStatus:
        """Ask the order to stop and undo what it did; answers the state at acceptance."""
        self._cancel = request
        return self.status()

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        if self._state.is_final:
            raise ApplicationError(
                f"the order is already {self._state.value}", type="NotCancellable"
            )
        if self._runtime and self._runtime.compensating:
            raise ApplicationError("the order is already being rolled back", type="NotCancellable")
        if self._past_point_of_no_return:
            raise ApplicationError(
                "a subscriber was already deleted from the HSS; the order can only finish",
                type="NotCancellable",
            )

    # --- the process ----------------------------------------------------------------------

    def _stop_requested(self) -> bool:
        return self._cancel is not None and not self._past_point_of_no_return

    @workflow.run
    async def run(self, order: ServiceActivationInput) -> ServiceActivationResult:
        self._order = order
        # Patches decided before the first local activity: a workflow task may end between a
        # local activity's result and the code after it (a query arriving meanwhile, say),
        # and a patch first asked for there is not found again on replay.
        self._fewer_records = workflow.patched(FEWER_RECORDS_PATCH)
        if self._fewer_records:
            workflow.patched(ENDS_AS_FAILED)  # asked again at the end: the same answer
            self._add_together = workflow.patched(ADD_TOGETHER_PATCH)
            self._order_held = workflow.patched(ORDER_HELD_PATCH)
        self._items = {item.id: ItemState.ACKNOWLEDGED.value for item in order.items}
        policies = await workflow.execute_local_activity_method(
            PolicyActivities.process_policies,
            start_to_close_timeout=timedelta(seconds=10),
            summary="hub: read the retry policies",
        )
        self.start_runtime(
            process=PROCESS_KIND,
            reference=order.order_id,
            policies=policies,
            stop_requested=self._stop_requested,
            on_park=self._held,
            on_resume=self._resumed,
        )
        self._state = OrderState.IN_PROGRESS
        set_hub_status(sa.HubStatus.RUNNING)
        if self._fewer_records and order.items:
            self._items[order.items[0].id] = ItemState.IN_PROGRESS.value
        try:
            await self._record(reason="workflow started")
        except ActivityError:
            # The order never reached the hub database (the API died before it committed): the
            # workflow ends having done nothing, and says so to an operator filtering by status.
            set_hub_status(sa.HubStatus.FAILED)
            workflow.set_current_details("failed: the order is not in the hub database")
            raise
        try:
            await self._prepare(order)
            for index, item in enumerate(order.items):
                if not (self._fewer_records and index == 0):  # else recorded with the start
                    await self._set_item(item.id, ItemState.IN_PROGRESS)
                if item.action == "add":
                    await self._add(item)
                elif item.action == "modify":
                    await self._modify(item)
                else:
                    await self._delete(item)
                if self._fewer_records and index == len(order.items) - 1:
                    # Recorded with the order's final state below, or its roll-back's.
                    self._items[item.id] = ItemState.COMPLETED.value
                else:
                    await self._set_item(item.id, ItemState.COMPLETED)
            if self._stop_requested():
                raise ProcessCancelled()
        except ProcessCancelled:
            await self._roll_back(OrderState.CANCELLED, ItemState.CANCELLED)
        except asyncio.CancelledError:
            if not workflow.patched(ENDS_AS_FAILED):
                raise
            await self._cancelled_through_temporal()
        except (ActivityError, StepAborted) as err:
            if (
                isinstance(err, ActivityError)
                and is_cancelled_exception(err)
                and workflow.patched(ENDS_AS_FAILED)
            ):
                await self._cancelled_through_temporal()
            else:
                await self._failed(err)
        else:
            self._state = OrderState.COMPLETED
            self.runtime.current_step = None
            set_hub_status(sa.HubStatus.COMPLETED)
            workflow.set_current_details("completed")
            await self._record(reason="all items completed")
        # The order's state is recorded already; only the workflow's close waits for alarms.
        await self.runtime.settle()
        result = ServiceActivationResult(
            order_id=order.order_id,
            state=self._state.value,
            items=dict(self._items),
            error_message=self._error,
        )
        if self._state == OrderState.COMPLETED or not workflow.patched(ENDS_AS_FAILED):
            return result
        if self._cancelled_by_temporal:
            raise asyncio.CancelledError(self._error or "cancelled")
        if self._state == OrderState.CANCELLED:
            reason = self._cancel.reason if self._cancel else None
            raise process_failure(
                ORDER_CANCELLED,
                f"order {order.order_id} cancelled" + (f": {reason}" if reason else ""),
                result,
            )
        raise process_failure(ORDER_FAILED, f"order {order.order_id} failed: {self._error}", result)

    async def _failed(self, err: ActivityError | StepAborted) -> None:
        step = self.runtime.current_step
        message = str(err) if isinstance(err, StepAborted) else f"{step}: {describe(err)}"
        self._error = message
        workflow.logger.warning("order step failed", extra={"step": step})
        # A failure in an item's step fails that item; one in an order-level step (credit,
        # customer) fails every item, none of which could start.
        failed = [self._current_item] if self._current_item else list(self._items)
        for item_id in failed:
            self._items[item_id] = ItemState.FAILED.value
        self.runtime.alarm_failed(err, message)
        await self._roll_back(OrderState.FAILED, ItemState.CANCELLED)

    async def _cancelled_through_temporal(self) -> None:
        """A Temporal cancellation (the UI's, ``temporal workflow cancel``): undone and recorded
        like the hub's cancel; the execution then ends canceled. The cancellation reached the
        step in flight only, so the compensations run."""
        self._cancelled_by_temporal = True
        if self._cancel is None:
            self._cancel = CancelRequest(reason="cancelled through Temporal")
        await self._roll_back(OrderState.CANCELLED, ItemState.CANCELLED)

    async def _prepare(self, order: ServiceActivationInput) -> None:
        """Order-level steps: price and credit-check the new lines, upsert the customer."""
        adds = [item for item in order.items if item.action == "add"]
        if not adds:
            return
        self._current_item = None
        price = await self.runtime.call(
            "billing.price_plans",
            BillingActivities.price_plans,
            PricePlansInput([item.service.plan or "" for item in adds]),
        )
        check = await self.runtime.call(
            "credit.check",
            CreditActivities.check_credit,
            CreditCheckInput(
                customer_id=order.customer.id,
                customer_name=order.customer.name,
                amount=price.monthly_total,
                currency=order.currency,
                idempotency_key=self._key("credit.check"),
            ),
            shared_fields=_customer(CrmActivities.upsert_customer, BillingActivities.open_account),
        )
        self.runtime.push(
            "credit.release",
            CreditActivities.release_credit,
            ReleaseCreditInput(check.check_id, self._key("credit.release")),
        )
        customer = await self.runtime.call(
            "crm.upsert_customer",
            CrmActivities.upsert_customer,
            UpsertCustomerInput(
                customer_id=order.customer.id,
                name=order.customer.name,
                email=order.customer.email,
                phone=order.customer.phone,
                idempotency_key=self._key("crm.upsert_customer"),
            ),
            skippable=True,
            skip_result=UpsertCustomerResult(created=False),
            shared_fields=_customer(BillingActivities.open_account),
        )
        if customer.created:
            self.runtime.push(
                "crm.delete_customer",
                CrmActivities.delete_customer,
                DeleteCustomerInput(order.customer.id, self._key("crm.delete_customer")),
            )
        self._account_id: str | None = None

    async def _add(self, item: ServiceItem) -> None:
        service, customer = item.service, self._order.customer
        assert service.ki and service.qos and service.plan  # validated by the API
        self._current_item = item.id
        if self._add_together:
            await self.runtime.together(self._add_subscriber(item), self._add_billing(item))
        else:
            await self._add_subscriber(item)
            await self._add_billing(item)
        await self.runtime.call(
            f"{item.id}/crm.activate_service",
            CrmActivities.set_service_status,
            ServiceStatusInput(
                customer_id=customer.id,
                service_id=service.service_id,
                status="active",
                imsi=service.imsi,
                msisdn=service.msisdn,
                plan=service.plan,
                order_id=self._order.order_id,
                idempotency_key=self._key(f"{item.id}/crm.activate_service"),
            ),
            skippable=True,
            shared_fields=_line(
                HssActivities.create_subscriber, BillingActivities.create_subscription
            ),
        )
        self.runtime.push(
            f"{item.id}/crm.delete_service",
            CrmActivities.delete_service,
            DeleteServiceInput(
                customer.id, service.service_id, self._key(f"{item.id}/crm.delete_service")
            ),
        )

    async def _add_subscriber(self, item: ServiceItem) -> None:
        """An ``add``'s HSS part: the subscriber, with its keys."""
        service = item.service
        assert service.ki and service.qos
        await self.runtime.call(
            f"{item.id}/hss.create_subscriber",
            HssActivities.create_subscriber,
            CreateSubscriberInput(
                imsi=service.imsi,
                msisdn=service.msisdn,
                ki=service.ki,
                qos=service.qos,
                opc=service.opc,
                op=service.op,
                idempotency_key=self._key(f"{item.id}/hss.create_subscriber"),
            ),
            shared_fields=_line(
                BillingActivities.create_subscription, CrmActivities.set_service_status
            ),
        )
        self.runtime.push(
            f"{item.id}/hss.delete_subscriber",
            HssActivities.delete_subscriber,
            DeleteSubscriberInput(service.imsi, self._key(f"{item.id}/hss.delete_subscriber")),
        )

    async def _add_billing(self, item: ServiceItem) -> None:
        """An ``add``'s billing part: the customer's account (once per order), the
        subscription."""
        service, customer = item.service, self._order.customer
        assert service.plan
        if self._account_id is None:
            account = await self.runtime.call(
                "billing.open_account",
                BillingActivities.open_account,
                OpenAccountInput(
                    customer_id=customer.id,
                    name=customer.name,
                    currency=self._order.currency,
                    idempotency_key=self._key("billing.open_account"),
                ),
            )
            self._account_id = account.account_id
            if account.created:
                self.runtime.push(
                    "billing.close_account",
                    BillingActivities.close_account,
                    CloseAccountInput(account.account_id, self._key("billing.close_account")),
                )
        subscription = await self.runtime.call(
            f"{item.id}/billing.create_subscription",
            BillingActivities.create_subscription,
            CreateSubscriptionInput(
                account_id=self._account_id,
                msisdn=service.msisdn,
                imsi=service.imsi,
                plan=service.plan,
                idempotency_key=self._key(f"{item.id}/billing.create_subscription"),
            ),
            shared_fields=_line(HssActivities.create_subscriber, CrmActivities.set_service_status),
        )
        self.runtime.push(
            f"{item.id}/billing.void_subscription",
            BillingActivities.void_subscription,
            VoidSubscriptionInput(
                subscription.subscription_id, self._key(f"{item.id}/billing.void_subscription")
            ),
        )

    async def _modify(self, item: ServiceItem) -> None:
        service = item.service
        assert service.qos and service.plan  # validated by the API
        self._current_item = item.id
        previous_qos: QosProfile = await self.runtime.call(
            f"{item.id}/hss.read_qos",
            HssActivities.read_qos,
            ReadQosInput(service.imsi),
            shared_fields=_line(HssActivities.update_qos, BillingActivities.change_plan),
        )
        await self.runtime.call(
            f"{item.id}/hss.update_qos",
            HssActivities.update_qos,
            UpdateQosInput(service.imsi, service.qos, self._key(f"{item.id}/hss.update_qos")),
            shared_fields=_line(BillingActivities.change_plan, CrmActivities.change_service_plan),
        )
        self.runtime.push(
            f"{item.id}/hss.restore_qos",
            HssActivities.update_qos,
            UpdateQosInput(service.imsi, previous_qos, self._key(f"{item.id}/hss.restore_qos")),
        )
        change = await self.runtime.call(
            f"{item.id}/billing.change_plan",
            BillingActivities.change_plan,
            ChangePlanInput(
                service.msisdn, service.plan, self._key(f"{item.id}/billing.change_plan")
            ),
            shared_fields=_line(HssActivities.update_qos, CrmActivities.change_service_plan),
        )
        self.runtime.push(
            f"{item.id}/billing.restore_plan",
            BillingActivities.change_plan,
            ChangePlanInput(
                service.msisdn, change.previous_plan, self._key(f"{item.id}/billing.restore_plan")
            ),
        )
        if not workflow.patched(MODIFY_CRM_PLAN_PATCH):
            return
        customer_id = self._order.customer.id
        crm = await self.runtime.call(
            f"{item.id}/crm.change_plan",
            CrmActivities.change_service_plan,
            ChangeServicePlanInput(
                customer_id,
                service.service_id,
                service.plan,
                self._key(f"{item.id}/crm.change_plan"),
            ),
            skippable=True,
            skip_result=ChangeServicePlanResult(previous_plan=None),
            shared_fields=_line(HssActivities.update_qos, BillingActivities.change_plan),
        )
        # Skipped (done by hand), or a service without a plan: back to billing's old plan.
        self.runtime.push(
            f"{item.id}/crm.restore_plan",
            CrmActivities.change_service_plan,
            ChangeServicePlanInput(
                customer_id,
                service.service_id,
                crm.previous_plan or change.previous_plan,
                self._key(f"{item.id}/crm.restore_plan"),
            ),
        )

    async def _delete(self, item: ServiceItem) -> None:
        service, customer = item.service, self._order.customer
        self._current_item = item.id
        marked = await self.runtime.call(
            f"{item.id}/crm.mark_terminating",
            CrmActivities.set_service_status,
            ServiceStatusInput(
                customer_id=customer.id,
                service_id=service.service_id,
                status="pendingTermination",
                order_id=self._order.order_id,
                idempotency_key=self._key(f"{item.id}/crm.mark_terminating"),
                # A service the customer does not have fails the order here, before anything
                # changed: created now, its compensation would leave it behind.
                must_exist=True,
            ),
            skippable=True,
            skip_result=ServiceStatusResult(previous_status=None),
            shared_fields=_line(
                BillingActivities.terminate_subscription, HssActivities.delete_subscriber
            ),
        )
        self.runtime.push(
            f"{item.id}/crm.restore_status",
            CrmActivities.set_service_status,
            ServiceStatusInput(
                customer_id=customer.id,
                service_id=service.service_id,
                status=marked.previous_status or "active",
                idempotency_key=self._key(f"{item.id}/crm.restore_status"),
            ),
        )
        await self.runtime.call(
            f"{item.id}/billing.terminate_subscription",
            BillingActivities.terminate_subscription,
            SubscriptionInput(
                service.msisdn, self._key(f"{item.id}/billing.terminate_subscription")
            ),
            shared_fields=_line(CrmActivities.set_service_status, HssActivities.delete_subscriber),
        )
        self.runtime.push(
            f"{item.id}/billing.reactivate_subscription",
            BillingActivities.reactivate_subscription,
            SubscriptionInput(
                service.msisdn, self._key(f"{item.id}/billing.reactivate_subscription")
            ),
        )
        # The point of no return: the subscriber's keys leave the network for good. From here
        # the order only moves forward (and can no longer be cancelled).
        if self._stop_requested():
            raise ProcessCancelled()
        self._past_point_of_no_return = True
        await self.runtime.call(
            f"{item.id}/hss.delete_subscriber",
            HssActivities.delete_subscriber,
            DeleteSubscriberInput(service.imsi, self._key(f"{item.id}/hss.delete_subscriber")),
            cancellable=False,
            shared_fields=_line(
                CrmActivities.set_service_status, BillingActivities.terminate_subscription
            ),
        )
        self.runtime.steps.forget_compensations()
        await self.runtime.call(
            f"{item.id}/crm.delete_service",
            CrmActivities.delete_service,
            DeleteServiceInput(
                customer.id, service.service_id, self._key(f"{item.id}/crm.delete_service")
            ),
            cancellable=False,
            skippable=True,
            shared_fields=_line(
                BillingActivities.terminate_subscription, HssActivities.delete_subscriber
            ),
        )

    # --- bookkeeping ----------------------------------------------------------------------

    def _key(self, step: str) -> str:
        return f"{workflow.info().workflow_id}/{step}"

    async def _roll_back(self, final: OrderState, rolled_back: ItemState) -> None:
        """Compensate every step done, newest first, then record the final state."""
        set_hub_status(sa.HubStatus.COMPENSATING)
        failures = await self.runtime.compensate()
        if failures:
            note = "compensation failed, manual repair needed: " + "; ".join(failures)
            self._error = f"{self._error}; {note}" if self._error else note
        for item_id, state in self._items.items():
            if state != ItemState.FAILED.value:
                self._items[item_id] = rolled_back.value
        self._state = final
        self.runtime.current_step = None
        cancelled = final == OrderState.CANCELLED
        set_hub_status(sa.HubStatus.CANCELLED if cancelled else sa.HubStatus.FAILED)
        workflow.set_current_details(
            f"{final.value}: {self._error}" if self._error else final.value
        )
        if cancelled and self._cancel and self._cancel.reason:
            reason = f"cancelled: {self._cancel.reason}"
        else:
            reason = "cancelled" if cancelled else "failed and rolled back"
        await self._record(reason=reason)

    async def _held(self, parked: ParkedStep) -> None:
        """A step parked: the order (and the item at that step) is ``held`` until an operator
        decides, with a message naming the dead letter."""
        held = self._order_held
        if held is None:
            held = workflow.patched(ORDER_HELD_PATCH)
        if not held:
            return
        self._state = OrderState.HELD
        item = self._current_item
        items = {}
        running = ItemState.IN_PROGRESS.value
        if item and not self.runtime.compensating and self._items.get(item) == running:
            self._items[item] = items[item] = ItemState.HELD.value
        what = "compensation " if parked.compensation else ""
        await self._record(
            reason=f"held: {what}{parked.step} parked as dead letter {parked.dead_letter_id}",
            items=items,
            error_message=(
                f"waiting for an operator: {what}step {parked.step} ({parked.system}) is parked "
                f"as dead letter {parked.dead_letter_id}: {parked.error}"
            ),
        )

    async def _resumed(self, parked: ParkedStep) -> None:
        """The operator decided (or the order is being cancelled): ``inProgress`` again."""
        if self._state != OrderState.HELD:  # parked before the patch: never held
            return
        self._state = OrderState.IN_PROGRESS
        items = {}
        for item_id, state in self._items.items():
            if state == ItemState.HELD.value:
                self._items[item_id] = items[item_id] = ItemState.IN_PROGRESS.value
        await self._record(
            reason=f"resumed: dead letter {parked.dead_letter_id} decided", items=items
        )

    async def _set_item(self, item_id: str, state: ItemState) -> None:
        self._items[item_id] = state.value
        await self._record(items={item_id: state.value})

    async def _record(
        self,
        *,
        reason: str | None = None,
        items: dict[str, str] | None = None,
        error_message: str | None = None,
    ) -> None:
        """Write progress to the hub database (``error_message``: instead of the failure's)."""
        await self.runtime.record(
            OrderStoreActivities.record_order_state,
            RecordOrderStateInput(
                order_id=self._order.order_id,
                state=self._state.value,
                items=items if items is not None else dict(self._items),
                error_message=error_message or self._error,
                reason=reason,
            ),
            summary=f"hub: record {self._state.value}",
            local=self._fewer_records,
        )


# --- the process contract -------------------------------------------------------------------


def _search_attributes(order: ServiceActivationInput) -> list[SearchAttributePair[str]]:
    pairs = [
        SearchAttributePair(sa.ORDER_ID, order.order_id),
        SearchAttributePair(sa.CUSTOMER_ID, order.customer.id),
    ]
    if order.external_id:
        pairs.append(SearchAttributePair(sa.EXTERNAL_ID, order.external_id))
    return pairs


def _summary(order: ServiceActivationInput) -> str:
    return f"TMF641 order {order.external_id or order.order_id} for {order.customer.id}"


def _details(order: ServiceActivationInput) -> str:
    return "\n".join(
        f"- item {i.id}: **{i.action}** IMSI {i.service.imsi}, MSISDN {i.service.msisdn}"
        + (f", plan {i.service.plan}" if i.service.plan else "")
        for i in order.items
    )


CONTRACT: ProcessContract[ServiceActivationInput] = ProcessContract(
    name=WORKFLOW_NAME,
    kind=PROCESS_KIND,
    run=ServiceActivation.run,
    workflow_id_prefix=WORKFLOW_ID_PREFIX,
    search_attributes=_search_attributes,
    memo=operator_memo,
    summary=_summary,
    details=_details,
    log_field="orderId",
)
