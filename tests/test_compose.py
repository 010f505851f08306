"""The production-like stack, checked by reading it: docker-compose.yml, Dockerfile, .env.example.

There is no Docker engine where the tests run, so these tests hold the files to the rules a
broken stack would break: services that exist, dependencies that wait for health, secrets that
cannot be left empty, one hub image, and settings names the hub actually reads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("postgresql", "temporal", "temporal-ui", "simulators", "hub-worker", "hub-api")
HUB_SERVICES = ("simulators", "hub-worker", "hub-api")
SECRET_NAMES = re.compile(r"PASSWORD|PWD|API_KEY|PAYLOAD_KEYS|SEAL_KEYS|TOKEN|SECRET")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- NAME=value` form
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def test_the_six_services_exist(services: dict[str, Any]) -> None:
    assert set(SERVICES) <= set(services)


def test_every_service_has_an_image_or_a_build(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name


def test_hub_services_share_one_image_and_build(services: dict[str, Any]) -> None:
    hub_services = [name for name, s in services.items() if s.get("build")]
    assert set(HUB_SERVICES) <= set(hub_services)
    builds = {repr(services[name]["build"]) for name in hub_services}
    images = {services[name].get("image") for name in hub_services}
    assert len(builds) == 1, builds
    assert len(images) == 1 and None not in images, images
    build = services[hub_services[0]]["build"]
    assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()


def test_dependencies_wait_for_health(services: dict[str, Any]) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        # The short list form cannot wait for anything: it must not be used.
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends_on.items():
            assert target in services, f"{name} depends on undefined service {target}"
            condition = rule.get("condition")
            if "healthcheck" in services[target]:
                assert condition == "service_healthy", f"{name} -> {target}: {condition}"
            else:
                assert condition == "service_completed_successfully", f"{name} -> {target}"
                assert services[target].get("restart", "no") == "no", target


def test_the_services_that_others_wait_for_have_healthchecks(services: dict[str, Any]) -> None:
    for name in ("postgresql", "temporal", "temporal-ui", "simulators", "hub-worker", "hub-api"):
        test = services[name]["healthcheck"]["test"]
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
    assert "pg_isready" in " ".join(services["postgresql"]["healthcheck"]["test"])
    assert "/health" in " ".join(services["hub-api"]["healthcheck"]["test"])
    # The worker is healthy while it polls its queues (hub.tools.worker_health, which exists).
    worker_check = services["hub-worker"]["healthcheck"]["test"]
    assert worker_check[1:] == ["python", "-m", "hub.tools.worker_health"], worker_check
    assert (ROOT / "hub" / "tools" / "worker_health.py").is_file()
    # The UI image is Alpine: busybox wget, on the port the UI listens on inside.
    ui_check = " ".join(services["temporal-ui"]["healthcheck"]["test"])
    assert "wget" in ui_check and "127.0.0.1:8080" in ui_check


def test_hub_services_are_configured_for_production(services: dict[str, Any]) -> None:
    for name in ("hub-worker", "hub-api"):
        env = environment_of(services[name])
        assert env["HUB_ENVIRONMENT"] == "production"
        assert env["HUB_TEMPORAL_ADDRESS"] == "temporal:7233"
        assert env["HUB_DATABASE_URL"].startswith("postgresql://hub:${POSTGRES_PASSWORD:?")
        assert env["HUB_DATABASE_URL"].endswith("@postgresql:5432/hub")
        assert env["HUB_CREDIT_URL"] == "http://simulators:8101"
        assert env["HUB_BILLING_URL"] == "http://simulators:8104/billing"
        assert services[name]["command"]
    api_command = " ".join(services["hub-api"]["command"])
    assert "--factory api.main:create_app" in api_command
    assert "--host 0.0.0.0" in api_command
    assert " ".join(services["simulators"]["command"]).startswith(
        "python -m simulators --host 0.0.0.0"
    )


def test_the_codec_is_never_open(services: dict[str, Any]) -> None:
    for name in HUB_SERVICES:
        # Not even "false": closed is the default, and the stack never names the opt-out.
        assert "HUB_CODEC_ALLOW_ANONYMOUS" not in environment_of(services[name]), name
    lines = (ROOT / "docker-compose.yml").read_text(encoding="utf-8").splitlines()
    code = [line for line in lines if not line.lstrip().startswith("#")]
    assert not [line for line in code if "HUB_CODEC_ALLOW_ANONYMOUS" in line]
    # Production refuses it anyway; the named clients reach the API only.
    assert "HUB_API_CLIENTS" in environment_of(services["hub-api"])
    assert "HUB_API_CLIENTS" not in environment_of(services["hub-worker"])


def test_hub_environment_names_are_real_settings(services: dict[str, Any]) -> None:
    # A typo (HUB_CRM_ULR) would be ignored silently by the hub: catch it here.
    known = {f"HUB_{name.upper()}" for name in Settings.model_fields}
    for name, service in services.items():
        for variable in environment_of(service):
            if variable.startswith("HUB_"):
                assert variable in known, f"{name}: {variable} is not a hub setting"


def test_secrets_must_be_given(services: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    references = re.findall(r"\$\{([A-Z0-9_]+)(:?[-?+]?)", text)
    secret_references = [(name, op) for name, op in references if SECRET_NAMES.search(name)]
    assert secret_references, "no secret is taken from the environment"
    for name, op in secret_references:
        assert op == ":?", f"${{{name}}} must be written ${{{name}:?message}}"
    for service_name, service in services.items():
        for variable, value in environment_of(service).items():
            if SECRET_NAMES.search(variable):
                assert "${" in value and ":?" in value, f"{service_name}: {variable} is a literal"


def test_only_the_worker_holds_the_private_seal_keys(services: dict[str, Any]) -> None:
    # The API serves /codec to browsers: it seals with the public key and never holds the
    # private ones, so nothing that decodes payloads for the Web UI can open a sealed Ki.
    holders = [name for name, s in services.items() if "HUB_SEAL_KEYS" in environment_of(s)]
    assert holders == ["hub-worker"]
    for name in ("hub-api", "hub-worker"):
        public = environment_of(services[name])["HUB_SEAL_PUBLIC_KEY"]
        assert public.startswith("${HUB_SEAL_PUBLIC_KEY:?"), name


def test_temporal_runs_on_postgresql_and_ui_talks_to_it(services: dict[str, Any]) -> None:
    temporal = services["temporal"]
    assert temporal["image"].startswith("temporalio/auto-setup:")
    env = environment_of(temporal)
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgresql"
    ui = services["temporal-ui"]
    assert ui["image"].startswith("temporalio/ui:")
    assert environment_of(ui)["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert "8233:8080" in ui["ports"]


def test_worker_and_api_start_after_migrations_and_search_attributes(
    services: dict[str, Any],
) -> None:
    # Temporal refuses to start a workflow whose search attributes the namespace lacks, and
    # two processes migrating one database at once collide: one setup service does both.
    setup = [
        name
        for name, service in services.items()
        if "hub db upgrade" in " ".join(service.get("command", []))
        and "hub temporal setup" in " ".join(service.get("command", []))
    ]
    assert len(setup) == 1, setup
    for name in ("hub-worker", "hub-api"):
        assert services[name]["depends_on"][setup[0]]["condition"] == (
            "service_completed_successfully"
        )


def test_dockerfile_runs_as_a_user_on_python_311() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim", text, re.MULTILINE)
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), users
    assert "pip install" in text


def test_env_example_lists_every_setting() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^#? ?(HUB_[A-Z0-9_]+?)(?:__[A-Z0-9_]+)?=", text, re.MULTILINE))
    missing = {f"HUB_{name.upper()}" for name in Settings.model_fields} - listed
    assert not missing, f".env.example lacks {sorted(missing)}"
    # Secrets are placeholders, never real values.
    for name in (
        "HUB_API_KEY",
        "HUB_PAYLOAD_KEYS",
        "HUB_SEAL_KEYS",
        "HUB_SEAL_PUBLIC_KEY",
        "POSTGRES_PASSWORD",
    ):
        assert re.search(rf"^{name}=$", text, re.MULTILINE), name


# --- files: where they live, who may write them ----------------------------------------------


def named_mounts(service: dict[str, Any], compose: dict[str, Any]) -> dict[str, str]:
    """``{target: volume}`` of the service's named volumes (``name:/path``)."""
    mounts = {}
    for entry in service.get("volumes") or []:
        source, _, target = str(entry).partition(":")
        if source in (compose.get("volumes") or {}):
            mounts[target.split(":")[0]] = source
    return mounts


