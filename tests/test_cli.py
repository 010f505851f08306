"""The ``hub`` command and the pure parts of the dev stack; no server is started here.

The API is replaced by ``httpx.MockTransport`` where a command needs answers; the dev stack's
ports are free ports of the test's own choosing, never the fixed ones of ``make run``.
"""

from __future__ import annotations

import functools
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from api.tmf641 import ServiceOrderCreate, customer_of, order_items
from hub.codec import EncryptionCodec
from hub.sealing import Unsealer
from hub.settings import ApiClient, Settings
from hub.tools import cli, devstack
from hub.tools.devstack import StackConfig

runner = CliRunner()
ORDERS = "/tmf-api/serviceOrdering/v4/serviceOrder"


def free_port() -> int:
    from bench.stack import free_ports

    return free_ports(1)[0]


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def output_of(result: Any) -> str:
    """stdout and stderr, with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A developer's .env or HUB_* variables must not change what these tests see.
    monkeypatch.chdir(tmp_path)
    for name in (
        "HUB_API_KEY",
        "HUB_API_URL",
        "HUB_PAYLOAD_KEYS",
        "HUB_SEAL_KEYS",
        "HUB_SEAL_PUBLIC_KEY",
        "HUB_ENVIRONMENT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")


# --- The hub command -------------------------------------------------------------------------


def test_help_lists_the_commands() -> None:
    result = runner.invoke(cli.app, ["--help"])
    assert result.exit_code == 0
    for command in ("dev", "api", "worker", "db", "temporal", "order"):
        assert re.search(rf"^\W*{command}\s", result.output, re.MULTILINE), command


def test_order_help_lists_its_commands() -> None:
    result = runner.invoke(cli.app, ["order", "--help"])
    assert result.exit_code == 0
    for command in ("create", "get", "list", "cancel", "wait"):
        assert re.search(rf"^\W*{command}\s", result.output, re.MULTILINE), command


def test_unreachable_api_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(cli.app, ["order", "get", "abc", "--api-url", url, "--api-key", "k"])
    assert result.exit_code == 1
    text = output_of(result)
    assert f"the API is not reachable at {url}" in text
    assert "Traceback" not in text


def test_api_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HUB_API_URL", url)
    result = runner.invoke(cli.app, ["order", "list"])
    assert result.exit_code == 1
    assert f"not reachable at {url}" in output_of(result)


class FakeApi:
    """Answers the CLI's requests from a handler, and records them."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeApi]]:
    def install(handler: Callable[[httpx.Request], httpx.Response]) -> FakeApi:
        api = FakeApi(handler)
        transport = httpx.MockTransport(api)
        monkeypatch.setattr(
            cli, "api_client", functools.partial(cli.api_client, transport=transport)
        )
        return api

    yield install


def tmf_error(status: int, reason: str, message: str) -> httpx.Response:
    body = {"code": str(status), "reason": reason, "message": message, "status": str(status)}
    return httpx.Response(status, json=body)


def test_api_errors_are_shown_from_the_tmf_body(fake_api: Callable[..., FakeApi]) -> None:
    fake_api(lambda _: tmf_error(404, "Not Found", "no service order with id 'nope'"))
    result = runner.invoke(cli.app, ["order", "get", "nope", "--api-key", "k"])
    assert result.exit_code == 1
    assert "the API answered 404 Not Found: no service order with id 'nope'" in output_of(result)


def test_missing_key_is_explained(fake_api: Callable[..., FakeApi]) -> None:
    api = fake_api(lambda _: tmf_error(401, "Unauthorized", "missing API key"))
    result = runner.invoke(cli.app, ["order", "list"])
    assert result.exit_code == 1
    assert "no API key given" in output_of(result)
    assert "x-api-key" not in api.requests[0].headers


