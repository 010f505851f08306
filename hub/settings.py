"""All of the hub's configuration, from the environment (prefix ``HUB_``) or a ``.env`` file.

Nested values use ``__``: ``HUB_RETRY__BILLING__MAXIMUM_ATTEMPTS=20``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hub.partners.callbacks import CallbackPolicy
from hub.paths import LocationRefused, parse_location
from hub.permissions import ALL_SCOPES, WILDCARD, plain_key_name
from hub.sealing import Sealer, Unsealer, public_spec

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTRACTS_DIR = REPO_ROOT / "contracts"


def _seconds(value: object) -> object:
    """Durations from the environment may be plain seconds ("20", "0.5") or ISO 8601 ("PT20S")."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


#: A duration that also accepts a number of seconds.
Duration = Annotated[timedelta, BeforeValidator(_seconds)]

#: The outside systems the hub talks to; each has its own URL, credentials and retry policy.
SYSTEMS = (
    "credit",
    "crm",
    "hss",
    "billing",
    "regulator",
    "vies",
    "registry",
    "identity",
    "partner",
)
#: Reconciliation's data activities: their own task queue, thread pool and retry policy.
RECONCILIATION = "reconciliation"
#: Not an outside system of the processes but the NMS behind them: the ``alarms.*`` activities
#: have their own task queue and retry policy (``HUB_RETRY__ALARMS__...``) all the same.
ALARMS = "alarms"


class RetrySettings(BaseModel):
    """How Temporal retries one outside system's calls, and how long one attempt may take."""

    initial_interval: Duration = timedelta(seconds=1)
    backoff_coefficient: float = Field(default=2.0, ge=1.0)
    maximum_interval: Duration = timedelta(seconds=30)
    #: 0 means no limit (then ``schedule_to_close`` bounds the retries).
    maximum_attempts: int = Field(default=8, ge=0)
    #: One attempt's budget (Temporal's start-to-close timeout).
    attempt_timeout: Duration = timedelta(seconds=30)
    #: The whole budget over all attempts; None leaves it to ``maximum_attempts``.
    schedule_to_close: Duration | None = None


#: A client's name, a group's name: what audit records and task inboxes show.
_NAME = r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}"
#: Words that mark a key copied from an example rather than generated.
_PLACEHOLDER_WORDS = ("change", "example", "placeholder", "replace", "secret", "dummy", "default")
MIN_KEY_LENGTH = 24


def weak_key(key: str) -> str | None:
    """Why ``key`` is not fit for production, or None. Never says what the key is."""
    if len(key) < MIN_KEY_LENGTH:
        return f"must have at least {MIN_KEY_LENGTH} characters"
    if any(word in key.lower() for word in _PLACEHOLDER_WORDS) or len(set(key)) < 8:
        return "looks like a placeholder, not a generated key"
    return None


_LOOPBACK_HOSTS = frozenset({"localhost", "::1"})


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and the loopback addresses (127.0.0.0/8, ``::1``)."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_url(url: str) -> str | None:
    """Why ``url`` may not carry tokens and client secrets, or None: it must be https, or http
    to a loopback host (the development identity provider), with no credentials in it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL with a host"
    if parts.username or parts.password or parts.query or parts.fragment:
        return "must not carry credentials, a query or a fragment"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return "must be https (http is allowed on a loopback host only)"
    return None


class ApiClient(BaseModel):
    """One caller of the API (``HUB_API_CLIENTS``): its key, what it may do, its groups."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: str = Field(pattern=f"^{_NAME}$", description="shown as api-key:<name> in audit records")
    key: SecretStr = Field(min_length=1)
    scopes: list[str] = Field(default_factory=list)
    #: Candidate groups of human tasks it belongs to (``ops``, ``wholesale``); ``*``: all.
    groups: list[str] = Field(default_factory=list)

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: list[str]) -> list[str]:
        unknown = sorted(set(scopes) - ALL_SCOPES - {WILDCARD})
        if unknown:
            raise ValueError(
                f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(sorted(ALL_SCOPES))}"
                f" or {WILDCARD}"
            )
        return scopes

    @field_validator("groups")
    @classmethod
    def _group_names(cls, groups: list[str]) -> list[str]:
        for group in groups:
            if group != WILDCARD and not re.fullmatch(_NAME, group):
                raise ValueError(f"group {group!r}: letters, digits, '.', '_', '@', '-'")
        return groups


