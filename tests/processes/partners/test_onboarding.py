"""Partner onboarding end to end: the API, the worker on the real dev server, the simulators
(VAT, registry, credit, billing, CRM, the partner's callback) and an identity provider double.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from hub.partners import webhooks
from tests.conftest import Hub, Simulators, eventually
from tests.partner_doubles import IdentityProviderDouble
from tests.processes.partners.conftest import as_, known_company

APPLICATIONS = "/partnerApplications"


async def application(hub: Hub, application_id: str) -> dict[str, Any]:
    response = await hub.api.get(f"{APPLICATIONS}/{application_id}", headers=as_("applicant"))
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def reaches(
    hub: Hub, application_id: str, status: str, timeout: float = 30
) -> dict[str, Any]:
    async def there() -> dict[str, Any] | None:
        body = await application(hub, application_id)
        if body["status"] == status and (status != "awaitingApproval" or body["taskId"]):
            return body
        return None

    found: dict[str, Any] = await eventually(there, timeout=timeout)
    return found


async def decide(hub: Hub, task_id: str, who: str, decision: str = "approve") -> None:
    body: dict[str, Any] = {"decision": decision}
    if decision == "reject":
        body["comment"] = "not for us"
    response = await hub.api.post(f"/tasks/{task_id}/complete", json=body, headers=as_(who))
    assert response.status_code == 200, response.text


async def apply(hub: Hub, body: dict[str, Any]) -> dict[str, Any]:
    response = await hub.api.post(APPLICATIONS, json=body, headers=as_("applicant"))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_partner_is_onboarded_and_offboarded(
    partner_hub: Hub, sims: Simulators, identity: IdentityProviderDouble
) -> None:
    hub = partner_hub
    body = await known_company(sims)
    created = await apply(hub, body)
    assert created["status"] == "checking"
    again = await hub.api.post(APPLICATIONS, json=body, headers=as_("applicant"))
    assert (again.status_code, again.json()["id"]) == (200, created["id"])

    waiting = await reaches(hub, created["id"], "awaitingApproval")
    assert waiting["findings"] == [], waiting["findings"]
    assert waiting["checks"]["vat"]["valid"] is True
    await decide(hub, waiting["taskId"], "approver")
    active = await reaches(hub, created["id"], "active")
    org_id = active["organizationId"]

    billing = await sims.state("billing")
    [account] = [a for a in billing["accounts"] if a["customerId"] == org_id]
    assert (account["accountType"], account["accountId"]) == (
        "wholesale",
        active["billingAccountId"],
    )
    crm = await sims.state("crm")
    assert [o["status"] for o in crm["organizations"] if o["id"] == org_id] == ["active"]
    assert identity.of(org_id) == [active["clientId"]]

    organization = (
        await hub.api.get(active["organizationHref"].replace("http://hub.test", ""))
    ).json()
    assert organization["status"] == "validated" and organization["@type"] == "Organization"
    role = (await hub.api.get(active["partyRoleHref"].replace("http://hub.test", ""))).json()
    assert (role["status"], role["name"]) == ("active", "wholesalePartner")
    assert role["engagedParty"]["id"] == org_id

    # The credentials: an operator with partners:credentials, once.
    refused = await hub.api.post(
        f"{APPLICATIONS}/{created['id']}/credentials", headers=as_("approver")
    )
    assert refused.status_code == 403
    handed = await hub.api.post(
        f"{APPLICATIONS}/{created['id']}/credentials", headers=as_("operator")
    )
    assert handed.status_code == 200, handed.text
    credentials = handed.json()
    assert credentials["clientId"] == active["clientId"]
    assert credentials["clientSecret"] in identity.secrets_issued
    assert credentials["tokenEndpoint"] == identity.token_endpoint
    gone = await hub.api.post(
        f"{APPLICATIONS}/{created['id']}/credentials", headers=as_("operator")
    )
    assert gone.status_code == 410, gone.text

    # The connectivity test reached the partner, signed with the secret it was handed.
    partner = await sims.state("partner")
    # The simulator is the suite's: other tests' deliveries are there too.
    [delivery] = [d for d in partner["deliveries"] if _organization_of(d["body"]) == org_id]
    signed = httpx.Request("POST", "/", json=delivery["body"]).content
    assert webhooks.verify(
        credentials["webhookSecret"],
        delivery["webhookId"],
        delivery["webhookTimestamp"],
        delivery["webhookSignature"],
        signed,
        now=time.time(),
    )

    # No secret in clear in the history.
    history = await hub.client.get_workflow_handle(active["workflowId"]).fetch_history()
    text = history.to_json()
    for secret in [*identity.secrets_issued, credentials["webhookSecret"]]:
        assert secret not in text

    # Offboarding: asked by one person, approved by another.
    asked = await hub.api.post(
        f"{APPLICATIONS}/{created['id']}/offboard", json={"reason": "contract ended"},
        headers=as_("approver"),
    )  # fmt: skip
    assert asked.status_code == 202, asked.text
    task_id = asked.json()["taskId"]
    refused = await hub.api.post(
        f"/tasks/{task_id}/complete", json={"decision": "approve"}, headers=as_("approver")
    )
    assert refused.status_code == 403, refused.text
    await decide(hub, task_id, "second")
    closed = await reaches(hub, created["id"], "closed")
    assert closed["reasons"] == []
    assert identity.of(org_id) == []
    billing = await sims.state("billing")
    assert [a for a in billing["accounts"] if a["customerId"] == org_id] == []
    crm = await sims.state("crm")
    assert [o["status"] for o in crm["organizations"] if o["id"] == org_id] == ["closed"]
    role = (await hub.api.get(active["partyRoleHref"].replace("http://hub.test", ""))).json()
    assert role["status"] == "terminated"


async def test_a_provisioning_failure_leaves_nothing_behind(
    partner_hub: Hub, sims: Simulators, identity: IdentityProviderDouble
) -> None:
    hub = partner_hub
    body = await known_company(sims)
    created = await apply(hub, body)
    identity.refuse.add(created["organizationId"])
    waiting = await reaches(hub, created["id"], "awaitingApproval")
    await decide(hub, waiting["taskId"], "approver")
    failed = await reaches(hub, created["id"], "failed")
    assert "identity.register_client" in failed["reasons"][0], failed["reasons"]
    org_id = created["organizationId"]
    billing = await sims.state("billing")
    assert [a for a in billing["accounts"] if a["customerId"] == org_id] == []
    crm = await sims.state("crm")
    assert [o for o in crm["organizations"] if o["id"] == org_id] == []
    assert identity.of(org_id) == []


async def test_a_partner_that_does_not_answer_parks_until_it_is_fixed(
    partner_hub: Hub, sims: Simulators, identity: IdentityProviderDouble
) -> None:
    hub = partner_hub
    body = await known_company(sims)
    await sims.fault("partner", operation="notify", kind="transient", status=503)
    created = await apply(hub, body)
    waiting = await reaches(hub, created["id"], "awaitingApproval")
    await decide(hub, waiting["taskId"], "approver")

    async def parked() -> list[dict[str, Any]]:
        response = await hub.api.get(
            "/deadLetters", params={"process": "partner-onboarding", "status": "parked"},
            headers=as_("operator"),
        )  # fmt: skip
        return [d for d in response.json() if d["workflowId"] == created["workflowId"]]

    [letter] = await eventually(parked, timeout=30)
    assert letter["step"] == "partner.connectivity_test" and "503" in letter["lastError"]
    assert "sealed:" in letter["input"]["webhook_secret_sealed"]  # never the secret itself
    assert (await application(hub, created["id"]))["status"] == "testing"
    await sims.clear_faults()  # the partner fixed its endpoint
    retried = await hub.api.post(
        f"/deadLetters/{letter['id']}/retry", json={"reason": "endpoint fixed"},
        headers=as_("operator"),
    )  # fmt: skip
    assert retried.status_code == 200, retried.text
    active = await reaches(hub, created["id"], "active")
    assert identity.of(active["organizationId"]) == [active["clientId"]]


def _organization_of(body: object) -> object:
    """The organization id a test notification names, if the body is one."""
    event = body.get("event") if isinstance(body, dict) else None
    organization = event.get("organization") if isinstance(event, dict) else None
    return organization.get("id") if isinstance(organization, dict) else None
