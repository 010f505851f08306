"""The credit agency (REST): checks that reserve a customer's credit exposure."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.rest import RestClient


@dataclass(frozen=True)
class CreditDecision:
    check_id: str
    approved: bool
    score: int
    reason: str | None


class CreditAgencyClient(RestClient):
    system = "credit"

    async def check(
        self, *, customer_id: str, name: str, amount: float, currency: str, idempotency_key: str
    ) -> CreditDecision:
        """Ask for a decision; an approval reserves ``amount`` until released."""
        response = await self.request(
            "POST",
            "/credit-checks",
            json={"customerId": customer_id, "name": name, "amount": amount, "currency": currency},
            idempotency_key=idempotency_key,
        )
        body = self.body(response)
        return CreditDecision(
            check_id=str(body["id"]),
            approved=body.get("decision") == "approved",
            score=int(body.get("score") or 0),
            reason=body.get("reason"),
        )

    async def release(self, check_id: str, *, idempotency_key: str) -> None:
        """Release a check's reservation; releasing twice is harmless."""
        await self.request(
            "DELETE",
            f"/credit-checks/{check_id}",
            idempotency_key=idempotency_key,
            ok_statuses=frozenset({404}),
        )
