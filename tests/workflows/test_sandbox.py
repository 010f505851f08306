"""The workflow sandbox's two modes (``HUB_WORKFLOW_SANDBOX``), and what stands in for the
checks the shared mode gives up: ruff's banned-API rule in ``workflows/``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hub.settings import REPO_ROOT, Settings
from worker import workflow_runner

NON_DETERMINISTIC = """\
from datetime import datetime
import random
import uuid


def stamp() -> str:
    return f"{datetime.now()} {random.random()} {uuid.uuid4()}"
"""


def test_shared_passes_the_process_modules_through_and_strict_only_the_runtime() -> None:
    shared = workflow_runner("shared").restrictions.passthrough_modules
    strict = workflow_runner("strict").restrictions.passthrough_modules
    assert "workflows" in shared
    assert "workflows" not in strict and "workflows.runtime" in strict


def test_the_worker_shares_the_modules_unless_told_otherwise() -> None:
    assert Settings(_env_file=None).workflow_sandbox == "shared"  # type: ignore[call-arg]


def ruff(filename: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "TID251", "--stdin-filename", filename],
        input=NON_DETERMINISTIC,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )


def test_lint_refuses_non_deterministic_calls_in_a_workflow_module() -> None:
    found = ruff("workflows/new_process.py")
    assert found.returncode == 1, found.stdout + found.stderr
    for banned in ("datetime.datetime.now", "`random`", "uuid.uuid4"):
        assert banned in found.stdout


@pytest.mark.parametrize("filename", ["activities/new_step.py", "hub/new_module.py"])
def test_lint_allows_them_outside_the_workflows(filename: str) -> None:
    found = ruff(filename)
    assert found.returncode == 0, found.stdout + found.stderr
