"""Random transient faults in every outside system: retried, never doubled, never lost."""

from __future__ import annotations

from bench import chaos
from bench.activation import simulator_requests
from tests.chaos.conftest import Chaos

#: How long the client keeps re-posting until every order is accepted: the orders are posted
#: while workers die, and in the whole suite beside two other test processes' chaos stacks.
SUBMIT_DEADLINE = 300.0

ORDERS = 200
FAULT_RATE = 0.2

# (system, operation, the identity field the fault matches, the step named in the error)
FAILURE_POINTS = [
    ("credit", "createCheck", "customer", "credit.check"),
    ("crm", "upsertCustomer", "customer", "crm.upsert_customer"),
    ("hss", "createSubscriber", "imsi", "hss.create_subscriber"),
    ("billing", "CreateAccount", "customer", "billing.open_account"),
    ("billing", "CreateSubscription", "imsi", "billing.create_subscription"),
    ("crm", "upsertService", "imsi", "crm.activate_service"),
]


async def test_with_a_fifth_of_all_calls_failing_every_order_completes_once(
    chaos_hub: Chaos,
) -> None:
    identities = chaos.new_identities(ORDERS)
    sim_log = chaos_hub.stack.log_path("simulators")
    log_start = sim_log.stat().st_size
    await chaos_hub.stack.configure_simulators(error_rate=FAULT_RATE)

    await chaos.submit_all(chaos_hub.api, identities, timeout=SUBMIT_DEADLINE)
    await chaos_hub.settled(identities, timeout=180)

    ledger = await chaos_hub.audit(identities)
    assert ledger.states == {"completed": ORDERS}, ledger.summary()
    # One subscriber, account, subscription, CRM service (and credit check) per order.
    assert ledger.ok, ledger.summary()
    # The faults did happen, at about the rate asked for: 503s in the simulators' access logs.
    served = simulator_requests(sim_log, log_start)
    failed = sum(count for request, count in served.items() if request.endswith(" 503"))
    total = sum(served.values())
    assert total >= ORDERS * chaos.CALLS_PER_ORDER
    assert 0.15 < failed / total < 0.25, (failed, total)


async def test_permanent_faults_under_transient_chaos_leave_no_trace(chaos_hub: Chaos) -> None:
    """A business rejection at any step compensates every step done, and the compensations
    get through although a fifth of their calls fail too."""
    per_point = 3
    identities = chaos.new_identities(per_point * len(FAILURE_POINTS))
    expected_step = {}
    for index, identity in enumerate(identities):
        system, operation, field, step = FAILURE_POINTS[index % len(FAILURE_POINTS)]
        await chaos_hub.fault(
            system,
            operation=operation,
            match=getattr(identity, field),
            kind="permanent",
            message="injected rejection",
        )
        expected_step[identity.external_id] = step
    await chaos_hub.stack.configure_simulators(error_rate=FAULT_RATE)

    order_ids = await chaos.submit_all(chaos_hub.api, identities, timeout=SUBMIT_DEADLINE)
    await chaos_hub.settled(identities, timeout=120)

    ledger = await chaos_hub.audit(identities)
    assert ledger.states == {"failed": len(identities)}, ledger.summary()
    assert not ledger.orphans and not ledger.duplicates, ledger.summary()
    for identity, order_id in order_ids.items():
        body = (await chaos_hub.api.get(f"{chaos.ORDERS_PATH}/{order_id}")).json()
        message = body["errorMessage"][0]["message"]
        assert expected_step[identity.external_id] in message, message
        assert "manual repair" not in message, message
