"""ServiceActivation: one TMF641 service order, carried out as a saga across four systems.

For each order the workflow prices the plans (billing), checks credit, upserts the customer in
the CRM, then per item:

- ``add``: subscriber in the HSS, account and subscription in billing, service active in CRM;
- ``modify``: the plan's QoS in the HSS, the plan in billing;
- ``delete``: service pending termination in CRM, subscription terminated in billing,
  subscriber deleted from the HSS (the point of no return: its keys are gone), service
  removed from the CRM.

Every step that changes an outside system pushes its compensation on a stack. A permanent
failure, or retries exhausted, runs the stack in reverse and the order ends ``failed``. A
cancellation is honoured between steps: the step in flight finishes (its result is needed to
undo it exactly), then the stack runs and the order ends ``cancelled``.

Every side-effecting call carries the idempotency key ``<workflow id>/<item>/<step>``, so a
retried activity never creates a second record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

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
        CrmActivities,
        DeleteCustomerInput,
        DeleteServiceInput,
        ServiceStatusInput,
        UpsertCustomerInput,
    )
    from activities.hss import (
        CreateSubscriberInput,
        DeleteSubscriberInput,
        HssActivities,
        ReadQosInput,
        UpdateQosInput,
    )
    from activities.orders import OrderStoreActivities, RecordOrderStateInput
    from activities.policies import PolicyActivities, SystemPolicy
    from adapters.hss import QosProfile
    from hub import search_attributes as sa
    from hub.models import ItemState, OrderState

WORKFLOW_NAME = "ServiceActivation"
PROCESS_KIND = "service-activation"


def workflow_id_for(order_id: str) -> str:
    return f"service-order-{order_id}"


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


@dataclass
class CancelRequest:
    reason: str | None = None


class _OrderCancelled(Exception):
    """Raised between steps once a cancellation was accepted."""


@dataclass
class _Compensation:
    step: str
    system: str
    run: Callable[[], Awaitable[Any]] = field(repr=False)


@workflow.defn(name=WORKFLOW_NAME)
class ServiceActivation:
    def __init__(self) -> None:
        self._state = OrderState.ACKNOWLEDGED
        self._items: dict[str, str] = {}
        self._current_step: str | None = None
        self._error: str | None = None
        self._cancel: CancelRequest | None = None
        self._compensations: list[_Compensation] = []
        self._compensating = False
        #: Set once a step that cannot be undone has run (an HSS delete).
        self._past_point_of_no_return = False
        self._policies: dict[str, SystemPolicy] = {}

    # --- messages -------------------------------------------------------------------------

    @workflow.query
    def status(self) -> OrderStatus:
        return OrderStatus(
            state=self._state.value,
            current_step=self._current_step,
            items=dict(self._items),
            error_message=self._error,
            cancel_requested=self._cancel is not None,
            compensations_pending=len(self._compensations),
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
        if self._compensating:
            raise ApplicationError("the order is already being rolled back", type="NotCancellable")
        if self._past_point_of_no_return:
            raise ApplicationError(
                "a subscriber was already deleted from the HSS; the order can only finish",
                type="NotCancellable",
            )

    # --- the process ----------------------------------------------------------------------

    @workflow.run
    async def run(self, order: ServiceActivationInput) -> ServiceActivationResult:
        self._order = order
        self._items = {item.id: ItemState.ACKNOWLEDGED.value for item in order.items}
        self._policies = await workflow.execute_local_activity_method(
            PolicyActivities.retry_policies, start_to_close_timeout=timedelta(seconds=10)
        )
        self._state = OrderState.IN_PROGRESS
        self._hub_status(sa.HubStatus.RUNNING)
        await self._record(reason="workflow started")
        try:
            await self._prepare(order)
            for item in order.items:
                await self._set_item(item.id, ItemState.IN_PROGRESS)
                if item.action == "add":
                    await self._add(item)
                elif item.action == "modify":
                    await self._modify(item)
                else:
                    await self._delete(item)
                await self._set_item(item.id, ItemState.COMPLETED)
            self._check_cancel()
        except _OrderCancelled:
            await self._roll_back(OrderState.CANCELLED, ItemState.CANCELLED)
        except ActivityError as err:
            self._error = f"{self._current_step}: {_describe(err)}"
            workflow.logger.warning("order step failed", extra={"step": self._current_step})
            # A failure in an item's step fails that item; one in an order-level step (credit,
            # customer) fails every item, none of which could start.
            failed = [self._current_item] if self._current_item else list(self._items)
            for item_id in failed:
                self._items[item_id] = ItemState.FAILED.value
            await self._roll_back(OrderState.FAILED, ItemState.CANCELLED)
        else:
            self._state = OrderState.COMPLETED
            self._current_step = None
            self._hub_status(sa.HubStatus.COMPLETED)
            workflow.set_current_details("completed")
            await self._record(reason="all items completed")
        return ServiceActivationResult(
            order_id=order.order_id,
            state=self._state.value,
            items=dict(self._items),
            error_message=self._error,
        )

    async def _prepare(self, order: ServiceActivationInput) -> None:
        """Order-level steps: price and credit-check the new lines, upsert the customer."""
        adds = [item for item in order.items if item.action == "add"]
        if not adds:
            return
        self._current_item = None
        price = await self._call(
            "billing.price_plans",
            "billing",
            BillingActivities.price_plans,
            PricePlansInput([item.service.plan or "" for item in adds]),
        )
        check = await self._call(
            "credit.check",
            "credit",
            CreditActivities.check_credit,
            CreditCheckInput(
                customer_id=order.customer.id,
                customer_name=order.customer.name,
                amount=price.monthly_total,
                currency=order.currency,
                idempotency_key=self._key("credit.check"),
            ),
        )
        self._push(
            "credit.release",
            "credit",
            CreditActivities.release_credit,
            ReleaseCreditInput(check.check_id, self._key("credit.release")),
        )
        customer = await self._call(
            "crm.upsert_customer",
            "crm",
            CrmActivities.upsert_customer,
            UpsertCustomerInput(
                customer_id=order.customer.id,
                name=order.customer.name,
                email=order.customer.email,
                phone=order.customer.phone,
                idempotency_key=self._key("crm.upsert_customer"),
            ),
        )
        if customer.created:
            self._push(
                "crm.delete_customer",
                "crm",
                CrmActivities.delete_customer,
                DeleteCustomerInput(order.customer.id, self._key("crm.delete_customer")),
            )
        self._account_id: str | None = None

    async def _add(self, item: ServiceItem) -> None:
        service, customer = item.service, self._order.customer
        assert service.ki and service.qos and service.plan  # validated by the API
        self._current_item = item.id
        await self._call(
            f"{item.id}/hss.create_subscriber",
            "hss",
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
        )
        self._push(
            f"{item.id}/hss.delete_subscriber",
            "hss",
            HssActivities.delete_subscriber,
            DeleteSubscriberInput(service.imsi, self._key(f"{item.id}/hss.delete_subscriber")),
        )
        if self._account_id is None:
            account = await self._call(
                "billing.open_account",
                "billing",
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
                self._push(
                    "billing.close_account",
                    "billing",
                    BillingActivities.close_account,
                    CloseAccountInput(account.account_id, self._key("billing.close_account")),
                )
        subscription = await self._call(
            f"{item.id}/billing.create_subscription",
            "billing",
            BillingActivities.create_subscription,
            CreateSubscriptionInput(
                account_id=self._account_id,
                msisdn=service.msisdn,
                imsi=service.imsi,
                plan=service.plan,
                idempotency_key=self._key(f"{item.id}/billing.create_subscription"),
            ),
        )
        self._push(
            f"{item.id}/billing.void_subscription",
            "billing",
            BillingActivities.void_subscription,
            VoidSubscriptionInput(
                subscription.subscription_id, self._key(f"{item.id}/billing.void_subscription")
            ),
        )
        await self._call(
            f"{item.id}/crm.activate_service",
            "crm",
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
        )
        self._push(
            f"{item.id}/crm.delete_service",
            "crm",
            CrmActivities.delete_service,
            DeleteServiceInput(
                customer.id, service.service_id, self._key(f"{item.id}/crm.delete_service")
            ),
        )

    async def _modify(self, item: ServiceItem) -> None:
        service = item.service
        assert service.qos and service.plan  # validated by the API
        self._current_item = item.id
        previous_qos: QosProfile = await self._call(
            f"{item.id}/hss.read_qos", "hss", HssActivities.read_qos, ReadQosInput(service.imsi)
        )
        await self._call(
            f"{item.id}/hss.update_qos",
            "hss",
            HssActivities.update_qos,
            UpdateQosInput(service.imsi, service.qos, self._key(f"{item.id}/hss.update_qos")),
        )
        self._push(
            f"{item.id}/hss.restore_qos",
            "hss",
            HssActivities.update_qos,
            UpdateQosInput(service.imsi, previous_qos, self._key(f"{item.id}/hss.restore_qos")),
        )
        change = await self._call(
            f"{item.id}/billing.change_plan",
            "billing",
            BillingActivities.change_plan,
            ChangePlanInput(
                service.msisdn, service.plan, self._key(f"{item.id}/billing.change_plan")
            ),
        )
        self._push(
            f"{item.id}/billing.restore_plan",
            "billing",
            BillingActivities.change_plan,
            ChangePlanInput(
                service.msisdn, change.previous_plan, self._key(f"{item.id}/billing.restore_plan")
            ),
        )

    async def _delete(self, item: ServiceItem) -> None:
        service, customer = item.service, self._order.customer
        self._current_item = item.id
        marked = await self._call(
            f"{item.id}/crm.mark_terminating",
            "crm",
            CrmActivities.set_service_status,
            ServiceStatusInput(
                customer_id=customer.id,
                service_id=service.service_id,
                status="pendingTermination",
                order_id=self._order.order_id,
                idempotency_key=self._key(f"{item.id}/crm.mark_terminating"),
            ),
        )
        self._push(
            f"{item.id}/crm.restore_status",
            "crm",
            CrmActivities.set_service_status,
            ServiceStatusInput(
                customer_id=customer.id,
                service_id=service.service_id,
                status=marked.previous_status or "active",
                idempotency_key=self._key(f"{item.id}/crm.restore_status"),
            ),
        )
        await self._call(
            f"{item.id}/billing.terminate_subscription",
            "billing",
            BillingActivities.terminate_subscription,
            SubscriptionInput(
                service.msisdn, self._key(f"{item.id}/billing.terminate_subscription")
            ),
        )
        self._push(
            f"{item.id}/billing.reactivate_subscription",
            "billing",
            BillingActivities.reactivate_subscription,
            SubscriptionInput(
                service.msisdn, self._key(f"{item.id}/billing.reactivate_subscription")
            ),
        )
        # The point of no return: the subscriber's keys leave the network for good. From here
        # the order only moves forward (and can no longer be cancelled).
        self._check_cancel()
        self._past_point_of_no_return = True
        await self._call(
            f"{item.id}/hss.delete_subscriber",
            "hss",
            HssActivities.delete_subscriber,
            DeleteSubscriberInput(service.imsi, self._key(f"{item.id}/hss.delete_subscriber")),
            cancellable=False,
        )
        self._compensations.clear()
        await self._call(
            f"{item.id}/crm.delete_service",
            "crm",
            CrmActivities.delete_service,
            DeleteServiceInput(
                customer.id, service.service_id, self._key(f"{item.id}/crm.delete_service")
            ),
            cancellable=False,
        )

    # --- saga machinery -------------------------------------------------------------------

    _current_item: str | None = None

    @staticmethod
    def _hub_status(status: sa.HubStatus) -> None:
        workflow.upsert_search_attributes([sa.HUB_STATUS.value_set(status.value)])

    def _key(self, step: str) -> str:
        return f"{workflow.info().workflow_id}/{step}"

    def _check_cancel(self) -> None:
        if self._cancel is not None and not self._past_point_of_no_return:
            raise _OrderCancelled()

    def _options(self, system: str) -> dict[str, Any]:
        policy = self._policies.get(system)
        # Each outside system has its own task queue, so it can be rate-limited on its own.
        queue = workflow.info().task_queue
        options: dict[str, Any] = {"task_queue": queue if system == "hub" else f"{queue}.{system}"}
        if policy is None:
            return {**options, "start_to_close_timeout": timedelta(seconds=30)}
        return {
            **options,
            "start_to_close_timeout": timedelta(seconds=policy.attempt_timeout),
            "schedule_to_close_timeout": (
                timedelta(seconds=policy.schedule_to_close) if policy.schedule_to_close else None
            ),
            "retry_policy": RetryPolicy(
                initial_interval=timedelta(seconds=policy.initial_interval),
                backoff_coefficient=policy.backoff_coefficient,
                maximum_interval=timedelta(seconds=policy.maximum_interval),
                maximum_attempts=policy.maximum_attempts,
            ),
        }

    async def _call(
        self,
        step: str,
        system: str,
        activity: Callable[..., Awaitable[Any]],
        arg: Any = None,
        *,
        cancellable: bool = True,
    ) -> Any:
        if cancellable:
            self._check_cancel()
        self._current_step = step
        workflow.set_current_details(f"calling **{system}**: `{step}`")
        args = [] if arg is None else [arg]
        return await workflow.execute_activity_method(
            activity, args=args, summary=f"{system}: {step}", **self._options(system)
        )

    def _push(
        self, step: str, system: str, activity: Callable[..., Awaitable[Any]], arg: Any
    ) -> None:
        async def run() -> Any:
            return await workflow.execute_activity_method(
                activity, arg, summary=f"compensate {system}: {step}", **self._options(system)
            )

        self._compensations.append(_Compensation(step, system, run))

    async def _roll_back(self, final: OrderState, rolled_back: ItemState) -> None:
        """Run the compensations in reverse; one that fails does not stop the others."""
        self._compensating = True
        self._hub_status(sa.HubStatus.COMPENSATING)
        failures: list[str] = []
        while self._compensations:
            compensation = self._compensations.pop()
            self._current_step = f"compensate {compensation.step}"
            try:
                await compensation.run()
            except ActivityError as err:
                failures.append(f"{compensation.step}: {_describe(err)}")
                workflow.logger.error("compensation failed", extra={"step": compensation.step})
        if failures:
            note = "compensation failed, manual repair needed: " + "; ".join(failures)
            self._error = f"{self._error}; {note}" if self._error else note
        for item_id, state in self._items.items():
            if state != ItemState.FAILED.value:
                self._items[item_id] = rolled_back.value
        self._state = final
        self._current_step = None
        cancelled = final == OrderState.CANCELLED
        self._hub_status(sa.HubStatus.CANCELLED if cancelled else sa.HubStatus.FAILED)
        workflow.set_current_details(
            f"{final.value}: {self._error}" if self._error else final.value
        )
        if final == OrderState.CANCELLED and self._cancel and self._cancel.reason:
            reason = f"cancelled: {self._cancel.reason}"
        else:
            reason = "cancelled" if final == OrderState.CANCELLED else "failed and rolled back"
        await self._record(reason=reason)

    async def _set_item(self, item_id: str, state: ItemState) -> None:
        self._items[item_id] = state.value
        await self._record(items={item_id: state.value})

    async def _record(
        self, *, reason: str | None = None, items: dict[str, str] | None = None
    ) -> None:
        """Write progress to the hub database (retried without limit: it is our own store)."""
        await workflow.execute_activity_method(
            OrderStoreActivities.record_order_state,
            RecordOrderStateInput(
                order_id=self._order.order_id,
                state=self._state.value,
                items=items if items is not None else dict(self._items),
                error_message=self._error,
                reason=reason,
            ),
            summary=f"hub: record {self._state.value}",
            **self._options("hub"),
        )


def _describe(err: FailureError) -> str:
    """The innermost cause's message, with the attempt count when retries ran out."""
    cause: BaseException = err
    while isinstance(cause, FailureError) and cause.cause is not None:
        cause = cause.cause
    message = str(cause.message if isinstance(cause, FailureError) else cause)
    if (
        isinstance(err, ActivityError)
        and err.retry_state is not None
        and err.retry_state.name in ("MAXIMUM_ATTEMPTS_REACHED", "TIMEOUT")
    ):
        message = f"gave up retrying ({err.retry_state.name.lower()}): {message}"
    return message
