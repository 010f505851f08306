"""CRM simulator (REST, default port 8102): customers, the services they subscribe to, cases,
and the wholesale partners' organizations.

Both are upserted with ``PUT`` under ids the caller chooses, so a retried call converges on
the same record. A service upsert only overwrites the fields present in its body: moving a
service from ``pendingActivation`` to ``active`` needs only ``{"status": "active"}``, a plan
change only ``{"plan": ...}``. ``If-Match: *`` makes the upsert an update only (RFC 9110): a
service that does not exist answers ``412`` and is not created. The answer carries the
service's ``previousStatus`` and ``previousPlan``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from simulators.base import (
    BusinessError,
    IdempotencyKey,
    Reply,
    Simulator,
    create_sim_app,
    new_id,
    parse_body,
)

#: The largest page ``GET /services`` answers.
MAX_PAGE = 5000

ServiceStatus = Literal["active", "pendingActivation", "pendingTermination", "inactive"]


class CustomerUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    email: str | None = None
    phone: str | None = None


class ServiceUpsert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Required to create a service; an update may leave it as it is.
    status: ServiceStatus | None = None
    imsi: str | None = None
    msisdn: str | None = None
    plan: str | None = None
    orderId: str | None = None


class CaseCreate(BaseModel):
    """A case for a team to work on (revenue assurance, fraud...)."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=200)
    description: str = ""
    category: str = Field(default="general", min_length=1, max_length=64)
    priority: Literal["low", "medium", "high", "critical"] = "medium"
    #: What the case is about in the caller's terms (a reconciliation run id).
    reference: str | None = None


class OrganizationUpsert(BaseModel):
    """A wholesale partner's record (``PUT /organizations/{id}``): created or updated."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    tradingName: str | None = None
    vatId: str | None = None
    registrationNumber: str | None = None
    billingAccountId: str | None = None
    status: Literal["active", "closed"] = "active"


class CrmSimulator(Simulator):
    name = "crm"

    def clear_records(self) -> None:
        #: Customers by id; each holds its services by id under ``"services"``.
        self.customers: dict[str, dict[str, Any]] = {}
        self.cases: dict[str, dict[str, Any]] = {}
        self.organizations: dict[str, dict[str, Any]] = {}

    def dump_records(self) -> dict[str, Any]:
        return {
            "customers": [self._public(customer) for customer in self.customers.values()],
            "cases": list(self.cases.values()),
            "organizations": list(self.organizations.values()),
        }

    def load_records(self, data: dict[str, Any]) -> None:
        self.customers = {
            customer["id"]: {
                **customer,
                "services": {service["id"]: service for service in customer["services"]},
            }
            for customer in data["customers"]
        }
        self.cases = {case["id"]: case for case in data.get("cases", [])}
        self.organizations = {org["id"]: org for org in data.get("organizations", [])}

    # -- organizations ----------------------------------------------------------------------

    def upsert_organization(self, organization_id: str, raw: bytes) -> Reply:
        body = parse_body(OrganizationUpsert, raw)
        created = organization_id not in self.organizations
        record = {"id": organization_id, **body.model_dump()}
        record["createdAt"] = self.organizations.get(organization_id, {}).get(
            "createdAt", datetime.now(UTC).isoformat()
        )
        self.organizations[organization_id] = record
        return Reply.json(201 if created else 200, {**record, "created": created})

    def delete_organization(self, organization_id: str) -> Reply:
        if self.organizations.pop(organization_id, None) is None:
            raise BusinessError(404, "organization not found")
        return Reply.empty()

    @staticmethod
    def _public(customer: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": customer["id"],
            "name": customer["name"],
            "email": customer["email"],
            "phone": customer["phone"],
            "services": list(customer["services"].values()),
            "createdByKey": customer["createdByKey"],
        }

    def _customer(self, customer_id: str) -> dict[str, Any]:
        customer = self.customers.get(customer_id)
        if customer is None:
            raise BusinessError(404, "customer not found")
        return customer

    # -- customers --------------------------------------------------------------------------

    def upsert_customer(self, customer_id: str, key: str | None, raw: bytes) -> Reply:
        body = parse_body(CustomerUpsert, raw)
        customer = self.customers.get(customer_id)
        created = customer is None
        if customer is None:
            customer = {"id": customer_id, "services": {}, "createdByKey": key}
            self.customers[customer_id] = customer
        customer.update(name=body.name, email=body.email, phone=body.phone)
        return Reply.json(201 if created else 200, {**self._public(customer), "created": created})

    def get_customer(self, customer_id: str) -> Reply:
        return Reply.json(200, {**self._public(self._customer(customer_id)), "created": False})

    def delete_customer(self, customer_id: str) -> Reply:
        customer = self._customer(customer_id)
        if customer["services"]:
            raise BusinessError(409, "customer has services")
        del self.customers[customer_id]
        return Reply.empty()

    # -- services ---------------------------------------------------------------------------

    def upsert_service(
        self, customer_id: str, service_id: str, raw: bytes, *, must_exist: bool = False
    ) -> Reply:
        customer = self._customer(customer_id)
        body = parse_body(ServiceUpsert, raw)
        service = customer["services"].get(service_id)
        created = service is None
        if service is None and must_exist:
            raise BusinessError(412, f"service {service_id} not found")
        if service is None and body.status is None:
            raise BusinessError(400, "a new service needs a status")
        previous_status = None if service is None else service["status"]
        previous_plan = None if service is None else service["plan"]
        if service is None:
            service = {
                "id": service_id,
                "customerId": customer_id,
                "imsi": None,
                "msisdn": None,
                "plan": None,
                "orderId": None,
            }
            customer["services"][service_id] = service
        # Only the fields the caller sent: a status change must not wipe the IMSI.
        service.update(body.model_dump(include=body.model_fields_set))
        service["previousStatus"] = previous_status
        service["previousPlan"] = previous_plan
        return Reply.json(201 if created else 200, service)

    def get_service(self, customer_id: str, service_id: str) -> Reply:
        service = self._customer(customer_id)["services"].get(service_id)
        if service is None:
            raise BusinessError(404, "service not found")
        return Reply.json(200, service)

    def delete_service(self, customer_id: str, service_id: str) -> Reply:
        self._customer(customer_id)["services"].pop(service_id, None)
        return Reply.empty()

    def page_services(self, offset: int, limit: int) -> Reply:
        """Every customer's services in id order, ``limit`` from ``offset``."""
        services = sorted(
            (
                service
                for customer in self.customers.values()
                for service in customer["services"].values()
            ),
            key=lambda service: service["id"],
        )
        return Reply.json(
            200,
            {
                "items": services[offset : offset + limit],
                "offset": offset,
                "limit": limit,
                "total": len(services),
            },
        )

    # -- cases --------------------------------------------------------------------------------

    def open_case(self, raw: bytes) -> Reply:
        body = parse_body(CaseCreate, raw)
        case = {
            "id": new_id("case"),
            **body.model_dump(),
            "status": "open",
            "createdAt": datetime.now(UTC).isoformat(),
        }
        self.cases[case["id"]] = case
        return Reply.json(201, case)

    def get_case(self, case_id: str) -> Reply:
        case = self.cases.get(case_id)
        if case is None:
            raise BusinessError(404, "case not found")
        return Reply.json(200, case)


