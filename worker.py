"""The hub's worker: runs every workflow and activity on one task queue.

``python worker.py`` (or ``hub worker``) connects to Temporal from settings, migrates the hub
database, and serves until SIGINT/SIGTERM, letting in-flight activities finish first.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.alarms import AlarmActivities
from activities.billing import BillingActivities
from activities.breaker import BreakerActivities, BreakerInterceptor
from activities.broker_events import BrokerEvents
from activities.credit import CreditActivities
from activities.crm import CrmActivities
from activities.dead_letters import DeadLetterStore
from activities.definitions import system_of, task_queue_for
from activities.events import EventActivities
from activities.exports import ExportActivities
from activities.hss import HssActivities
from activities.inventory import InventoryActivities, InventoryAuditStore
from activities.metrics import StepMetrics
from activities.orders import OrderStoreActivities
from activities.partner_store import PartnerStore
from activities.partners import (
    IdentityProvider,
    NoIdentityProvider,
    PartnerCheckActivities,
    PartnerProvisioningActivities,
)
from activities.policies import PolicyActivities, eager_systems
from activities.reconciliation import ReconciliationActivities, ReconciliationStore
from activities.reporting import RegulatorActivities, ReportingActivities, ReportStore
from activities.tasks import TaskStore
from adapters.billing import BillingClient
from adapters.billing_export import BillingExportClient
from adapters.callbacks import CallbackClient
from adapters.credit import CreditAgencyClient
from adapters.crm import CrmClient
from adapters.event_callbacks import EventCallbackClient
from adapters.events import publishers
from adapters.files import Files
from adapters.hss import HssClient
from adapters.identity import IdentityProviderClient
from adapters.registry import CompanyRegistryClient
from adapters.regulator import RegulatorClient
from adapters.snmp import DEFAULT_ENGINE_ID, SnmpNotifier, parse_targets
from adapters.vies import ViesClient
from hub import logs
from hub.db import create_engine, migrate, session_factory
from hub.events import relay
from hub.reconciliation.workspace import store_of
from hub.settings import RECONCILIATION, Settings, get_settings
from hub.temporal import connect, metrics_runtime
from workflows import (
    breaker,
    exports,
    inventory_audit,
    partner_onboarding,
    reconciliation,
    regulatory_report,
    service_activation,
)
from workflows.breaker import CircuitBreaker
from workflows.events import EventRelay, EventSinkRelay, EventSubscriptionRelay
from workflows.exports import ExportWorkflow
from workflows.inventory_audit import InventoryAudit
from workflows.partner_onboarding import PartnerOnboarding
from workflows.reconciliation import BillingReconciliation
from workflows.regulatory_report import RegulatoryReport
from workflows.service_activation import ServiceActivation

logger = logging.getLogger("hub.worker")

WORKFLOWS: list[type] = [
    ServiceActivation,
    ExportWorkflow,
    BillingReconciliation,
    InventoryAudit,
    RegulatoryReport,
    PartnerOnboarding,
    CircuitBreaker,
    EventRelay,
    EventSubscriptionRelay,
    EventSinkRelay,
]

#: Workflow id prefix -> the business id's field in the JSON logs (``orderId``).
LOG_REFERENCES = {
    module.CONTRACT.workflow_id_prefix: module.CONTRACT.log_field
    for module in (
        service_activation,
        exports,
        reconciliation,
        inventory_audit,
        regulatory_report,
        partner_onboarding,
        breaker,
    )
}


#: Activities by the system they belong to; each system has its own task queue
#: (:func:`activities.definitions.task_queue_for`) so it can be rate-limited on its own.
Activities = dict[str, list[Callable[..., Awaitable[Any]]]]


def identity_provider(settings: Settings) -> IdentityProvider:
    """The identity provider partners' OAuth2 clients are registered at (RFC 7591):
    ``HUB_OIDC_ISSUER``'s. Without one, registering a partner's client fails and the
    provisioning compensates."""
    if not settings.oidc_issuer:
        logger.warning("HUB_OIDC_ISSUER is not set: partner provisioning cannot register clients")
        return NoIdentityProvider()
    return IdentityProviderClient(settings)


async def build_activities(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    stack: AsyncExitStack,
    *,
    identity: IdentityProvider | None = None,
) -> Activities:
    """Every activity, bound to adapters built from settings; the stack closes the adapters.
    ``identity``: the identity provider (default: :func:`identity_provider`)."""
    timeout = settings.http_timeout
    credit = CreditAgencyClient(settings.credit_url, token=settings.credit_token, timeout=timeout)
    crm = CrmClient(settings.crm_url, token=settings.crm_token, timeout=timeout)
    hss = HssClient(settings.hss_url, token=settings.hss_token, timeout=timeout)
    billing = BillingClient(
        settings.billing_wsdl,
        settings.billing_url,
        username=settings.billing_username,
        password=settings.billing_password,
        timeout=timeout,
    )
    export = BillingExportClient(
        settings.resolved_billing_export_url, token=settings.billing_export_token, timeout=timeout
    )
    regulator = RegulatorClient(
        settings.regulator_wsdl,
        settings.regulator_url,
        username=settings.regulator_username,
        password=settings.regulator_password,
        timeout=timeout,
    )
    vies = ViesClient(settings.vies_wsdl, settings.vies_url, timeout=timeout)
    registry = CompanyRegistryClient(
        settings.registry_url, token=settings.registry_token, timeout=timeout
    )
    callbacks = CallbackClient(settings.callback_policy)
    subscribers = EventCallbackClient(settings.callback_policy)
    for client in (
        credit,
        crm,
        hss,
        billing,
        export,
        regulator,
        vies,
        registry,
        callbacks,
        subscribers,
    ):
        stack.push_async_callback(client.aclose)
    provider = identity if identity is not None else identity_provider(settings)
    if hasattr(provider, "aclose"):
        stack.push_async_callback(provider.aclose)
    sealer, unsealer = settings.sealer(), settings.unsealer()
    partner_checks = PartnerCheckActivities(
        vies=vies, registry=registry, credit=credit, sanctions_list=settings.resolved_sanctions_list
    )
    partner_provisioning = PartnerProvisioningActivities(
        billing=billing,
        crm=crm,
        identity=provider,
        callbacks=callbacks,
        sealer=sealer,
        unsealer=unsealer,
    )
    partners = PartnerStore(sessions, settings, sealer=sealer, unsealer=unsealer)
    notifier = build_notifier(settings)
    stack.push_async_callback(notifier.aclose)
    credit_acts, crm_acts = CreditActivities(credit), CrmActivities(crm)
    # The worker alone holds the private seal keys: the HSS activity unseals Ki and OPc.
    hss_acts = HssActivities(hss, settings.unsealer())
    billing_acts = BillingActivities(billing)
    # Writers of state changes report them in the outbox, and wake the relay after commit.
    events_url, relay_input = settings.resolved_events_public_url, relay.relay_of(settings)
    store = OrderStoreActivities(
        sessions, row_grace=settings.order_row_grace, public_url=events_url, relay=relay_input
    )
    dead_letters = DeadLetterStore(sessions, public_url=events_url, relay=relay_input)
    events = EventActivities(sessions, settings, subscribers, unsealer)
    # Every run's files: a local folder, or object storage shared by the workers of all hosts.
    workspace = store_of(settings)
    recon = ReconciliationActivities(settings, export, workspace)
    recon_store = ReconciliationStore(sessions)
    exports = ExportActivities(sessions, Files(locate=workspace.locate), settings)
    tasks = TaskStore(sessions)
    inventory = InventoryActivities(settings, sessions, hss=hss, billing=billing, crm=crm)
    reporting, reports = ReportingActivities(settings, workspace), ReportStore(sessions, settings)
    regulator_acts = RegulatorActivities(regulator, settings)
    return by_system(
        [
            *broker_activities(settings, stack),
            PolicyActivities(settings).process_policies,
            store.record_order_state,
            dead_letters.park,
            dead_letters.update,
            tasks.record,
            recon.defaults,
            recon_store.record,
            exports.options,
            exports.begin,
            exports.finish,
            exports.fail,
            credit_acts.check_credit,
            credit_acts.release_credit,
            recon.list_sources,
            recon.split,
            recon.reconcile_partition,
            recon.finalize,
            recon.discard,
            crm_acts.upsert_customer,
            crm_acts.delete_customer,
            crm_acts.set_service_status,
            crm_acts.change_service_plan,
            crm_acts.delete_service,
            crm_acts.open_case,
            hss_acts.create_subscriber,
            hss_acts.read_qos,
            hss_acts.update_qos,
            hss_acts.delete_subscriber,
            billing_acts.price_plans,
            billing_acts.open_account,
            billing_acts.close_account,
            billing_acts.create_subscription,
            billing_acts.void_subscription,
            billing_acts.change_plan,
            billing_acts.terminate_subscription,
            billing_acts.reactivate_subscription,
            billing_acts.get_tariffs,
            recon.fetch_usage_export,
            AlarmActivities(notifier).raise_alarm,
            exports.write,
            inventory.read_hss,
            inventory.read_billing,
            inventory.read_crm,
            inventory.read_hub,
            inventory.compare,
            inventory.discard,
            inventory.remove_unknown,
            InventoryAuditStore(sessions).record,
            reporting.defaults,
            reporting.extract,
            reporting.render,
            reporting.plausibility,
            reports.record,
            reports.previous_accepted,
            reports.open_scheduled,
            reports.open_correction,
            reports.archive,
            regulator_acts.submit_report,
            regulator_acts.get_submission,
            partners.defaults,
            partners.record,
            partners.register_callback,
            partners.remove_callback,
            partners.hand_out_credentials,
            partners.open_orders,
            partner_checks.check_vat,
            partner_checks.lookup_company,
            partner_checks.company_score,
            partner_checks.screen_sanctions,
            partner_provisioning.open_wholesale_account,
            partner_provisioning.upsert_organization,
            partner_provisioning.delete_organization,
            partner_provisioning.register_client,
            partner_provisioning.delete_client,
            partner_provisioning.connectivity_test,
            events.dispatch,
            events.deliver,
            events.replay,
            events.sink_batch,
            events.sink_done,
            events.prune,
        ]
    )


def broker_activities(
    settings: Settings, stack: AsyncExitStack
) -> list[Callable[..., Awaitable[Any]]]:
    """``events.publish_to_broker`` when a broker is configured (``HUB_KAFKA_BOOTSTRAP``,
    ``HUB_MQTT_URL``): the outbox relay's way onto Kafka and MQTT, on the events' task queue
    (``<queue>.events``, where the relay's sink workflows call it by name). Without a broker
    it is not registered: Temporal fails a call to it as not registered, and retries it like
    any failure."""
    found = publishers(settings)
    if not found:
        return []
    for publisher in found.values():
        stack.push_async_callback(publisher.aclose)
    logger.info("events go to %s", ", ".join(sorted(found)))
    events = BrokerEvents(
        found, kafka_prefix=settings.kafka_topic_prefix, mqtt_prefix=settings.mqtt_topic_prefix
    )
    return [events.publish_to_broker]


def by_system(functions: list[Callable[..., Awaitable[Any]]]) -> Activities:
    """Activities grouped by the system each belongs to (its definition says which): the
    hub's own, each outside system's, reconciliation's data work (CPU-bound, on a thread pool
    of its own, see :func:`create_workers`), alarms (an NMS that does not answer holds up no
    order step) and exports' bulk writes (never delaying an order's steps)."""
    grouped: Activities = {}
    for function in functions:
        grouped.setdefault(system_of(function), []).append(function)
    return grouped


def build_notifier(settings: Settings) -> SnmpNotifier:
    """The SNMP notifier of the alarms activities; no targets configured sends nothing.

    A malformed ``HUB_SNMP_TARGETS`` stops the worker here, at start, with the target's
    position and what is wrong (never the spec, which holds the secrets).
    """
    targets = parse_targets(settings.snmp_targets.get_secret_value())
    logger.info(
        "alarms go to %s",
        ", ".join(target.label for target in targets) or "no NMS (HUB_SNMP_TARGETS is empty)",
    )
    return SnmpNotifier(
        targets,
        notify_type=settings.snmp_notify_type,
        engine_id=settings.snmp_engine_id or DEFAULT_ENGINE_ID,
        timeout=settings.snmp_timeout,
        retries=settings.snmp_retries,
    )


#: Modules the workflow sandbox takes from the worker as they are, instead of importing them
#: anew for every workflow run (``HUB_WORKFLOW_SANDBOX=strict``). The runtime is the processes'
#: shared library: deterministic, with no module state, covered by the replay tests;
#: re-importing it per run (a few dozen dataclasses, each built by exec) cost the worker ~6 ms
#: of CPU per order (bench/README.md). The processes' own modules stay sandboxed, so the
#: sandbox refuses their non-deterministic calls when they run.
SANDBOX_PASSTHROUGH = ("workflows.runtime",)
#: ``HUB_WORKFLOW_SANDBOX=shared`` (the default): every process module passes through too,
#: and the packages they take types from (the sandbox resolves a payload's dataclass by its
#: module in the sandbox's own ``sys.modules``, which a shared process module does not fill).
#: Re-executing ``workflows.service_activation`` for each run was a quarter of the worker's
#: CPU per order (bench/README.md). The price: a passed-through module sees the real
#: ``datetime`` and ``random``, so the sandbox no longer catches ``datetime.now()`` in it at
#: run time (``open`` and other builtins it still refuses). What catches it instead: the
#: suite runs every workflow ``strict`` (tests/conftest.py, the workflow harness, the replay
#: tests), and ruff's banned-API rule (TID251, pyproject.toml) refuses those calls in
#: ``workflows/`` before a commit.
SHARED_SANDBOX_PASSTHROUGH = ("workflows", "activities", "adapters", "hub")


def workflow_runner(mode: str = "strict") -> WorkflowRunner:
    """The workflow sandbox of ``HUB_WORKFLOW_SANDBOX`` (``shared``, ``strict`` or ``off``)."""
    if mode == "off":
        return UnsandboxedWorkflowRunner()
    modules = SHARED_SANDBOX_PASSTHROUGH if mode == "shared" else SANDBOX_PASSTHROUGH
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*modules)
    )


def create_workers(
    client: Client, activities: Activities, settings: Settings, *, task_queue: str
) -> list[Worker]:
    """One worker per task queue, all in this process: the workflows and the hub's own
    activities on ``task_queue``, each outside system's activities on its own queue (and on
    ``task_queue`` too, for their eager first attempts: ``HUB_EAGER_FIRST_ATTEMPT``); the
    circuit breakers watch every outside call and hold a system's queue while it is down."""
    workers = []
    breakers = BreakerActivities(client, settings, task_queue)
    activities = {
        **activities,
        "hub": [*activities.get("hub", []), breakers.set_queue_rate, breakers.breaker_settings],
    }
    # The main queue also runs the first attempts of the eager systems' calls.
    eager = [fn for system in eager_systems(settings) for fn in activities.get(system, [])]
    activities = {**activities, "hub": [*activities["hub"], *eager]}
    watch = BreakerInterceptor(client, settings, task_queue)
    runner = workflow_runner(settings.workflow_sandbox)
    for system, functions in activities.items():
        concurrency = settings.worker_max_concurrent_activities
        executor = None
        if system == RECONCILIATION:
            # Synchronous, CPU-bound activities: one thread per core they may use.
            concurrency = settings.reconciliation_threads
            executor = ThreadPoolExecutor(concurrency, thread_name_prefix="reconciliation")
        worker = Worker(
            client,
            task_queue=task_queue_for(task_queue, system),
            workflows=WORKFLOWS if system == "hub" else [],
            workflow_runner=runner,
            activities=functions,
            activity_executor=executor,
            max_concurrent_activities=concurrency,
            max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
            max_task_queue_activities_per_second=settings.rate_limit.get(system),
            graceful_shutdown_timeout=settings.worker_shutdown_grace,
            interceptors=[StepMetrics(), watch],
        )
        if executor is not None:
            # The worker does not own its executor: let the threads go when it does.
            weakref.finalize(worker, executor.shutdown, wait=False)
        workers.append(worker)
    return workers