def _default_retry() -> dict[str, RetrySettings]:
    policies = {name: RetrySettings() for name in SYSTEMS}
    # The legacy billing system is slow and flaky: give it more room.
    policies["billing"] = RetrySettings(maximum_attempts=12, attempt_timeout=timedelta(seconds=60))
    # A partner's callback in the connectivity test: a few quick tries, then the step parks
    # for the partner to fix its endpoint (an operator retries it).
    policies["partner"] = RetrySettings(maximum_attempts=3, maximum_interval=timedelta(seconds=5))
    # The hub's own database: quick and local.
    policies["hub"] = RetrySettings(
        initial_interval=timedelta(milliseconds=200),
        maximum_attempts=0,
        attempt_timeout=timedelta(seconds=10),
    )
    # Alarms to the NMS: a few tries within a minute, then the process goes on without them
    # (an alarm must never hold up the order it reports on).
    policies[ALARMS] = RetrySettings(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=3,
        attempt_timeout=timedelta(seconds=30),
        schedule_to_close=timedelta(seconds=60),
    )
    # Reconciliation's data work (split, reconcile): long, local; a failure is mostly a bad
    # file, which another attempt cannot fix, or a crashed worker, which the heartbeat spots.
    policies[RECONCILIATION] = RetrySettings(
        initial_interval=timedelta(seconds=1),
        maximum_attempts=3,
        attempt_timeout=timedelta(hours=2),
    )
    return policies


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUB_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        # Errors must not print what was given: keys and passwords among it.
        hide_input_in_errors=True,
    )

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    #: SQLAlchemy URL; empty means the SQLite file ``<data_dir>/hub.db``.
    database_url: str = ""

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "hub"

    #: API keys accepted in ``X-API-Key`` or ``Authorization: Bearer``; comma-separated. Each
    #: may do everything but decode payloads (``hub.permissions.PLAIN_KEY_SCOPES``).
    api_key: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Named callers with their own scopes and groups, as JSON:
    #: ``[{"name": "noc", "key": "...", "scopes": ["orders:read"], "groups": ["ops"]}]``.
    api_clients: list[ApiClient] = Field(default_factory=list)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    #: Public base URL used in ``href`` fields; empty means derived from the request.
    public_url: str = ""

    #: The console (``/console``): the key that encrypts and signs its session cookies, a
    #: Fernet key (``python -c "from cryptography.fernet import Fernet;
    #: print(Fernet.generate_key().decode())"``). Empty outside production: a random key per
    #: API process, so a restart signs everyone out. Secret.
    console_session_key: SecretStr = SecretStr("")
    #: How long a console sign-in lasts; afterwards the person signs in again.
    console_session_ttl: Duration = timedelta(hours=8)
    #: Sign-in to the console with OpenID Connect (authorization code and PKCE) at
    #: ``HUB_OIDC_ISSUER``: the console's client there. Empty: API keys only.
    console_oidc_client_id: str = ""
    console_oidc_client_secret: SecretStr = SecretStr("")
    #: Where the console links to: the Temporal Web UI and the hub's Grafana dashboard.
    temporal_ui_url: str = "http://127.0.0.1:8233"
    grafana_url: str = "http://127.0.0.1:3000/d/telecom-hub"

    #: Payload encryption keys, ``key-id:base64-32-bytes``, comma-separated; the first encrypts.
    payload_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Browser origins allowed to call ``/codec`` (the Temporal Web UI); comma-separated.
    codec_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8233", "http://localhost:8233"]
    )
    #: Development only: let callers without a key use ``/codec`` (the dev server's Web UI
    #: cannot send one). Refused in production.
    codec_allow_anonymous: bool = False
    #: Request bodies larger than this are refused (413), ``/codec`` having its own bound:
    #: a payload may be 2 MB (Temporal's blob limit), 2.7 MB in base64.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    codec_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    #: Payloads one ``/codec`` request may carry.
    codec_max_payloads: int = Field(default=1000, ge=1)

    #: Worker only: the private keys that unseal subscriber secrets (Ki, OPc) in the HSS
    #: activity, ``key-id:base64-32-bytes``, comma-separated; every one unseals (see
    #: :mod:`hub.sealing`). Never given to the API, which serves ``/codec``: production refuses.
    seal_keys: SecretStr = SecretStr("")
    #: API: the public key the API seals Ki and OPc to at the door, ``key-id:base64-32-bytes``
    #: (``python -m hub.sealing`` makes a pair). Outside production, empty means the public half
    #: of the first ``seal_keys``; both empty: secrets travel unsealed (development only).
    seal_public_key: str = ""

    #: OAuth2 on the API: the OpenID provider whose bearer JWTs the API accepts beside API
    #: keys (``iss`` must equal it; discovery at ``<issuer>/.well-known/openid-configuration``).
    #: Empty: OAuth2 is off, only API keys are accepted. ``http`` only on a loopback host.
    oidc_issuer: str = ""
    #: The ``aud`` the API's tokens must carry; also the resource indicator (RFC 8707, so an
    #: absolute URI) clients ask tokens for.
    oidc_audience: str = "urn:telecom-hub:api"
    #: The token endpoint partners are given; empty: the discovery document's.
    oidc_token_endpoint: str = ""
    #: The initial access token that lets the hub register clients at the provider (RFC 7591).
    #: Secret; empty: the hub cannot register partners' clients.
    oidc_registration_token: SecretStr = SecretStr("")
    #: Clock skew tolerated on ``exp`` / ``nbf`` / ``iat``.
    oidc_leeway: Duration = timedelta(seconds=30)
    #: How long the provider's signing keys (JWKS) are kept before they are fetched again.
    oidc_jwks_cache: Duration = timedelta(minutes=10)
    #: A token whose ``kid`` is unknown makes the API fetch the keys again (rotation), at most
    #: once per this interval: a stream of made-up ``kid``s cannot hammer the provider.
    oidc_jwks_refetch_interval: Duration = timedelta(seconds=30)

    credit_url: str = "http://127.0.0.1:8101"
    crm_url: str = "http://127.0.0.1:8102"
    hss_url: str = "http://127.0.0.1:8103"
    billing_url: str = "http://127.0.0.1:8104/billing"
    billing_wsdl: Path = CONTRACTS_DIR / "billing.wsdl"
    #: Bearer tokens of the REST systems (empty: none sent).
    credit_token: str = ""
    crm_token: str = ""
    hss_token: str = ""
    #: HTTP basic credentials of the SOAP billing system (empty: none sent).
    billing_username: str = ""
    billing_password: str = ""
    #: The regulator's reporting portal (SOAP, contract in ``contracts/regulator.wsdl``).
    regulator_url: str = "http://127.0.0.1:8105/regulator"
    regulator_wsdl: Path = CONTRACTS_DIR / "regulator.wsdl"
    regulator_username: str = ""
    regulator_password: str = ""
    #: The VAT number check (SOAP, modelled on EU VIES ``checkVat``; ``contracts/vies.wsdl``).
    vies_url: str = "http://127.0.0.1:8106/vies"
    vies_wsdl: Path = CONTRACTS_DIR / "vies.wsdl"
    #: The company registry (REST): registration number to name, legal form, status.
    registry_url: str = "http://127.0.0.1:8107"
    registry_token: str = ""
    #: Seconds to connect and to read one reply, for every outside call.
    http_timeout: float = 10.0

    #: Partner onboarding: the sanctions list, a file in the EU Financial Sanctions Files XML
    #: format; empty: the small sample list that ships for tests and the demo.
    partners_sanctions_list: Path | None = None
    #: A name this similar (0-100, normalised names) to a listed one is a hit to review.
    partners_sanctions_threshold: float = Field(default=88.0, ge=0, le=100)
    #: A company credit score below this is a finding, and makes the application high risk.
    partners_min_credit_score: int = Field(default=500, ge=0)
    #: Registry and VAT names less similar than this (0-100, normalised) are a finding.
    partners_name_match_threshold: float = Field(default=85.0, ge=0, le=100)
    #: Who approves applications, and the SLA of the approval task.
    partners_approver_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["wholesale"]
    )
    partners_approval_follow_up: Duration = timedelta(days=1)
    partners_approval_escalation: Duration = timedelta(days=3)
    partners_approval_escalation_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["wholesale-managers"]
    )
    #: An application nobody decided by then is rejected (never approved by default).
    partners_approval_due: Duration = timedelta(days=10)
    #: Who reviews a sanctions hit (before the approval).
    partners_compliance_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["compliance"]
    )
    #: The scopes a partner may ask for.
    partners_allowed_scopes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["orders:read", "orders:write"]
    )
    #: Callbacks: plain http (always allowed in development; elsewhere only with this, and
    #: refused in production), and addresses on loopback or private networks (``make run``
    #: allows loopback).
    partners_callback_allow_http: bool = False
    partners_callback_allow_loopback: bool = False
    partners_callback_allow_private: bool = False
    #: The connectivity test: how long the partner has to answer the signed test notification.
    partners_connectivity_timeout: Duration = timedelta(seconds=10)
    #: The currency of wholesale billing accounts.
    partners_currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")

    #: Events (``/hub`` subscriptions, brokers): the waits between a delivery's attempts, the
    #: first attempt being immediate (Standard Webhooks' schedule, stretched to ~3 days); a
    #: delivery that fails them all is a dead letter. Comma-separated durations (seconds or ISO).
    events_retry_schedule: Annotated[list[Duration], NoDecode] = Field(
        default_factory=lambda: [
            timedelta(seconds=s) for s in (5, 300, 1800, 7200, 18000, *([36000] * 6))
        ]
    )
    #: How long a subscriber has to answer one delivery.
    events_delivery_timeout: Duration = timedelta(seconds=10)
    #: The relay's activity attempts' timeout; an attempt a killed worker held is retried
    #: after it (a delivery call stops taking new work at half of it).
    events_attempt_timeout: Duration = timedelta(seconds=120)
    #: A ``Retry-After`` longer than this is cut to it.
    events_max_retry_after: Duration = timedelta(hours=12)
    #: The relay looks at the outbox at least this often, poked or not (a lost poke, a
    #: process killed right after its commit).
    events_sweep_interval: Duration = timedelta(seconds=30)
    #: Delivered events and their delivery log are kept this long, then deleted by the relay
    #: (about hourly); a pending or dead delivery keeps its event until it ends.
    events_retention: Duration = timedelta(days=7)
    #: How often the relay deletes them (at its sweeps).
    events_prune_interval: Duration = timedelta(hours=1)
    #: Outbox rows the relay fans out at a time, and deliveries in flight per subscription.
    events_batch_size: int = Field(default=200, ge=1, le=2000)
    events_concurrency: int = Field(default=8, ge=1, le=100)
    #: Broker sinks every event is published to as well (``kafka``, ``mqtt``); empty: none.
    events_brokers: Annotated[list[Literal["kafka", "mqtt"]], NoDecode] = Field(
        default_factory=list
    )
    #: The base URL of ``href`` in events (the worker has no request to take it from); empty:
    #: ``public_url``, else ``http://<api_host>:<api_port>``.
    events_public_url: str = ""

    #: Regulatory reporting: the operator the reports are for, by the regulator's id.
    reporting_operator_id: str = "AT-OPERATOR-1"
    #: Quarters are calendar quarters in this time zone (a call at 23:30 UTC on 31 December
    #: belongs to the next year's Q1 in Vienna).
    reporting_time_zone: str = "Europe/Vienna"
    #: Billing plans whose SIM cards count as M2M.
    reporting_m2m_plans: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["IOT-M2M"])
    #: The currency of the reported revenue.
    reporting_currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    #: Where archived reports are kept: ``<dir>/<report id>/v<version>.xml``; empty:
    #: ``<data_dir>/reports``.
    reporting_dir: Path | None = None
    #: The group that approves reports (four-eyes: never the preparer).
    reporting_approver_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["regulatory"]
    )
    #: Who corrects a version the regulator refused (the task is assigned to its preparer;
    #: these groups may take it over, and take a scheduled report's).
    reporting_preparer_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["regulatory"]
    )
    #: The approval task's follow-up, escalation and due times, after it opens.
    reporting_approval_follow_up: Duration = timedelta(days=2)
    reporting_approval_escalation: Duration = timedelta(days=5)
    reporting_approval_escalation_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["regulatory-managers"]
    )
    reporting_approval_due: Duration = timedelta(days=10)
    #: How often the regulator's verdict is asked for, and how long it is waited for.
    reporting_verdict_poll: Duration = timedelta(minutes=10)
    reporting_verdict_timeout: Duration = timedelta(days=7)
    #: A report is due this long after its quarter ends; ``warning`` this long before.
    reporting_due_after: Duration = timedelta(days=60)
    reporting_due_warning: Duration = timedelta(days=7)

    retry: dict[str, RetrySettings] = Field(default_factory=_default_retry)
    #: Activities per second a system may receive, across all workers (Temporal enforces it
    #: on the system's task queue): protects a fragile legacy system. Absent: no limit.
    rate_limit: dict[str, float] = Field(default_factory=dict)
    #: The first attempt of an outside system's call runs on the main task queue, where the
    #: worker that completes the workflow task starts it at once (Temporal's eager activity
    #: start) instead of the server handing it to a poller of the system's queue; a retry,
    #: a held call (circuit breaker open) and every call to a system with a ``rate_limit``
    #: go through the system's queue. See workflows/runtime/steps.py.
    eager_first_attempt: bool = True

    #: The NMSs that receive the hub's alarms (SNMP notifications), comma-separated specs:
    #: ``v2c:<community>@<host>[:<port>]`` or ``v3:<user>:<authkey>:<privkey>[:<engineid>]@<host>``
    #: (see docs/alarms.md). Secret, as it holds communities and USM keys. Empty: no alarms
    #: are sent (the activity succeeds doing nothing).
    snmp_targets: SecretStr = SecretStr("")
    #: ``trap`` (fire and forget) or ``inform`` (the NMS acknowledges; unanswered ones fail).
    snmp_notify_type: Literal["trap", "inform"] = "trap"
    #: The hub's snmpEngineID (hex) for v3 traps; empty: the built-in default of docs/alarms.md.
    snmp_engine_id: str = ""
    #: Seconds an inform waits for its acknowledgement, and how often it is sent again.
    snmp_timeout: float = Field(default=2.0, gt=0)
    snmp_retries: int = Field(default=2, ge=0)

    #: Brokers (README "Brokers"): events out and orders in. Kafka's bootstrap servers,
    #: ``host:port[,host:port]``; empty: no Kafka.
    kafka_bootstrap: str = Field(default="", pattern=r"^[^@/\s]*$")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_username: str = ""
    kafka_password: SecretStr = SecretStr("")
    #: Events of a domain go to ``<prefix><domain>.events`` (``hub.serviceOrdering.events``),
    #: keyed by the resource id: one order's events stay in one partition, in order.
    kafka_topic_prefix: str = Field(default="hub.", pattern=r"^[A-Za-z0-9._-]*$")
    #: How long a publish may wait for the broker's acknowledgement before it fails (retried).
    kafka_delivery_timeout: Duration = timedelta(seconds=30)
    #: Orders in: TMF641 ServiceOrder create bodies, validated like ``POST /serviceOrder``.
    kafka_intake_topic: str = Field(
        default="hub.serviceOrdering.orders", pattern=r"^[A-Za-z0-9._-]{1,249}$"
    )
    #: Where a refused order goes: the TMF error body, keyed like the order.
    kafka_rejects_topic: str = Field(
        default="hub.serviceOrdering.orders.rejects", pattern=r"^[A-Za-z0-9._-]{1,249}$"
    )
    kafka_intake_group: str = "hub-intake"
    #: The intake consumer's group session timeout (a dead consumer's partitions move on after it).
    kafka_session_timeout: Duration = timedelta(seconds=45)
    #: MQTT broker: ``mqtt://host[:1883]`` or ``mqtts://host[:8883]``, without credentials
    #: (``HUB_MQTT_USERNAME``, ``HUB_MQTT_PASSWORD``); empty: no MQTT.
    mqtt_url: str = ""
    mqtt_username: str = ""
    mqtt_password: SecretStr = SecretStr("")
    #: Events of a resource go to ``<prefix>/<resource>/<id>/events``
    #: (``hub/serviceOrder/<order id>/events``), QoS 1.
    mqtt_topic_prefix: str = Field(default="hub", pattern=r"^[^+#\x00]*[^+#\x00/]$")
    mqtt_intake_topic: str = Field(default="hub/serviceOrdering/orders", pattern=r"^[^+#\x00]+$")
    mqtt_rejects_topic: str = Field(
        default="hub/serviceOrdering/orders/rejects", pattern=r"^[^+#\x00]+$"
    )
    #: The intake's MQTT client id: its session persists, so orders sent while the intake is
    #: down wait at the broker, and one not acknowledged is delivered again.
    mqtt_client_id: str = Field(default="hub-intake", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    #: Who orders arriving on a broker are placed by: ``broker:<caller>`` in the logs, with the
    #: ``orders:write`` scope; with a partner id, they are that partner's orders (as its token's).
    intake_caller: str = Field(default="order-intake", pattern=f"^{_NAME}$")
    intake_partner_id: str = ""

    #: How long an order's workflow waits for the API to commit the order's row before it gives
    #: up having done nothing (the API died between starting it and committing).
    order_row_grace: Duration = timedelta(minutes=2)

    #: How long a parked step waits for an operator's decision before the process aborts.
    park_timeout: Duration = timedelta(days=7)
    #: The groups whose members repair parked steps: their tasks' candidate groups.
    task_operator_groups: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["ops"])

    #: Exports: where they may write, as URI prefixes or absolute paths, comma-separated
    #: (``s3://warehouse/hub,/srv/exports``). Empty: the ``exports`` folder of ``data_dir`` only.
    export_destinations: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Rows read from the database per batch (a server-side cursor) and written per step.
    export_batch_size: int = Field(default=10_000, ge=1)
    #: Rows per Parquet row group.
    export_row_group_rows: int = Field(default=128 * 1024, ge=1)
    #: A part file is closed, and the next one opened, after this many rows.
    export_max_rows_per_file: int = Field(default=5_000_000, ge=1)
    #: Rows stamped within this much of now wait for the next run: a transaction that stamped
    #: a row a moment ago may not have committed it yet, and the watermark must not pass it.
    export_settle_lag: Duration = timedelta(seconds=30)
    #: One write attempt's budget, how often it must heartbeat, and how many attempts it gets.
    export_write_timeout: Duration = timedelta(hours=2)
    export_heartbeat_timeout: Duration = timedelta(minutes=1)
    export_write_attempts: int = Field(default=3, ge=1)

    #: Billing reconciliation: where runs keep their workspace and results, unless
    #: ``reconciliation_workspace`` puts them on S3. Empty: ``<data_dir>/reconciliation``.
    reconciliation_dir: Path | None = None
    #: Where runs keep their workspace when workers do not share a disk: ``s3://bucket/prefix``
    #: on S3-compatible object storage (see ``hub.reconciliation.workspace``); every worker and
    #: the API need the same. Empty: the local folder ``reconciliation_dir``.
    reconciliation_workspace: str = ""
    #: The workspace's S3 endpoint, ``http(s)://host[:port]`` (MinIO, Ceph, moto...); empty:
    #: AWS's endpoint for the region.
    reconciliation_s3_endpoint: str = ""
    reconciliation_s3_region: str = "us-east-1"
    #: The workspace's S3 keys (secret); both empty: the AWS default chain (``AWS_*``
    #: variables, a profile, an instance role).
    reconciliation_s3_access_key_id: SecretStr = SecretStr("")
    reconciliation_s3_secret_access_key: SecretStr = SecretStr("")
    #: Where mediation drops CDR files: a folder or a ``pyarrow.fs`` URI (``s3://...``).
    #: Empty: ``<data_dir>/drop/network``.
    reconciliation_network_source: str = ""
    #: Where billing's rated usage comes from: ``billing-system`` (its usage export, fetched
    #: over HTTP) or a folder / URI holding the rated files and ``subscriptions.parquet``.
    reconciliation_billing_source: str = "billing-system"
    #: Where reconciliation may read usage files: absolute paths or URI prefixes, comma-separated.
    #: Empty: ``data_dir`` only. Storage credentials come from the worker's environment.
    reconciliation_source_roots: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Leakage, as % of billed revenue, above which a run opens a CRM case and raises an alarm.
    reconciliation_leakage_threshold_pct: float = Field(default=0.5, ge=0)
    #: Input bytes per partition when a run does not say how many partitions to cut.
    reconciliation_partition_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    reconciliation_max_partitions: int = Field(default=256, ge=1)
    #: Input bytes one split activity reads: consecutive small files are read by one.
    reconciliation_task_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    #: Worker: threads for the data activities (split, reconcile); default: every core.
    reconciliation_threads: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    #: Data activities one run keeps in flight (the workers' threads bound the real work).
    reconciliation_parallelism: int = Field(default=64, ge=1)
    #: A data activity that sends no heartbeat for this long is presumed lost and retried.
    reconciliation_heartbeat_timeout: Duration = timedelta(minutes=2)
    #: Billing's HTTP address for its usage export; empty: the origin of ``billing_url``.
    billing_export_url: str = ""
    #: Bearer token of billing's usage export (empty: none sent).
    billing_export_token: str = ""

    #: Worker: activities and workflow tasks one worker process runs at once.
    worker_max_concurrent_activities: int = Field(default=200, ge=1)
    worker_max_concurrent_workflow_tasks: int = Field(default=100, ge=1)
    #: Worker: what the workflow sandbox does with the processes' own modules (``workflows``).
    #: ``shared``: imported once per worker and shared by every run (a run's sandbox costs a
    #: fraction of a millisecond instead of re-executing the module); ``strict``: imported
    #: anew for every run, so the sandbox also catches a non-deterministic call of theirs
    #: (``datetime.now``, ``random``) when it runs; ``off``: no sandbox at all (nothing is
    #: checked at run time, not even ``open``; for measuring what the sandbox costs). The test
    #: suite runs ``strict``, and ``make lint`` bans those calls in ``workflows/`` (ruff
    #: TID251); see worker.py.
    workflow_sandbox: Literal["shared", "strict", "off"] = "shared"
    #: Worker: on SIGTERM, how long in-flight activities may take to finish.
    worker_shutdown_grace: Duration = timedelta(seconds=30)
    #: Circuit breakers of the outside systems (activities.breaker): a system whose calls
    #: failed for this share of at least ``breaker_min_calls`` calls within ``breaker_window``
    #: has its calls held; one is let through every ``breaker_probe_interval``.
    breaker_enabled: bool = True
    breaker_error_ratio: float = Field(default=0.5, gt=0, le=1)
    breaker_min_calls: int = Field(default=20, ge=1)
    breaker_window: Duration = timedelta(seconds=30)
    breaker_probe_interval: Duration = timedelta(seconds=10)
    #: Half-open: the calls per second let through, and how long for a success to come back
    #: (Temporal's queue rate limiter hands out the first task within ~1.5 s at 10/s, ~5 s
    #: at 1/s: the window must be longer than that).
    breaker_probe_rate: float = Field(default=5.0, gt=0)
    breaker_probe_window: Duration = timedelta(seconds=15)
    #: Logs of the worker and the API: ``json`` (one object per line, with the workflow, run,
    #: activity and business ids) or ``text``; and the level.
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: Worker: ``host:port`` where its Prometheus exporter serves ``/metrics`` (the Temporal
    #: SDK's metrics and the hub's step metrics); empty: none. Unauthenticated, like most
    #: exporters: bind it to loopback or a network only Prometheus reaches.
    worker_metrics_address: str = Field(
        default="", pattern=r"^$|^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$"
    )
    #: ``/health``: a task queue whose last poll is older than this has no live worker. An
    #: idle worker polls again when Temporal ends its long poll, after a minute: keep it above.
    health_poller_max_age: Duration = timedelta(seconds=90)

    @field_validator(
        "api_key",
        "payload_keys",
        "codec_cors_origins",
        "export_destinations",
        "reconciliation_source_roots",
        "task_operator_groups",
        "reporting_m2m_plans",
        "reporting_approver_groups",
        "reporting_preparer_groups",
        "reporting_approval_escalation_groups",
        "partners_approver_groups",
        "partners_approval_escalation_groups",
        "partners_compliance_groups",
        "partners_allowed_scopes",
        "events_retry_schedule",
        "events_brokers",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("retry", mode="after")
    @classmethod
    def _complete_retry(cls, value: dict[str, RetrySettings]) -> dict[str, RetrySettings]:
        # A partial override (one system) keeps the defaults of the others.
        return {**_default_retry(), **value}

    @model_validator(mode="after")
    def _one_caller_per_key(self) -> Settings:
        # Messages name keys by position or client, never by their value.
        names = [plain_key_name(key) for key in self.api_key]
        names += [client.name for client in self.api_clients]
        twice = sorted({name for name in names if names.count(name) > 1})
        keys = [*self.api_key, *(c.key.get_secret_value() for c in self.api_clients)]
        if len(set(keys)) != len(keys):
            raise ValueError("HUB_API_KEY / HUB_API_CLIENTS: the same key is given twice")
        if twice:
            raise ValueError(f"HUB_API_CLIENTS: client names must differ: {', '.join(twice)}")
        return self

    @model_validator(mode="after")
    def _check_console(self) -> Settings:
        key = self.console_session_key.get_secret_value()
        if key:
            try:
                Fernet(key.encode())
            except ValueError as exc:
                raise ValueError(
                    "HUB_CONSOLE_SESSION_KEY must be a Fernet key (32 url-safe base64 bytes)"
                ) from exc
        if self.console_oidc_client_id and not (
            self.oidc_issuer and self.console_oidc_client_secret.get_secret_value()
        ):
            raise ValueError(
                "HUB_CONSOLE_OIDC_CLIENT_ID needs HUB_OIDC_ISSUER and "
                "HUB_CONSOLE_OIDC_CLIENT_SECRET (the console's client at the provider)"
            )
        return self

    @model_validator(mode="after")
    def _check_oidc(self) -> Settings:
        if not self.oidc_issuer:
            return self
        if problem := insecure_url(self.oidc_issuer):
            raise ValueError(f"HUB_OIDC_ISSUER {problem}")
        if self.oidc_token_endpoint and (problem := insecure_url(self.oidc_token_endpoint)):
            raise ValueError(f"HUB_OIDC_TOKEN_ENDPOINT {problem}")
        if not self.oidc_audience:
            raise ValueError("HUB_OIDC_AUDIENCE must be set when HUB_OIDC_ISSUER is")
        # A bearer credential with two dots is judged as a JWT (api.oauth.looks_like_jwt).
        keys = [*self.api_key, *(c.key.get_secret_value() for c in self.api_clients)]
        if any(key.count(".") == 2 for key in keys):
            raise ValueError(
                "HUB_API_KEY / HUB_API_CLIENTS: with HUB_OIDC_ISSUER set, an API key must not "
                "contain exactly two dots (it would be taken for a JWT)"
            )
        return self

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, url: str) -> str:
        if not url:
            return url
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must be mqtt://host[:port] or mqtts://host[:port]")
        if parts.username or parts.password:
            # Never in a URL, which is logged: in HUB_MQTT_USERNAME / HUB_MQTT_PASSWORD.
            raise ValueError("must not carry credentials: set HUB_MQTT_USERNAME, HUB_MQTT_PASSWORD")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must not have a path, a query or a fragment")
        parts.port  # noqa: B018  (a bad port raises ValueError here)
        return url

    @field_validator("reconciliation_workspace")
    @classmethod
    def _s3_workspace(cls, value: str) -> str:
        if not value:
            return value
        try:
            location = parse_location(value)
        except LocationRefused as exc:
            raise ValueError(f"HUB_RECONCILIATION_WORKSPACE {exc}") from None
        if location.scheme != "s3" or not location.segments or location.options:
            raise ValueError(
                "HUB_RECONCILIATION_WORKSPACE must be s3://bucket/prefix, without a query (the "
                "endpoint and region are HUB_RECONCILIATION_S3_*); empty for the local folder "
                "HUB_RECONCILIATION_DIR"
            )
        return location.uri

    @field_validator("reconciliation_s3_endpoint")
    @classmethod
    def _s3_endpoint(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or "@" in parts.netloc
            or parts.path.strip("/")
            or parts.query
        ):
            raise ValueError(
                "HUB_RECONCILIATION_S3_ENDPOINT must be http(s)://host[:port], without a path "
                "or credentials"
            )
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment != "production":
            return self
        if not self.api_key and not self.api_clients:
            raise ValueError("HUB_API_KEY or HUB_API_CLIENTS must be set in production")
        for position, key in enumerate(self.api_key, start=1):
            if problem := weak_key(key):
                raise ValueError(f"HUB_API_KEY: key #{position} {problem}")
        for client in self.api_clients:
            if problem := weak_key(client.key.get_secret_value()):
                raise ValueError(f"HUB_API_CLIENTS: the key of {client.name!r} {problem}")
        if self.codec_allow_anonymous:
            raise ValueError("HUB_CODEC_ALLOW_ANONYMOUS must not be true in production")
        if self.partners_callback_allow_http:
            raise ValueError(
                "HUB_PARTNERS_CALLBACK_ALLOW_HTTP must not be true in production: partner "
                "callbacks carry signed notifications and must use https"
            )
        registration_token = self.oidc_registration_token.get_secret_value()
        if registration_token and (problem := weak_key(registration_token)):
            raise ValueError(f"HUB_OIDC_REGISTRATION_TOKEN {problem}")
        if self.oidc_issuer and urlsplit(self.oidc_issuer).scheme != "https":
            raise ValueError("HUB_OIDC_ISSUER must be an https URL in production")
        if not self.console_session_key.get_secret_value():
            raise ValueError(
                "HUB_CONSOLE_SESSION_KEY must be set in production: without it every API "
                "process signs console sessions with a key of its own"
            )
        if not self.payload_keys:
            raise ValueError("HUB_PAYLOAD_KEYS must be set in production")
        if not self.seal_public_key:
            raise ValueError(
                "HUB_SEAL_PUBLIC_KEY must be set in production: the API seals Ki and OPc "
                "with it (python -m hub.sealing makes a key pair)"
            )
        return self

    @model_validator(mode="after")
    def _check_seal_keys(self) -> Settings:
        # Malformed keys stop every process at start, not the first order at the HSS step.
        unsealer = self.unsealer()
        sealer = self.sealer()
        if (
            unsealer
            and sealer
            and sealer.key_id in unsealer.key_ids
            and unsealer.public_spec(sealer.key_id) != sealer.public_spec
        ):
            raise ValueError(
                f"HUB_SEAL_PUBLIC_KEY: key id {sealer.key_id!r} is not the public half of "
                f"the HUB_SEAL_KEYS key with that id"
            )
        return self

    @property
    def seal_key_specs(self) -> list[str]:
        text = self.seal_keys.get_secret_value()
        return [part.strip() for part in text.split(",") if part.strip()]

    @property
    def resolved_seal_public_key(self) -> str:
        """The public key the API seals to: set, or (outside production) derived."""
        if self.seal_public_key or self.environment == "production":
            return self.seal_public_key
        specs = self.seal_key_specs
        return public_spec(specs[0]) if specs else ""

    def sealer(self) -> Sealer | None:
        """What the API seals with; None: no key, secrets travel as they are (development)."""
        spec = self.resolved_seal_public_key
        return Sealer.from_spec(spec) if spec else None

    def unsealer(self) -> Unsealer | None:
        """What the worker's HSS activity unseals with; None: no seal keys here."""
        specs = self.seal_key_specs
        return Unsealer.from_specs(specs) if specs else None

    @property
    def resolved_reconciliation_dir(self) -> Path:
        return self.reconciliation_dir or self.data_dir / "reconciliation"

    @property
    def resolved_network_source(self) -> str:
        source = self.reconciliation_network_source or str(self.data_dir / "drop" / "network")
        return source if "://" in source else str(Path(source).resolve())

    @property
    def resolved_source_roots(self) -> list[str]:
        return self.reconciliation_source_roots or [str(self.data_dir.resolve())]

    @property
    def resolved_billing_export_url(self) -> str:
        if self.billing_export_url:
            return self.billing_export_url
        parsed = urlsplit(self.billing_url)
        return f"{parsed.scheme}://{parsed.netloc}"

    @property
    def callback_policy(self) -> CallbackPolicy:
        """Where partners' callbacks may point: plain http in development (or when allowed
        outside production), loopback and private addresses when allowed."""
        return CallbackPolicy(
            allow_http=self.partners_callback_allow_http or self.environment == "development",
            allow_loopback=self.partners_callback_allow_loopback,
            allow_private=self.partners_callback_allow_private,
        )

    @property
    def resolved_events_public_url(self) -> str:
        return (
            self.events_public_url or self.public_url or f"http://{self.api_host}:{self.api_port}"
        ).rstrip("/")

    @property
    def resolved_sanctions_list(self) -> Path:
        from hub.partners.sanctions import SAMPLE_LIST

        return self.partners_sanctions_list or SAMPLE_LIST

    @property
    def resolved_reporting_dir(self) -> Path:
        return self.reporting_dir or self.data_dir / "reports"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'hub.db'}"

    def retry_for(self, system: str) -> RetrySettings:
        return self.retry.get(system, RetrySettings())


@lru_cache
def get_settings() -> Settings:
    return Settings()
