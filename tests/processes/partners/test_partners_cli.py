"""``hub partners`` against a real API server: apply, list, get, wait until active (the task
approved with ``hub tasks complete``), fetch the credentials once, ask for offboarding."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from hub.tools import cli
from tests.conftest import Hub, Simulators, served_api
from tests.processes.partners.conftest import key_of, known_company
from tests.processes.partners.test_onboarding import reaches

runner = CliRunner()


@pytest.fixture
def api_url(partner_hub: Hub) -> Iterator[str]:
    with served_api(partner_hub) as url:
        yield url


async def hub_cli(api_url: str, who: str, *args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(
        runner.invoke,
        cli.app,
        [*args, "--api-url", api_url, "--api-key", key_of(who)],
        env={"COLUMNS": "200"},
    )
    return result.exit_code, " ".join(result.output.split())


async def test_apply_wait_credentials_and_offboard(
    partner_hub: Hub, sims: Simulators, api_url: str
) -> None:
    body = await known_company(sims)
    organization = body["organization"]
    ids = {
        item["identificationType"]: item["identificationId"]
        for item in organization["organizationIdentification"]
    }
    code, out = await hub_cli(
        api_url, "applicant", "partners", "apply", "--name", organization["name"],
        "--registration-number", ids["companyRegistrationNumber"], "--vat-id", ids["vatId"],
        "--callback-url", body["callbackUrl"], "--scope", "orders:read",
        "--representative", "Anna Berger", "--email", "noc@testnet.example",
    )  # fmt: skip
    assert code == 0, out
    application_id = out.split("application ")[1].split()[0]
    task_id = (await reaches(partner_hub, application_id, "awaitingApproval"))["taskId"]

    code, out = await hub_cli(
        api_url, "applicant", "partners", "list", "--status", "awaitingApproval"
    )
    assert code == 0 and application_id in out, out
    code, out = await hub_cli(api_url, "applicant", "partners", "get", application_id)
    assert code == 0 and ids["vatId"] in out and task_id in out, out

    code, out = await hub_cli(api_url, "approver", "tasks", "complete", task_id, "approve")
    assert code == 0, out
    code, out = await hub_cli(
        api_url, "applicant", "partners", "wait", application_id, "--timeout", "60"
    )
    assert code == 0 and "active" in out, out

    code, out = await hub_cli(api_url, "operator", "partners", "credentials", application_id)
    assert code == 0 and "client secret" in out and "whsec_" in out, out
    # Whole, however narrow the terminal (never cut by a table): it is shown this once.
    secret = re.search(r"client secret: (\S+)", out).group(1)  # type: ignore[union-attr]
    assert len(secret) >= 32 and "…" not in secret, secret
    code, out = await hub_cli(api_url, "operator", "partners", "credentials", application_id)
    assert code != 0 and "410" in out, out

    code, out = await hub_cli(api_url, "approver", "partners", "offboard", application_id)
    assert code == 0 and "task-" in out, out