def test_the_key_comes_from_dot_env(fake_api: Callable[..., FakeApi]) -> None:
    Path(".env").write_text("HUB_API_KEY=key-from-dot-env,second-key\n")
    api = fake_api(lambda _: httpx.Response(200, json=[], headers={"X-Total-Count": "0"}))
    result = runner.invoke(cli.app, ["order", "list"])
    assert result.exit_code == 0, result.output
    assert api.requests[0].headers["x-api-key"] == "key-from-dot-env"


def test_order_list_shows_a_table(fake_api: Callable[..., FakeApi]) -> None:
    orders = [
        {"id": "a" * 32, "externalId": "crm-1", "state": "completed",
         "orderDate": "2026-01-02T03:04:05.6Z"},
        {"id": "b" * 32, "externalId": "crm-2", "state": "inProgress",
         "orderDate": "2026-01-02T03:05:00Z"},
    ]  # fmt: skip
    api = fake_api(lambda _: httpx.Response(200, json=orders, headers={"X-Total-Count": "7"}))
    result = runner.invoke(
        cli.app, ["order", "list", "--state", "completed", "--limit", "2", "--api-key", "k"]
    )
    assert result.exit_code == 0, result.output
    assert api.requests[0].url.params == httpx.QueryParams({"limit": "2", "state": "completed"})
    assert api.requests[0].headers["x-api-key"] == "k"
    assert "a" * 32 in result.output and "b" * 32 in result.output  # ids whole, never cut
    assert "crm-2" in result.output and "inProgress" in result.output
    assert "2026-01-02 03:04:05" in result.output
    assert "2 of 7 orders" in result.output


def test_order_create_posts_the_file(fake_api: Callable[..., FakeApi], tmp_path: Path) -> None:
    order = devstack.example_order()
    path = tmp_path / "order.json"
    path.write_text(json.dumps(order))
    api = fake_api(lambda _: httpx.Response(201, json={"id": "o-1", "state": "acknowledged"}))
    result = runner.invoke(cli.app, ["order", "create", str(path), "--api-key", "k"])
    assert result.exit_code == 0, result.output
    request = api.requests[0]
    assert (request.method, request.url.path) == ("POST", ORDERS)
    assert json.loads(request.content) == order
    assert "created service order o-1, state acknowledged" in output_of(result)

    quiet = runner.invoke(cli.app, ["order", "create", str(path), "-q", "--api-key", "k"])
    assert quiet.output == "o-1\n"


def test_order_create_refuses_a_file_that_is_not_json(
    fake_api: Callable[..., FakeApi], tmp_path: Path
) -> None:
    api = fake_api(lambda _: httpx.Response(500))
    path = tmp_path / "order.json"
    path.write_text("{not json")
    result = runner.invoke(cli.app, ["order", "create", str(path), "--api-key", "k"])
    assert result.exit_code == 1
    assert "is not a readable JSON file" in output_of(result)
    assert api.requests == []


def test_order_cancel_sends_the_tmf_body(fake_api: Callable[..., FakeApi]) -> None:
    api = fake_api(lambda _: httpx.Response(201, json={"id": "c-1", "state": "inProgress"}))
    result = runner.invoke(
        cli.app, ["order", "cancel", "o-1", "--reason", "moved", "--api-key", "k"]
    )
    assert result.exit_code == 0, result.output
    assert api.requests[0].url.path == "/tmf-api/serviceOrdering/v4/cancelServiceOrder"
    assert json.loads(api.requests[0].content) == {
        "serviceOrder": {"id": "o-1"},
        "cancellationReason": "moved",
    }


def states_then(*states: str) -> Callable[[httpx.Request], httpx.Response]:
    remaining = list(states)

    def answer(_: httpx.Request) -> httpx.Response:
        state = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        body: dict[str, Any] = {"id": "o-1", "state": state}
        if state == "failed":
            body["errorMessage"] = [{"message": "1/hss.create_subscriber: HTTP 422"}]
        return httpx.Response(200, json=body)

    return answer