async def run(settings: Settings) -> None:
    if settings.environment == "production" and not settings.seal_key_specs:
        raise RuntimeError(
            "HUB_SEAL_KEYS must be set for the worker in production: its HSS activity unseals "
            "Ki and OPc with them"
        )
    migrate(settings.resolved_database_url)
    engine = create_engine(settings.resolved_database_url)
    runtime = None
    if settings.worker_metrics_address:
        runtime = metrics_runtime(settings.worker_metrics_address)
        logger.info("metrics at http://%s/metrics", settings.worker_metrics_address)
    client = await connect(settings, runtime)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        activities = await build_activities(settings, session_factory(engine), stack)
        # Entered last, so they stop first: in-flight activities finish before adapters close.
        for worker in create_workers(client, activities, settings, task_queue=settings.task_queue):
            await stack.enter_async_context(worker)
        # The relay runs for good; started here so events left by a crash go out now.
        await relay.poke(client, relay.relay_of(settings))
        logger.info(
            "worker serving task queue %s (and one per outside system) on %s",
            settings.task_queue,
            settings.temporal_address,
        )
        await stop.wait()
        logger.info("shutting down: letting in-flight activities finish")


def main() -> None:
    settings = get_settings()
    logs.configure(settings.log_format, settings.log_level, LOG_REFERENCES)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
