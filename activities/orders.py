"""Activities that record an order's progress in the hub database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.definitions import defn
from activities.events import relay_or_default, wake_relay
from hub.db import session_scope
from hub.events.envelopes import Event, EventType
from hub.events.outbox import add_event, add_order_event
from hub.events.relay import RelayInput, listened
from hub.models import (
    CancelServiceOrder,
    CancelState,
    OrderState,
    OrderStateChange,
    ServiceOrder,
    ServiceOrderItem,
    utcnow,
)
from hub.service_orders import PREFIX, cancel_json


@dataclass
class RecordOrderStateInput:
    order_id: str
    state: str | None = None
    #: item id -> new state, for the items that changed.
    items: dict[str, str] = field(default_factory=dict)
    #: Why the order failed; while it is ``held``, why it waits (the dead letter). Leaving
    #: ``held`` replaces the waiting's message with this one, None included.
    error_message: str | None = None
    reason: str | None = None


#: How long a state write waits for its order's row, by default (setting ``order_row_grace``).
#: The API starts the workflow inside the
#: transaction that inserts the row and commits right after, so the row normally shows within
#: milliseconds (seconds when SQLite is busy: its busy timeout is 30 s). A row that never shows
#: means the API died in between: its client was never told the order was accepted, and will
#: post it again as a new order. The workflow then must fail before any outside call, rather
#: than provision a subscriber the hub knows nothing about.
ORDER_ROW_GRACE = timedelta(minutes=2)


def specification_of(document: dict[str, Any]) -> str:
    """The service specification of an order's first item (``mobile-subscriber``)."""
    for item in document.get("serviceOrderItem") or []:
        spec = ((item or {}).get("service") or {}).get("serviceSpecification") or {}
        if spec.get("name"):
            return str(spec["name"])
    return "unknown"


class OrderStoreActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        row_grace: timedelta = ORDER_ROW_GRACE,
        public_url: str = "http://127.0.0.1:8000",
        relay: RelayInput | None = None,
    ) -> None:
        self.sessions = sessions
        self.row_grace = row_grace
        #: For the events' ``href``s; ``relay``: how to wake the event relay after a commit.
        self.public_url = public_url
        self.relay = relay

    @defn("hub.record_order_state")
    async def record_order_state(self, data: RecordOrderStateInput) -> None:
        """Write the order's new state and item states, with one audit row per change
        (``held`` and back included: every state change goes through here).

        Each change is reported in the same transaction (the outbox, :mod:`hub.events`): a
        ServiceOrderStateChangeEvent, a ServiceOrderAttributeValueChangeEvent for item states,
        a CancelServiceOrderStateChangeEvent when the order's end closes its cancellation.

        Idempotent: a retry finds the states already set and writes no second audit row (and
        no second event).
        While the order's row is not there (the API has not committed yet) it fails, to be
        retried; after :data:`ORDER_ROW_GRACE` for good (see there).
        """
        transition: tuple[str, str] | None = None
        events = listening = False
        async with session_scope(self.sessions) as session:
            order = await session.get(ServiceOrder, data.order_id)
            if order is None:
                waited = datetime.now(UTC) - activity.info().scheduled_time
                if waited < self.row_grace:
                    raise ApplicationError(
                        f"order {data.order_id} is not in the hub database yet",
                        type="OrderNotRecordedYet",
                    )
                raise ApplicationError(
                    f"order {data.order_id} is not in the hub database after "
                    f"{waited.total_seconds():.0f} s: the API never confirmed it, so it is "
                    "not carried out",
                    type="OrderNotRecorded",
                    non_retryable=True,
                )
            now = utcnow()
            leaving_held = order.state == OrderState.HELD and data.state not in (
                None,
                OrderState.HELD,
            )
            closed: CancelServiceOrder | None = None
            items_changed = False
            if data.state and data.state != order.state:
                session.add(
                    OrderStateChange(
                        order_id=order.id,
                        from_state=order.state,
                        to_state=data.state,
                        reason=data.reason,
                        at=now,
                    )
                )
                order.state = data.state
                transition = (specification_of(order.document), data.state)
                if OrderState(data.state).is_final:
                    order.completion_date = now
                    closed = await self._close_cancel_request(
                        session, order.id, OrderState(data.state)
                    )
            if data.error_message is not None or leaving_held:
                order.error_message = data.error_message
            order.updated_at = now
            session.add(order)
            items = list(
                await session.exec(
                    select(ServiceOrderItem).where(ServiceOrderItem.order_id == order.id)
                )
            )
            if data.items:
                for item in items:
                    new_state = data.items.get(item.item_id)
                    if new_state and new_state != item.state:
                        session.add(
                            OrderStateChange(
                                order_id=order.id,
                                item_id=item.item_id,
                                from_state=item.state,
                                to_state=new_state,
                                reason=data.reason,
                                at=now,
                            )
                        )
                        item.state = new_state
                        session.add(item)
                        items_changed = True
            events = await self._report(session, order, items, transition, items_changed, closed)
            listening = events and await listened(session, relay_or_default(self.relay))
        if listening:
            await wake_relay(self.relay)
        if transition is not None and activity.in_activity():
            specification, state = transition
            activity.metric_meter().with_additional_attributes(
                {"specification": specification, "state": state}
            ).create_counter(
                "hub_order_transitions", "Service orders entering a state, by specification"
            ).add(1)

    async def _report(
        self,
        session: AsyncSession,
        order: ServiceOrder,
        items: list[ServiceOrderItem],
        transition: tuple[str, str] | None,
        items_changed: bool,
        closed: CancelServiceOrder | None,
    ) -> bool:
        """The events of what this write changed, in its transaction; whether there were any."""
        url = self.public_url
        if transition is not None:
            await add_order_event(
                session,
                order,
                EventType.SERVICE_ORDER_STATE_CHANGE,
                f"service order {order.id} is {order.state}",
                public_url=url,
                items=items,
            )
        if items_changed:
            await add_order_event(
                session,
                order,
                EventType.SERVICE_ORDER_ATTRIBUTE_VALUE_CHANGE,
                f"the items of service order {order.id} changed state",
                public_url=url,
                items=items,
            )
        if closed is not None:
            await add_event(
                session,
                Event(
                    event_type=EventType.CANCEL_SERVICE_ORDER_STATE_CHANGE,
                    resource_id=closed.id,
                    resource=cancel_json(closed, url.rstrip("/") + PREFIX),
                    description=f"the cancellation of service order {order.id} is {closed.state}",
                    partner_id=order.partner_id,
                    correlation_id=order.id,
                ),
            )
        return transition is not None or items_changed or closed is not None

    @staticmethod
    async def _close_cancel_request(
        session: AsyncSession, order_id: str, final: OrderState
    ) -> CancelServiceOrder | None:
        request = (
            await session.exec(
                select(CancelServiceOrder).where(CancelServiceOrder.order_id == order_id)
            )
        ).first()
        if request is None or request.state in (
            CancelState.DONE,
            CancelState.TERMINATED_WITH_ERROR,
        ):
            return None
        request.effective_at = utcnow()
        if final == OrderState.CANCELLED:
            request.state = CancelState.DONE
        else:
            request.state = CancelState.TERMINATED_WITH_ERROR
            request.error_message = f"the order ended {final.value} before it could be cancelled"
        session.add(request)
        return request