@pytest.mark.parametrize(
    ("states", "exit_code", "shown"),
    [
        (("acknowledged", "inProgress", "completed"), 0, "completed"),
        (("inProgress", "failed"), 1, "1/hss.create_subscriber: HTTP 422"),
        (("cancelled",), 1, "cancelled"),
    ],
)
def test_order_wait_until_final(
    fake_api: Callable[..., FakeApi], states: tuple[str, ...], exit_code: int, shown: str
) -> None:
    api = fake_api(states_then(*states))
    result = runner.invoke(
        cli.app, ["order", "wait", "o-1", "--interval", "0.01", "--api-key", "k"]
    )
    assert result.exit_code == exit_code, result.output
    assert shown in output_of(result)
    assert len(api.requests) == len(states)


def test_order_wait_gives_up_at_the_timeout(fake_api: Callable[..., FakeApi]) -> None:
    fake_api(states_then("inProgress"))
    args = ["order", "wait", "o-1", "--timeout", "0.05", "--interval", "0.01", "--api-key", "k"]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 1
    assert "order o-1 is still inProgress after 0.05 s" in output_of(result)


# --- The dev stack: .env ---------------------------------------------------------------------


def test_env_file_keeps_existing_values_and_adds_the_missing() -> None:
    Path(".env").write_text("# mine\nHUB_API_KEY=keep-me\nHUB_CRM_URL=http://crm:1")  # no final \n
    values, added = devstack.ensure_env_file(Path(".env"), environ={})
    assert added == [
        "HUB_PAYLOAD_KEYS",
        "HUB_SEAL_KEYS",
        "HUB_API_CLIENTS",
        "HUB_OIDC_REGISTRATION_TOKEN",
        "HUB_CONSOLE_SESSION_KEY",
        "HUB_CONSOLE_OIDC_CLIENT_SECRET",
        "IDP_CONSOLE_PASSWORD",
    ]
    assert values["HUB_API_KEY"] == "keep-me"
    text = Path(".env").read_text()
    assert text.startswith("# mine\nHUB_API_KEY=keep-me\nHUB_CRM_URL=http://crm:1\n")
    assert devstack.read_env_file(Path(".env")) == values
    assert EncryptionCodec.from_specs([values["HUB_PAYLOAD_KEYS"]]).key_ids == ["k1"]
    assert Unsealer.from_specs([values["HUB_SEAL_KEYS"]]).key_ids == ["s1"]
    [admin] = [ApiClient(**client) for client in json.loads(values["HUB_API_CLIENTS"])]
    assert (admin.name, admin.scopes) == (
        "partner-admin",
        ["partners:read", "partners:credentials"],
    )

    # Running again changes nothing.
    assert devstack.ensure_env_file(Path(".env"), environ={}) == (values, [])
    assert Path(".env").read_text() == text


def test_env_file_is_created_with_the_secrets_private() -> None:
    values, added = devstack.ensure_env_file(Path(".env"), environ={})
    assert sorted(added) == [
        "HUB_API_CLIENTS",
        "HUB_API_KEY",
        "HUB_CONSOLE_OIDC_CLIENT_SECRET",
        "HUB_CONSOLE_SESSION_KEY",
        "HUB_OIDC_REGISTRATION_TOKEN",
        "HUB_PAYLOAD_KEYS",
        "HUB_SEAL_KEYS",
        "IDP_CONSOLE_PASSWORD",
    ]
    assert len(values["HUB_API_KEY"]) >= 40  # 32 random bytes, URL-safe base64
    assert len(values["HUB_OIDC_REGISTRATION_TOKEN"]) >= 40
    # The console's key is one the settings take (a Fernet key).
    Settings(_env_file=None, console_session_key=values["HUB_CONSOLE_SESSION_KEY"])  # type: ignore[call-arg]
    assert Path(".env").stat().st_mode & 0o077 == 0


