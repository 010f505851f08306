"""Activities against the credit agency."""

from __future__ import annotations

from dataclasses import dataclass

from activities.definitions import defn
from activities.errors import outside_call
from adapters.credit import CreditAgencyClient
from hub.errors import CreditDeclined


@dataclass
class CreditCheckInput:
    customer_id: str
    customer_name: str
    amount: float
    currency: str
    idempotency_key: str


@dataclass
class CreditCheckResult:
    check_id: str
    score: int


@dataclass
class ReleaseCreditInput:
    check_id: str
    idempotency_key: str


class CreditActivities:
    def __init__(self, client: CreditAgencyClient) -> None:
        self.client = client

    @defn("credit.check")
    async def check_credit(self, data: CreditCheckInput) -> CreditCheckResult:
        """Reserve the order's monthly exposure; a decline is a :class:`CreditDeclined`."""
        with outside_call():
            decision = await self.client.check(
                customer_id=data.customer_id,
                name=data.customer_name,
                amount=data.amount,
                currency=data.currency,
                idempotency_key=data.idempotency_key,
            )
            if not decision.approved:
                raise CreditDeclined(
                    f"credit declined (score {decision.score}): "
                    f"{decision.reason or 'no reason given'}"
                )
        return CreditCheckResult(check_id=decision.check_id, score=decision.score)

    @defn("credit.release")
    async def release_credit(self, data: ReleaseCreditInput) -> None:
        with outside_call():
            await self.client.release(data.check_id, idempotency_key=data.idempotency_key)