def create_app(state_file: Path | None = None) -> FastAPI:
    """The CRM simulator app; ``state_file`` persists records across restarts."""
    sim = CrmSimulator(state_file)
    app = create_sim_app(sim, title="CRM simulator")

    @app.put("/customers/{customer_id}", tags=["customers"])
    async def upsert_customer(
        request: Request, customer_id: str, key: IdempotencyKey = None
    ) -> Response:
        return await sim.call(
            request,
            "upsertCustomer",
            lambda raw: sim.upsert_customer(customer_id, key, raw),
            idempotency_key=key,
        )

    @app.get("/customers/{customer_id}", tags=["customers"])
    async def get_customer(request: Request, customer_id: str) -> Response:
        return await sim.call(
            request, "getCustomer", lambda _: sim.get_customer(customer_id), mutating=False
        )

    @app.delete("/customers/{customer_id}", status_code=204, tags=["customers"])
    async def delete_customer(
        request: Request, customer_id: str, key: IdempotencyKey = None
    ) -> Response:
        return await sim.call(
            request,
            "deleteCustomer",
            lambda _: sim.delete_customer(customer_id),
            idempotency_key=key,
        )

    @app.put("/customers/{customer_id}/services/{service_id}", tags=["services"])
    async def upsert_service(
        request: Request, customer_id: str, service_id: str, key: IdempotencyKey = None
    ) -> Response:
        return await sim.call(
            request,
            "upsertService",
            lambda raw: sim.upsert_service(
                customer_id,
                service_id,
                raw,
                must_exist=request.headers.get("if-match", "").strip() == "*",
            ),
            idempotency_key=key,
        )

    @app.get("/services", tags=["services"])
    async def list_services(
        request: Request,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    ) -> Response:
        return await sim.call(
            request, "listServices", lambda _: sim.page_services(offset, limit), mutating=False
        )

    @app.get("/customers/{customer_id}/services/{service_id}", tags=["services"])
    async def get_service(request: Request, customer_id: str, service_id: str) -> Response:
        return await sim.call(
            request,
            "getService",
            lambda _: sim.get_service(customer_id, service_id),
            mutating=False,
        )

    @app.delete(
        "/customers/{customer_id}/services/{service_id}", status_code=204, tags=["services"]
    )
    async def delete_service(
        request: Request, customer_id: str, service_id: str, key: IdempotencyKey = None
    ) -> Response:
        return await sim.call(
            request,
            "deleteService",
            lambda _: sim.delete_service(customer_id, service_id),
            idempotency_key=key,
        )

    @app.put("/organizations/{organization_id}", tags=["organizations"])
    async def upsert_organization(
        request: Request, organization_id: str, key: IdempotencyKey = None
    ) -> Response:
        return await sim.call(
            request,
            "upsertOrganization",
            lambda raw: sim.upsert_organization(organization_id, raw),
            idempotency_key=key,
        )

    @app.delete("/organizations/{organization_id}", status_code=204, tags=["organizations"])
    async def delete_organization(
        request: Request, organization_id: str, key: IdempotencyKey = None
    ) -> Response:
        return await sim.call(
            request,
            "deleteOrganization",
            lambda _: sim.delete_organization(organization_id),
            idempotency_key=key,
        )

    @app.post("/cases", status_code=201, tags=["cases"])
    async def open_case(request: Request, key: IdempotencyKey = None) -> Response:
        return await sim.call(request, "openCase", sim.open_case, idempotency_key=key)

    @app.get("/cases/{case_id}", tags=["cases"])
    async def get_case(request: Request, case_id: str) -> Response:
        return await sim.call(request, "getCase", lambda _: sim.get_case(case_id), mutating=False)

    return app