def test_secrets_from_the_environment_are_not_written() -> None:
    environ = {
        "HUB_API_KEY": "from-env",
        "HUB_PAYLOAD_KEYS": "k9:" + "A" * 44,
        "HUB_SEAL_KEYS": "s9:" + "A" * 44,
        "HUB_API_CLIENTS": "[]",
        "HUB_OIDC_REGISTRATION_TOKEN": "from-env",
        "HUB_CONSOLE_SESSION_KEY": "from-env",
        "HUB_CONSOLE_OIDC_CLIENT_SECRET": "from-env",
        "IDP_CONSOLE_PASSWORD": "from-env",
    }
    values, added = devstack.ensure_env_file(Path(".env"), environ=environ)
    assert (values, added) == ({}, [])
    assert not Path(".env").exists()


def test_children_get_the_stack_addresses_over_env_and_dot_env() -> None:
    config = StackConfig(
        temporal_port=17233, simulator_ports={"credit": 1, "crm": 2, "hss": 3, "billing": 4}
    )
    env = devstack.child_environment(
        config,
        {"HUB_API_KEY": "from-file", "HUB_CRM_URL": "http://elsewhere"},
        {"HUB_API_KEY": "from-env", "PATH": "/bin"},
    )
    assert env["HUB_API_KEY"] == "from-env"
    assert env["PATH"] == "/bin"
    assert env["HUB_TEMPORAL_ADDRESS"] == "127.0.0.1:17233"
    assert env["HUB_CRM_URL"] == "http://127.0.0.1:2"
    assert env["HUB_BILLING_URL"] == "http://127.0.0.1:4/billing"
    assert env["HUB_OIDC_ISSUER"] == "http://127.0.0.1:8110"


def test_only_the_dev_api_lets_the_web_ui_decode_without_a_key() -> None:
    # The dev server's UI sends no credentials to its codec endpoint: make run opts out, for
    # its API only, unless told otherwise; a production configuration would refuse it.
    env = {"HUB_API_KEY": "k"}
    assert devstack.api_environment(env)["HUB_CODEC_ALLOW_ANONYMOUS"] == "true"
    assert "HUB_CODEC_ALLOW_ANONYMOUS" not in env
    chosen = {"HUB_CODEC_ALLOW_ANONYMOUS": "false"}
    assert devstack.api_environment(chosen)["HUB_CODEC_ALLOW_ANONYMOUS"] == "false"
    production = {"HUB_ENVIRONMENT": "production"}
    assert "HUB_CODEC_ALLOW_ANONYMOUS" not in devstack.api_environment(production)


# --- The dev stack: ports --------------------------------------------------------------------


def free_config(**overrides: Any) -> StackConfig:
    ports = {
        "temporal_port": free_port(),
        "temporal_ui_port": free_port(),
        "api_port": free_port(),
        "worker_metrics_port": free_port(),
        "idp_port": free_port(),
        "simulator_ports": {name: free_port() for name in ("credit", "crm", "hss", "billing")},
    }
    return StackConfig(**{**ports, **overrides})


def test_a_taken_port_stops_the_stack_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        config = free_config(api_port=taken, data_dir=Path("stack-data"))

        assert devstack.taken_ports(config) == {"hub API": taken}
        with pytest.raises(devstack.PortsInUseError, match=rf"port {taken} \(hub API\)"):
            devstack.check_ports(config)

        status = devstack.run(config, environ={})

    assert status == 1
    printed = " ".join(capsys.readouterr().out.split())
    assert f"port {taken} (hub API) already in use on 127.0.0.1" in printed
    # Refused before it wrote or started anything.
    assert not Path("stack-data").exists()
    assert not Path(".env").exists()


def test_free_ports_pass_the_check() -> None:
    config = free_config()
    assert devstack.taken_ports(config) == {}
    devstack.check_ports(config)


# --- The dev stack: supervised processes ----------------------------------------------------


