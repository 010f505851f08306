"""The hand-written baseline of the activation benchmark: what a user would write by hand.

One Temporal workflow making the same 7 outside calls as the hub's ``add`` order (billing's
price list, the credit check, the CRM customer, the HSS subscriber, the billing account and
subscription, the CRM service), one after the other, through the same protocol clients
(``adapters/``: httpx and zeep) against the same simulators. None of the hub's work around
them: no hub database, no payload encryption or sealed keys, no retry policies read from
settings, no compensation stack, no parking, alarms, search attributes or per-system task
queues (every activity on the workflow's queue, so Temporal starts them eagerly), started by
the client directly rather than through the API. ``bench.versus`` runs it beside the hub.

    python -m bench.baseline --task-queue Q   # the worker (bench.versus starts it)

The simulators' URLs and tokens come from the hub's settings (``HUB_*``), as the hub's own
worker reads them.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from adapters.billing import BillingClient
    from adapters.credit import CreditAgencyClient
    from adapters.crm import CrmClient
    from adapters.hss import HssClient, QosProfile, subscriber_document
    from hub.settings import Settings, get_settings

WORKFLOW_NAME = "BaselineActivation"


@dataclass
class BaselineOrder:
    customer_id: str
    customer_name: str
    imsi: str
    msisdn: str
    ki: str
    opc: str
    plan: str
    qos: QosProfile
    currency: str = "EUR"


@dataclass
class Step:
    """Every activity's input: the order, and the idempotency key of the call."""

    order: BaselineOrder
    key: str
    amount: float = 0.0
    account_id: str = ""


class BaselineActivities:
    """The 7 calls, named as the hub's activities so the histories count them alike."""

    def __init__(self, settings: Settings) -> None:
        timeout = settings.http_timeout
        self.credit = CreditAgencyClient(
            settings.credit_url, token=settings.credit_token, timeout=timeout
        )
        self.crm = CrmClient(settings.crm_url, token=settings.crm_token, timeout=timeout)
        self.hss = HssClient(settings.hss_url, token=settings.hss_token, timeout=timeout)
        self.billing = BillingClient(
            settings.billing_wsdl,
            settings.billing_url,
            username=settings.billing_username,
            password=settings.billing_password,
            timeout=timeout,
        )

    async def aclose(self) -> None:
        for client in (self.credit, self.crm, self.hss, self.billing):
            await client.aclose()

    @activity.defn(name="billing.price_plans")
    async def price_plans(self, step: Step) -> float:
        fees = {p["code"]: float(p["monthlyFee"]) for p in await self.billing.list_plans()}
        return fees[step.order.plan]

    @activity.defn(name="credit.check")
    async def check_credit(self, step: Step) -> str:
        decision = await self.credit.check(
            customer_id=step.order.customer_id,
            name=step.order.customer_name,
            amount=step.amount,
            currency=step.order.currency,
            idempotency_key=step.key,
        )
        if not decision.approved:
            raise ValueError(f"credit declined: {decision.reason}")
        return decision.check_id

    @activity.defn(name="crm.upsert_customer")
    async def upsert_customer(self, step: Step) -> None:
        await self.crm.upsert_customer(
            step.order.customer_id,
            name=step.order.customer_name,
            email=None,
            phone=None,
            idempotency_key=step.key,
        )

    @activity.defn(name="hss.create_subscriber")
    async def create_subscriber(self, step: Step) -> None:
        o = step.order
        document = subscriber_document(imsi=o.imsi, msisdn=o.msisdn, k=o.ki, opc=o.opc, qos=o.qos)
        await self.hss.create_subscriber(document, idempotency_key=step.key)

    @activity.defn(name="billing.open_account")
    async def open_account(self, step: Step) -> str:
        account_id, _ = await self.billing.create_account(
            customer_id=step.order.customer_id,
            name=step.order.customer_name,
            currency=step.order.currency,
            idempotency_key=step.key,
        )
        return account_id

    @activity.defn(name="billing.create_subscription")
    async def create_subscription(self, step: Step) -> str:
        return await self.billing.create_subscription(
            account_id=step.account_id,
            msisdn=step.order.msisdn,
            imsi=step.order.imsi,
            plan=step.order.plan,
            idempotency_key=step.key,
        )

    @activity.defn(name="crm.set_service_status")
    async def activate_service(self, step: Step) -> None:
        o = step.order
        await self.crm.upsert_service(
            o.customer_id,
            f"svc-{o.imsi}",
            status="active",
            idempotency_key=step.key,
            imsi=o.imsi,
            msisdn=o.msisdn,
            plan=o.plan,
            order_id=workflow_id_of(step.key),
            must_exist=False,
        )

    def all(self) -> list:  # type: ignore[type-arg]
        return [
            self.price_plans,
            self.check_credit,
            self.upsert_customer,
            self.create_subscriber,
            self.open_account,
            self.create_subscription,
            self.activate_service,
        ]


def workflow_id_of(key: str) -> str:
    return key.rpartition("/")[0]


@workflow.defn(name=WORKFLOW_NAME)
class BaselineActivation:
    @workflow.run
    async def run(self, order: BaselineOrder) -> str:
        acts = BaselineActivities
        timeout = timedelta(seconds=30)

        async def call(fn, step: str, **fields):  # type: ignore[no-untyped-def]
            key = f"{workflow.info().workflow_id}/{step}"
            return await workflow.execute_activity_method(
                fn, Step(order, key, **fields), start_to_close_timeout=timeout
            )

        fee = await call(acts.price_plans, "price")
        await call(acts.check_credit, "credit", amount=fee)
        await call(acts.upsert_customer, "customer")
        await call(acts.create_subscriber, "hss")
        account_id = await call(acts.open_account, "account")
        await call(acts.create_subscription, "subscription", account_id=account_id)
        await call(acts.activate_service, "service")
        return "completed"


async def serve(task_queue: str) -> None:
    settings = get_settings()
    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    activities = BaselineActivities(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[BaselineActivation],
            activities=activities.all(),
        ):
            await stop.wait()
    finally:
        await activities.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--task-queue", required=True)
    asyncio.run(serve(parser.parse_args().task_queue))


if __name__ == "__main__":
    main()
