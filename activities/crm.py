"""Activities against the CRM."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from activities.definitions import defn
from activities.errors import outside_call
from adapters.crm import CrmClient
from hub.errors import ConflictError


@dataclass
class UpsertCustomerInput:
    customer_id: str
    name: str
    email: str | None
    phone: str | None
    idempotency_key: str


@dataclass
class UpsertCustomerResult:
    created: bool


@dataclass
class DeleteCustomerInput:
    customer_id: str
    idempotency_key: str


@dataclass
class ServiceStatusInput:
    customer_id: str
    service_id: str
    status: str
    idempotency_key: str
    imsi: str | None = None
    msisdn: str | None = None
    plan: str | None = None
    order_id: str | None = None
    #: Only change a service the customer has; never create one (a delete's first step).
    must_exist: bool = False


@dataclass
class ServiceStatusResult:
    previous_status: str | None


@dataclass
class ChangeServicePlanInput:
    customer_id: str
    service_id: str
    plan: str
    idempotency_key: str


@dataclass
class ChangeServicePlanResult:
    #: None: the service had no plan in the CRM (or the step was skipped).
    previous_plan: str | None


@dataclass
class DeleteServiceInput:
    customer_id: str
    service_id: str
    idempotency_key: str


@dataclass
class OpenCaseInput:
    subject: str
    description: str
    category: str
    priority: str
    reference: str | None
    idempotency_key: str


@dataclass
class OpenCaseResult:
    case_id: str


class CrmActivities:
    def __init__(self, client: CrmClient) -> None:
        self.client = client

    @defn("crm.upsert_customer")
    async def upsert_customer(self, data: UpsertCustomerInput) -> UpsertCustomerResult:
        with outside_call():
            created = await self.client.upsert_customer(
                data.customer_id,
                name=data.name,
                email=data.email,
                phone=data.phone,
                idempotency_key=data.idempotency_key,
            )
        return UpsertCustomerResult(created=created)

    @defn("crm.delete_customer")
    async def delete_customer(self, data: DeleteCustomerInput) -> None:
        """Undo a customer this order created; one that meanwhile holds services stays."""
        with outside_call():
            try:
                await self.client.delete_customer(
                    data.customer_id, idempotency_key=data.idempotency_key
                )
            except ConflictError:
                activity.logger.info("customer kept: it holds services of other orders")

    @defn("crm.set_service_status")
    async def set_service_status(self, data: ServiceStatusInput) -> ServiceStatusResult:
        with outside_call():
            previous = await self.client.upsert_service(
                data.customer_id,
                data.service_id,
                status=data.status,
                idempotency_key=data.idempotency_key,
                imsi=data.imsi,
                msisdn=data.msisdn,
                plan=data.plan,
                order_id=data.order_id,
                must_exist=data.must_exist,
            )
        return ServiceStatusResult(previous_status=previous)

    @defn("crm.change_service_plan")
    async def change_service_plan(self, data: ChangeServicePlanInput) -> ChangeServicePlanResult:
        """Move a service the customer has to another plan (a modify, or its undo)."""
        with outside_call():
            previous = await self.client.change_service_plan(
                data.customer_id,
                data.service_id,
                plan=data.plan,
                idempotency_key=data.idempotency_key,
            )
        return ChangeServicePlanResult(previous_plan=previous)

    @defn("crm.delete_service")
    async def delete_service(self, data: DeleteServiceInput) -> None:
        with outside_call():
            await self.client.delete_service(
                data.customer_id, data.service_id, idempotency_key=data.idempotency_key
            )

    @defn("crm.open_case")
    async def open_case(self, data: OpenCaseInput) -> OpenCaseResult:
        """Open a case for a team (revenue assurance); a retry gets the same case."""
        with outside_call():
            case_id = await self.client.open_case(
                subject=data.subject,
                description=data.description,
                category=data.category,
                priority=data.priority,
                reference=data.reference,
                idempotency_key=data.idempotency_key,
            )
        return OpenCaseResult(case_id=case_id)