def test_a_child_logs_to_its_file_and_its_tail_is_this_run_only(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "boom.log"
    log.parent.mkdir()
    log.write_text("from an earlier run\n")
    child = devstack.Child("boom", [sys.executable, "-c", "print('exploding'); exit(3)"], log)
    child.start({"PYTHONUNBUFFERED": "1"})
    assert child.process is not None
    assert child.process.wait(timeout=30) == 3
    assert not child.running and child.returncode == 3
    assert log.read_text().startswith("from an earlier run\n")  # appended, not replaced
    tail = child.log_tail()
    assert "exploding" in tail and "earlier run" not in tail


@pytest.mark.parametrize(("ignores_sigterm", "returncode"), [(False, -15), (True, -9)])
def test_stopping_a_child_terminates_then_kills(
    tmp_path: Path, ignores_sigterm: bool, returncode: int
) -> None:
    program = (
        "import signal, sys, time\n"
        f"if {ignores_sigterm}: signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('re' + 'ady', flush=True)\n"  # spelled apart: the log's header line shows argv
        "time.sleep(60)\n"
    )
    log = tmp_path / "sleeper.log"
    child = devstack.Child("sleeper", [sys.executable, "-c", program], log)
    child.start({})
    # Stop only once it runs its own code (and so has its SIGTERM handling in place).
    wait_for(lambda: "ready" in child.log_tail())
    assert child.running
    child.stop(timeout=0.5)
    assert child.returncode == returncode


# --- The dev stack: the example it prints ----------------------------------------------------


def json_in(snippet: str) -> dict[str, Any]:
    match = re.search(r"-d '(.*?)'", snippet, re.DOTALL)
    assert match, snippet
    return json.loads(match.group(1))


def characteristics(order: dict[str, Any]) -> dict[str, Any]:
    chars = order["serviceOrderItem"][0]["service"]["serviceCharacteristic"]
    return {c["name"]: c["value"] for c in chars}


def test_the_example_is_valid_json_with_a_fresh_subscriber() -> None:
    snippet = devstack.example_commands(
        "http://127.0.0.1:8000", "the-key", devstack.example_order()
    )
    order = json_in(snippet)
    values = characteristics(order)
    assert re.fullmatch(r"00101\d{10}", values["imsi"])
    assert re.fullmatch(r"\+4366\d{8}", values["msisdn"])
    assert values["plan"] == "STANDARD-5G"
    assert order["externalId"].startswith("demo-")
    assert order["relatedParty"][0]["role"] == "customer"
    assert "X-API-Key: $HUB_API_KEY" in snippet and "HUB_API_KEY='the-key'" in snippet
    assert f'"$HUB_API_URL{ORDERS}/$ORDER_ID"' in snippet  # reads the order back by its id

    # The hub's own TMF641 validation accepts it.
    parsed = ServiceOrderCreate.model_validate(order)
    assert customer_of(parsed).id == order["relatedParty"][0]["id"]
    assert len(order_items(parsed, sealer=None)) == 1

    other = devstack.example_order()
    assert characteristics(other)["imsi"] != values["imsi"]
    assert other["externalId"] != order["externalId"]
    assert other["relatedParty"][0]["id"] != order["relatedParty"][0]["id"]


def test_the_snippet_takes_the_id_from_the_reply() -> None:
    # The python3 one-liner that picks the id out of the reply, run on both kinds of reply.
    snippet = devstack.example_commands("http://x", "k", devstack.example_order())
    match = re.search(r"\| python3 -c '(.*?)'\)", snippet)
    assert match, snippet
    program = match.group(1)
    ok = subprocess.run(
        [sys.executable, "-c", program], input='{"id": "o-1", "state": "acknowledged"}',
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (ok.returncode, ok.stdout) == (0, "o-1\n")
    error = '{"code": "400", "message": "imsi: must be 15 digits"}'
    failed = subprocess.run(
        [sys.executable, "-c", program], input=error, capture_output=True, text=True, check=False
    )
    assert failed.returncode == 1 and "must be 15 digits" in failed.stderr


def test_invalid_settings_are_reported_without_their_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUB_ENVIRONMENT", "production")
    monkeypatch.setenv("HUB_API_KEY", "short-secret-value")
    result = runner.invoke(cli.app, ["order", "list"])
    assert result.exit_code == 1
    assert "at least 24 characters" in output_of(result)
    assert "short-secret-value" not in result.output
