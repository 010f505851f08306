"""Histories recorded from an earlier version of the workflows (``histories/README.md``) still
replay: the code of today takes the decisions the code of the time took, so runs in flight when
the worker is upgraded go on. A failure is a determinism break, never a reason to re-record."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

import hub.codec
from worker import WORKFLOWS, workflow_runner

HISTORIES = Path(__file__).parent / "histories"
#: The fixed, non-secret key the histories' payloads are encrypted with (their README).
REPLAY_KEY = "replay-1:cmVwbGF5LWtleS1vZi10aGUtaHViLXRlc3RzLTAwMDA="


def workflow_id_of(text: str) -> str:
    """The workflow id, as the history's start event holds it."""
    started = json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"]
    return str(started["workflowId"])


@pytest.fixture(scope="module", params=["strict", "shared", "off"])
def replayer(request: pytest.FixtureRequest) -> Replayer:
    """The worker's runner, in every sandbox mode (``HUB_WORKFLOW_SANDBOX``): the strict one
    catches a non-deterministic call on replay; the shared one is what production runs."""
    return Replayer(
        workflows=WORKFLOWS,
        data_converter=hub.codec.data_converter([REPLAY_KEY]),
        workflow_runner=workflow_runner(request.param),
    )


def test_histories_are_there() -> None:
    assert len(list(HISTORIES.glob("*.json"))) >= 17


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda path: path.stem)
async def test_recorded_history_replays(path: Path, replayer: Replayer) -> None:
    text = await asyncio.to_thread(path.read_text)
    history = WorkflowHistory.from_json(workflow_id_of(text), text)
    await replayer.replay_workflow(history)  # raises on non-determinism
