"""The CRM (REST): customers and the services they hold, cases, partners' organizations."""

from __future__ import annotations

from typing import Any

from adapters.rest import RestClient
from hub.errors import NotFoundError

#: ``If-Match: *`` (RFC 9110): update a service that exists; never create one.
_EXISTING = {"If-Match": "*"}


class CrmClient(RestClient):
    system = "crm"

    async def upsert_customer(
        self,
        customer_id: str,
        *,
        name: str,
        email: str | None,
        phone: str | None,
        idempotency_key: str,
    ) -> bool:
        """Create or update a customer; True when this call created it."""
        response = await self.request(
            "PUT",
            f"/customers/{customer_id}",
            json={"name": name, "email": email, "phone": phone},
            idempotency_key=idempotency_key,
        )
        return bool(self.body(response).get("created"))

    async def delete_customer(self, customer_id: str, *, idempotency_key: str) -> None:
        """Delete a customer; one already gone is fine. Raises ConflictError if it has services."""
        await self.request(
            "DELETE",
            f"/customers/{customer_id}",
            idempotency_key=idempotency_key,
            ok_statuses=frozenset({404}),
        )

    async def upsert_service(
        self,
        customer_id: str,
        service_id: str,
        *,
        status: str,
        idempotency_key: str,
        imsi: str | None = None,
        msisdn: str | None = None,
        plan: str | None = None,
        order_id: str | None = None,
        must_exist: bool = False,
    ) -> str | None:
        """Create or update a customer's service; returns its status before this call.

        ``must_exist``: update only; a service the customer does not have raises
        :class:`NotFoundError` and is not created."""
        payload: dict[str, Any] = {"status": status, "orderId": order_id}
        payload |= {k: v for k, v in (("imsi", imsi), ("msisdn", msisdn), ("plan", plan)) if v}
        body = await self._put_service(
            customer_id, service_id, payload, idempotency_key, must_exist=must_exist
        )
        previous = body.get("previousStatus")
        return str(previous) if previous else None

    async def change_service_plan(
        self, customer_id: str, service_id: str, *, plan: str, idempotency_key: str
    ) -> str | None:
        """Move an existing service to another plan, its status unchanged; returns the plan it
        had (None: none). A service the customer does not have raises :class:`NotFoundError`."""
        body = await self._put_service(
            customer_id, service_id, {"plan": plan}, idempotency_key, must_exist=True
        )
        previous = body.get("previousPlan")
        return str(previous) if previous else None

    async def _put_service(
        self,
        customer_id: str,
        service_id: str,
        payload: dict[str, Any],
        idempotency_key: str,
        *,
        must_exist: bool,
    ) -> dict[str, Any]:
        path = f"/customers/{customer_id}/services/{service_id}"
        response = await self.request(
            "PUT",
            path,
            json=payload,
            idempotency_key=idempotency_key,
            headers=_EXISTING if must_exist else None,
            ok_statuses=frozenset({412}) if must_exist else frozenset(),
        )
        if response.status_code == 412:
            raise NotFoundError(
                f"HTTP 412 on PUT {path}: customer {customer_id} has no service {service_id}",
                system=self.system,
                status=412,
            )
        return self.body(response)

    async def list_services(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """A page of every customer's services (in id order) and how many there are."""
        body = self.body(
            await self.request("GET", f"/services?offset={int(offset)}&limit={int(limit)}")
        )
        return list(body["items"]), int(body["total"])

    async def delete_service(
        self, customer_id: str, service_id: str, *, idempotency_key: str
    ) -> None:
        """Remove a service; one already gone (or a customer already gone) is fine."""
        await self.request(
            "DELETE",
            f"/customers/{customer_id}/services/{service_id}",
            idempotency_key=idempotency_key,
            ok_statuses=frozenset({404}),
        )

    async def open_case(
        self,
        *,
        subject: str,
        description: str,
        category: str,
        priority: str,
        reference: str | None,
        idempotency_key: str,
    ) -> str:
        """Open a case for a team to work on; answers its id (the same id for a retry)."""
        response = await self.request(
            "POST",
            "/cases",
            json={
                "subject": subject,
                "description": description,
                "category": category,
                "priority": priority,
                "reference": reference,
            },
            idempotency_key=idempotency_key,
        )
        return str(self.body(response)["id"])

    async def upsert_organization(
        self,
        organization_id: str,
        *,
        name: str,
        trading_name: str | None,
        vat_id: str,
        registration_number: str,
        billing_account_id: str | None,
        status: str,
        idempotency_key: str,
    ) -> bool:
        """Create or update a wholesale partner's record; True when this call created it."""
        response = await self.request(
            "PUT",
            f"/organizations/{organization_id}",
            json={
                "name": name,
                "tradingName": trading_name,
                "vatId": vat_id,
                "registrationNumber": registration_number,
                "billingAccountId": billing_account_id,
                "status": status,
            },
            idempotency_key=idempotency_key,
        )
        return bool(self.body(response).get("created"))

    async def delete_organization(self, organization_id: str, *, idempotency_key: str) -> None:
        """Remove a partner's record (compensation); one already gone is fine."""
        await self.request(
            "DELETE",
            f"/organizations/{organization_id}",
            idempotency_key=idempotency_key,
            ok_statuses=frozenset({404}),
        )
