"""Activities against the legacy billing system (SOAP)."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from activities.definitions import defn
from activities.errors import outside_call
from adapters.billing import BillingClient
from hub.errors import NotFoundError, UnknownPlan
from hub.usage import Tariff


@dataclass
class PricePlansInput:
    plans: list[str]


@dataclass
class PricePlansResult:
    monthly_total: float


@dataclass
class OpenAccountInput:
    customer_id: str
    name: str
    currency: str
    idempotency_key: str


@dataclass
class OpenAccountResult:
    account_id: str
    created: bool


@dataclass
class CloseAccountInput:
    account_id: str
    idempotency_key: str


@dataclass
class CreateSubscriptionInput:
    account_id: str
    msisdn: str
    imsi: str
    plan: str
    idempotency_key: str


@dataclass
class CreateSubscriptionResult:
    subscription_id: str


@dataclass
class VoidSubscriptionInput:
    subscription_id: str
    idempotency_key: str


@dataclass
class SubscriptionInput:
    """A call on the subscription of an MSISDN (terminate, reactivate)."""

    msisdn: str
    idempotency_key: str


@dataclass
class ChangePlanInput:
    msisdn: str
    plan: str
    idempotency_key: str


@dataclass
class ChangePlanResult:
    previous_plan: str


@dataclass
class TariffsResult:
    """Billing's usage prices per plan, in ``currency`` (small: a catalogue, not usage)."""

    currency: str
    tariffs: list[Tariff]


class BillingActivities:
    def __init__(self, client: BillingClient) -> None:
        self.client = client

    @defn("billing.price_plans")
    async def price_plans(self, data: PricePlansInput) -> PricePlansResult:
        """The monthly fee of the plans ordered; a plan billing does not sell is refused."""
        with outside_call():
            catalogue = await self.client.list_plans()
            fees = {plan["code"]: float(plan["monthlyFee"]) for plan in catalogue}
            unknown = sorted(set(data.plans) - fees.keys())
            if unknown:
                raise UnknownPlan(f"plan {', '.join(unknown)} is not in the billing catalogue")
        return PricePlansResult(monthly_total=round(sum(fees[p] for p in data.plans), 2))

    @defn("billing.open_account")
    async def open_account(self, data: OpenAccountInput) -> OpenAccountResult:
        with outside_call():
            account_id, created = await self.client.create_account(
                customer_id=data.customer_id,
                name=data.name,
                currency=data.currency,
                idempotency_key=data.idempotency_key,
            )
        return OpenAccountResult(account_id=account_id, created=created)

    @defn("billing.close_account")
    async def close_account(self, data: CloseAccountInput) -> None:
        with outside_call():
            try:
                await self.client.close_account(
                    data.account_id, idempotency_key=data.idempotency_key
                )
            except NotFoundError:
                activity.logger.info("account already closed")

    @defn("billing.create_subscription")
    async def create_subscription(self, data: CreateSubscriptionInput) -> CreateSubscriptionResult:
        with outside_call():
            subscription_id = await self.client.create_subscription(
                account_id=data.account_id,
                msisdn=data.msisdn,
                imsi=data.imsi,
                plan=data.plan,
                idempotency_key=data.idempotency_key,
            )
        return CreateSubscriptionResult(subscription_id=subscription_id)

    @defn("billing.void_subscription")
    async def void_subscription(self, data: VoidSubscriptionInput) -> None:
        with outside_call():
            try:
                await self.client.void_subscription(
                    data.subscription_id, idempotency_key=data.idempotency_key
                )
            except NotFoundError:
                activity.logger.info("subscription already voided")

    @defn("billing.change_plan")
    async def change_plan(self, data: ChangePlanInput) -> ChangePlanResult:
        with outside_call():
            previous = await self.client.change_plan(
                msisdn=data.msisdn, plan=data.plan, idempotency_key=data.idempotency_key
            )
        return ChangePlanResult(previous_plan=previous)

    @defn("billing.terminate_subscription")
    async def terminate_subscription(self, data: SubscriptionInput) -> None:
        with outside_call():
            await self.client.terminate_subscription(
                msisdn=data.msisdn, idempotency_key=data.idempotency_key
            )

    @defn("billing.reactivate_subscription")
    async def reactivate_subscription(self, data: SubscriptionInput) -> None:
        with outside_call():
            await self.client.reactivate_subscription(
                msisdn=data.msisdn, idempotency_key=data.idempotency_key
            )

    @defn("billing.get_tariffs")
    async def get_tariffs(self) -> TariffsResult:
        with outside_call():
            currency, tariffs = await self.client.get_tariffs()
        return TariffsResult(currency=currency, tariffs=tariffs)