def dockerfile_paths(command: str) -> set[str]:
    """The absolute paths the Dockerfile's ``RUN`` lines give to ``command`` (mkdir -p, chown
    -R hub:hub)."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    paths: set[str] = set()
    for match in re.finditer(rf"{command}\s+((?:[^&\n])*)", text):
        paths |= {word for word in match.group(1).split() if word.startswith("/")}
    return paths


def under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def test_hub_volumes_are_writable_by_the_images_user(
    services: dict[str, Any], compose: dict[str, Any]
) -> None:
    # A new named volume takes the owner of the image's folder it is mounted on; a folder the
    # image lacks makes a root-owned volume that the hub user cannot write.
    created, owned = dockerfile_paths("mkdir -p"), dockerfile_paths("chown -R hub:hub")
    assert created and owned
    for name in HUB_SERVICES:
        for target in named_mounts(services[name], compose):
            assert any(under(path, target) for path in created), f"{name}: {target} not made"
            assert any(under(target, path) for path in owned), f"{name}: {target} is root's"


def test_the_reconciliation_source_is_allowed_and_on_the_volume(
    services: dict[str, Any], compose: dict[str, Any]
) -> None:
    from activities.reconciliation import checked_source

    env = environment_of(services["hub-worker"])
    source = env["HUB_RECONCILIATION_NETWORK_SOURCE"]
    roots = env.get("HUB_RECONCILIATION_SOURCE_ROOTS", "")  # empty: HUB_DATA_DIR only
    # The check the worker makes, with the stack's settings (the folders need not exist here).
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=Path("/app/data"),
        reconciliation_source_roots=roots,  # type: ignore[arg-type]  # as the env gives it
    )
    assert checked_source(source, settings) == f"file://{source}"
    mounts = named_mounts(services["hub-worker"], compose)
    for folder in (source, env["HUB_RECONCILIATION_DIR"]):
        assert any(under(folder, target) for target in mounts), folder
    # The API reads the results the worker writes: the same volume.
    api_mounts = named_mounts(services["hub-api"], compose)
    assert any(under(env["HUB_RECONCILIATION_DIR"], target) for target in api_mounts)


def test_exports_are_written_to_a_volume(services: dict[str, Any], compose: dict[str, Any]) -> None:
    env = environment_of(services["hub-worker"])
    destinations = env["HUB_EXPORT_DESTINATIONS"].split(",")
    mounts = named_mounts(services["hub-worker"], compose)
    for destination in destinations:
        assert any(under(destination, target) for target in mounts), destination
    # The API checks destinations against the same setting.
    assert environment_of(services["hub-api"])["HUB_EXPORT_DESTINATIONS"] == ",".join(destinations)


LOCAL_HOSTS = re.compile(r"localhost|127\.0\.0\.1")


def test_public_addresses_are_settings_not_fixed_to_localhost(services: dict[str, Any]) -> None:
    # What a browser or a client uses (the API's public URL, the codec's CORS origin, the
    # UI's codec endpoint) can be set in .env; localhost is only the default.
    for name, service in services.items():
        for variable, value in environment_of(service).items():
            fixed = re.sub(r"\$\{[A-Z0-9_]+:-[^}]*\}", "", value)
            assert not LOCAL_HOSTS.search(fixed), f"{name}: {variable}={value}"
    hub_env = environment_of(services["hub-api"])
    ui_env = environment_of(services["temporal-ui"])
    assert hub_env["HUB_PUBLIC_URL"].startswith("${HUB_PUBLIC_URL:-")
    assert ui_env["TEMPORAL_CODEC_ENDPOINT"].startswith("${HUB_PUBLIC_URL:-")
    # The UI's origin is one setting: the codec admits what the UI is reached at.
    ui_origin = "${TEMPORAL_UI_PUBLIC_URL:-http://localhost:8233}"
    assert hub_env["HUB_CODEC_CORS_ORIGINS"] == ui_origin
    assert ui_env["TEMPORAL_CORS_ORIGINS"] == ui_origin


def test_prometheus_and_grafana_watch_the_hub(services: dict[str, Any]) -> None:
    prometheus, grafana = services["prometheus"], services["grafana"]
    for volume in prometheus["volumes"][:2] + grafana["volumes"]:
        source = volume.split(":", 1)[0]
        assert (ROOT / source).exists(), f"{source} is mounted but not in the repository"
    assert "hub_metrics_key" in prometheus["secrets"]
    assert "GRAFANA_ADMIN_PASSWORD:?" in grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    config = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]
    }
    assert targets == {"hub-api": "hub-api:8000", "hub-worker": "hub-worker:9464"}
    worker_env = environment_of(services["hub-worker"])
    assert worker_env["HUB_WORKER_METRICS_ADDRESS"].endswith(":9464")
