"""The legacy billing system (SOAP, contract in ``contracts/billing.wsdl``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from adapters.soap import SoapClient
from hub.usage import Tariff

NAMESPACE = "urn:telecom-hub:billing:v1"


def billing_msisdn(msisdn: str) -> str:
    """Billing keys subscriptions by the international number's digits, without '+'."""
    return msisdn.removeprefix("+")


class BillingClient(SoapClient):
    system = "billing"
    binding = f"{{{NAMESPACE}}}BillingBinding"
    not_found_codes = frozenset({"UnknownAccount", "UnknownSubscription"})
    conflict_codes = frozenset({"DuplicateSubscription", "AccountHasSubscriptions"})

    async def create_account(
        self, *, customer_id: str, name: str, currency: str, idempotency_key: str
    ) -> tuple[str, bool]:
        """The customer's account, opened if needed: (account id, opened by this call)."""
        reply = await self.call(
            "CreateAccount",
            idempotencyKey=idempotency_key,
            customerId=customer_id,
            name=name,
            currency=currency,
        )
        return str(reply["accountId"]), bool(reply["created"])

    async def create_wholesale_account(
        self, *, partner_id: str, name: str, currency: str, vat_id: str, idempotency_key: str
    ) -> tuple[str, bool]:
        """A wholesale partner's account, opened if needed: (account id, opened by this call)."""
        reply = await self.call(
            "CreateAccount",
            idempotencyKey=idempotency_key,
            customerId=partner_id,
            name=name,
            currency=currency,
            accountType="wholesale",
            vatId=vat_id,
        )
        return str(reply["accountId"]), bool(reply["created"])

    async def close_account(self, account_id: str, *, idempotency_key: str) -> None:
        await self.call("CloseAccount", idempotencyKey=idempotency_key, accountId=account_id)

    async def create_subscription(
        self, *, account_id: str, msisdn: str, imsi: str, plan: str, idempotency_key: str
    ) -> str:
        reply = await self.call(
            "CreateSubscription",
            idempotencyKey=idempotency_key,
            accountId=account_id,
            msisdn=billing_msisdn(msisdn),
            imsi=imsi,
            planCode=plan,
        )
        return str(reply["subscriptionId"])

    async def change_plan(self, *, msisdn: str, plan: str, idempotency_key: str) -> str:
        """Move a subscription to ``plan``; returns the plan it had before."""
        reply = await self.call(
            "ChangePlan",
            idempotencyKey=idempotency_key,
            msisdn=billing_msisdn(msisdn),
            planCode=plan,
        )
        return str(reply["previousPlanCode"])

    async def terminate_subscription(self, *, msisdn: str, idempotency_key: str) -> str:
        reply = await self.call(
            "TerminateSubscription", idempotencyKey=idempotency_key, msisdn=billing_msisdn(msisdn)
        )
        return str(reply["subscriptionId"])

    async def reactivate_subscription(self, *, msisdn: str, idempotency_key: str) -> None:
        await self.call(
            "ReactivateSubscription", idempotencyKey=idempotency_key, msisdn=billing_msisdn(msisdn)
        )

    async def void_subscription(self, subscription_id: str, *, idempotency_key: str) -> None:
        await self.call(
            "VoidSubscription", idempotencyKey=idempotency_key, subscriptionId=subscription_id
        )

    async def get_subscription(self, msisdn: str) -> dict[str, Any]:
        return await self.call("GetSubscription", msisdn=billing_msisdn(msisdn))

    async def list_subscriptions(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """A page of subscriptions of every status (creation order) and how many there are."""
        reply = await self.call("ListSubscriptions", offset=offset, limit=limit)
        items = [
            {k: (float(v) if isinstance(v, Decimal) else v) for k, v in item.items()}
            for item in reply.get("subscription") or []
        ]
        return items, int(reply["total"])

    async def list_plans(self) -> list[dict[str, Any]]:
        reply = await self.call("ListPlans")
        # zeep unwraps a reply whose only child is the repeated <plan> into the list itself.
        plans = reply.get("plan", reply.get("value")) or []
        return [
            {k: (float(v) if isinstance(v, Decimal) else v) for k, v in plan.items()}
            for plan in plans
        ]

    async def get_tariffs(self) -> tuple[str, list[Tariff]]:
        """The currency and every plan's usage prices (``GetTariffs``); a plan's SMS price is
        None where billing has none."""
        reply = await self.call("GetTariffs")
        tariffs = [
            Tariff(
                plan=str(item["planCode"]),
                data_price_per_mb=float(item["dataPricePerMB"]),
                voice_price_per_minute=float(item["voicePricePerMinute"]),
                # Optional in the contract: a billing without SMS prices leaves it out.
                sms_price_per_message=_price(item.get("smsPricePerMessage")),
            )
            for item in reply.get("tariff") or []
        ]
        return str(reply["currency"]), tariffs


def _price(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
