"""The parking rule that keeps systems agreeing: a parked step may not correct a field other
systems hold too (:func:`workflows.runtime.parking.held_elsewhere`). Pure functions, no server."""

from __future__ import annotations

from activities.billing import BillingActivities, CreateSubscriptionInput
from activities.crm import CrmActivities, ServiceStatusInput
from activities.hss import DeleteSubscriberInput
from workflows.runtime.parking import DoneStep, held_elsewhere

SUBSCRIPTION = CreateSubscriptionInput(
    account_id="acc-1", msisdn="436641", imsi="001010000000001", plan="BASIC-4G",
    idempotency_key="wf/1/billing.create_subscription",
)  # fmt: skip


def test_a_field_an_earlier_step_had_with_the_same_value_is_refused_naming_it() -> None:
    done = [
        DoneStep("1/hss.delete_subscriber", "hss", DeleteSubscriberInput("001010000000001", "k"))
    ]
    refused = held_elsewhere("1/billing.create_subscription", "billing", SUBSCRIPTION, done, {})
    assert set(refused) == {"imsi"}
    assert "hss (1/hss.delete_subscriber)" in refused["imsi"]
    assert "reach billing alone" in refused["imsi"]


def test_a_different_value_an_idempotency_key_and_a_flag_are_not_held() -> None:
    done = [
        DoneStep("1/hss.delete_subscriber", "hss", DeleteSubscriberInput("001010000000002", "k")),
        DoneStep(
            "1/crm.mark_terminating",
            "crm",
            ServiceStatusInput(
                "c", "s", "active", "wf/1/billing.create_subscription", must_exist=True
            ),
        ),
    ]
    flagged = ServiceStatusInput("c2", "s2", "inactive", "k2", must_exist=True)
    assert held_elsewhere("1/billing.create_subscription", "billing", SUBSCRIPTION, done, {}) == {}
    assert held_elsewhere("1/crm.x", "crm", flagged, done, {}) == {}


def test_declared_shared_fields_name_the_systems_of_later_steps() -> None:
    refused = held_elsewhere(
        "1/billing.create_subscription",
        "billing",
        SUBSCRIPTION,
        [],
        {"plan": [CrmActivities.set_service_status], "msisdn": [BillingActivities.change_plan]},
    )
    assert set(refused) == {"plan", "msisdn"}
    assert "crm (crm.set_service_status)" in refused["plan"]
