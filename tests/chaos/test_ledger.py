"""The ledger the chaos tests and the soak trust: it must see every kind of damage."""

from __future__ import annotations

from typing import Any

import pytest

from bench.chaos import HubOrder, Identity, attempts_for, audit, new_identities


def order(identity: Identity, state: str = "completed", *, parked: bool = False) -> HubOrder:
    return HubOrder(
        id=f"id-{identity.external_id}",
        external_id=identity.external_id,
        customer_id=identity.customer,
        state=state,
        parked=parked,
    )


def provisioned(*identities: Identity) -> dict[str, Any]:
    """Simulator states holding exactly what each identity's completed order leaves."""
    return {
        "credit": {
            "checks": [{"id": f"chk-{i.imsi}", "customerId": i.customer} for i in identities]
        },
        "crm": {
            "customers": [
                {"id": i.customer, "services": [{"id": f"svc-{i.imsi}", "imsi": i.imsi}]}
                for i in identities
            ]
        },
        "hss": {"subscribers": [{"imsi": i.imsi} for i in identities]},
        "billing": {
            "accounts": [
                {"accountId": f"acc-{i.imsi}", "customerId": i.customer} for i in identities
            ],
            "subscriptions": [
                {"subscriptionId": f"sub-{i.imsi}", "imsi": i.imsi} for i in identities
            ],
        },
    }


def test_a_clean_run_is_ok() -> None:
    identities = new_identities(3)
    ledger = audit(identities, [order(i) for i in identities], provisioned(*identities))
    assert ledger.ok, ledger.summary()
    assert ledger.states == {"completed": 3}


def test_a_second_record_is_a_duplicate() -> None:
    first, second = new_identities(2)
    states = provisioned(first, second)
    states["credit"]["checks"].append({"id": "chk-again", "customerId": second.customer})
    states["hss"]["subscribers"].append({"imsi": first.imsi})
    ledger = audit([first, second], [order(first), order(second)], states)
    assert not ledger.ok
    assert ledger.duplicates == [
        f"credit check {second.customer}: 2 records",
        f"hss subscriber {first.imsi}: 2 records",
    ]
    assert not ledger.orphans and not ledger.missing


def test_what_a_failed_order_left_behind_is_an_orphan() -> None:
    done, failed = new_identities(2)
    states = provisioned(done)
    states["hss"]["subscribers"].append({"imsi": failed.imsi})
    ledger = audit([done, failed], [order(done), order(failed, "failed")], states)
    assert ledger.orphans == [f"hss subscriber {failed.imsi}: order {failed.external_id} is failed"]
    assert ledger.states == {"completed": 1, "failed": 1}


def test_a_parked_order_may_hold_what_it_did_so_far() -> None:
    [waiting] = new_identities(1)
    states = provisioned(waiting)
    states["billing"]["subscriptions"].clear()
    ledger = audit([waiting], [order(waiting, "inProgress", parked=True)], states)
    assert ledger.ok, ledger.summary()
    assert ledger.states == {"parked": 1}


def test_a_stuck_order_holding_records_is_not_ok() -> None:
    [stuck] = new_identities(1)
    ledger = audit([stuck], [order(stuck, "inProgress")], provisioned(stuck))
    assert len(ledger.orphans) == 6 and not ledger.ok


def test_a_completed_order_lacking_a_record_is_missing_one() -> None:
    [done] = new_identities(1)
    states = provisioned(done)
    states["billing"]["subscriptions"].clear()
    ledger = audit([done], [order(done)], states)
    assert ledger.missing == [f"billing subscription {done.imsi}: order {done.external_id}"]


def test_orders_lost_or_doubled_in_the_hub_database() -> None:
    lost, doubled = new_identities(2)
    again = HubOrder("other-id", "other-external-id", doubled.customer, "failed", parked=False)
    ledger = audit([lost, doubled], [order(doubled), again], provisioned(doubled))
    assert ledger.lost_orders == [lost.external_id]
    assert ledger.doubled_orders == [doubled.external_id]


def test_records_of_no_order_count_only_when_the_simulators_were_ours() -> None:
    mine, someone_elses = new_identities(2)
    states = provisioned(mine, someone_elses)
    assert audit([mine], [order(mine)], states).ok
    private = audit([mine], [order(mine)], states, foreign_records_are_orphans=True)
    assert len(private.orphans) == 6


@pytest.mark.parametrize(("rate", "calls"), [(0.2, 1400), (0.3, 14000), (0.5, 100)])
def test_the_retry_budget_makes_exhaustion_unlikely_and_is_no_larger_than_needed(
    rate: float, calls: int
) -> None:
    attempts = attempts_for(rate, calls)
    assert calls * rate**attempts < 1e-3 <= calls * rate ** (attempts - 1)
