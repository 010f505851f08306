"""``hub usage generate`` and ``hub recon ...`` against the real API on a loopback port."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.main import create_app
from hub.tools import cli
from simulators.serving import serve_in_background
from tests.conftest import API_KEY, Hub, Simulators

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # tables keep whole ids


def text(result: object) -> str:
    return " ".join(result.output.split())  # type: ignore[attr-defined]


def test_usage_generate_writes_both_sides_and_the_truth(tmp_path: Path) -> None:
    result = runner.invoke(
        cli.app,
        [
            "usage", "generate", str(tmp_path / "data"),
            "--records", "3000", "--start", "2026-11-01", "--network-format", "csv.gz",
            "--rates", "missing_in_billing=0.02,unbilled=0.01",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert set(manifest["injected"]) == {"missing_in_billing", "unbilled"}
    assert (tmp_path / "data" / "network" / "cdr-00001.csv.gz").exists()
    assert "hub recon start --start 2026-11-01T00:00:00+00:00" in text(result)
    bad = runner.invoke(cli.app, ["usage", "generate", str(tmp_path), "--rates", "typo=0.1"])
    assert bad.exit_code == 1 and "unknown categories ['typo']" in text(bad)


async def test_recon_start_wait_get_and_list(hub: Hub, sims: Simulators, tmp_path: Path) -> None:
    generated = runner.invoke(
        cli.app,
        ["usage", "generate", str(tmp_path / "d"), "--records", "2000", "--start", "2026-11-01"],
    )
    assert generated.exit_code == 0, generated.output
    app = create_app(hub.settings, temporal=hub.client, run_migrations=False)
    async with app.router.lifespan_context(app), serve_in_background(app) as url:
        common = ["--api-url", url, "--api-key", API_KEY]
        started = await asyncio.to_thread(
            runner.invoke,
            cli.app,
            [
                "recon", "start", "--start", "2026-11-01", "--end", "2026-11-02",
                "--network-source", str(tmp_path / "d" / "network"),
                "--billing-source", str(tmp_path / "d" / "billing"),
                "--threshold", "100", "--wait", *common,
            ],
        )  # fmt: skip
        assert started.exit_code == 0, started.output
        out = text(started)
        assert "status completed" in out and "missing_in_billing" in out
        run_id = out.split("reconciliation ")[1].split(" ")[0]
        got = await asyncio.to_thread(runner.invoke, cli.app, ["recon", "get", run_id, *common])
        assert got.exit_code == 0 and "leakage" in text(got)
        listed = await asyncio.to_thread(runner.invoke, cli.app, ["recon", "list", *common])
        assert run_id in text(listed)
        refused = await asyncio.to_thread(
            runner.invoke,
            cli.app,
            ["recon", "start", "--start", "2026-11-02", "--end", "2026-11-01", *common],
        )
        assert refused.exit_code == 1
        assert "periodEnd must be after periodStart" in text(refused)
