"""The ``hub`` command: run the hub's parts, and work with service orders from a shell.

::

    hub dev                       everything on this machine (what ``make run`` runs)
    hub api / hub worker          one part, configured from the HUB_* settings
    hub db upgrade                migrate the hub database to the newest schema
    hub temporal setup            register the hub's search attributes in its namespace
    hub order create FILE         POST a TMF641 ServiceOrder (JSON) to the API
    hub order get|list|cancel|wait
    hub usage generate DIR        write a period of CDRs and rated usage with known discrepancies
    hub recon start|get|wait|list billing reconciliation, with a progress bar
    hub tasks list|show|claim|...  the task inbox (hub/tools/tasks_cli.py)
    hub deadletters list|show|retry|skip|abort   parked steps (hub/tools/deadletters_cli.py)
    hub exports list|create|trigger|pause|unpause|runs   scheduled exports (exports_cli.py)
    hub reports start|get|list|wait  regulatory reports (approve with hub tasks complete)

The ``order``, ``recon``, ``tasks``, ``deadletters`` and ``exports`` commands talk to the API
at ``--api-url`` (or ``HUB_API_URL``) with the key ``--api-key`` (or ``HUB_API_KEY`` from the
environment or ``.env``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.engine import make_url

from hub.settings import Settings

DEFAULT_API_URL = "http://127.0.0.1:8000"
TMF641 = "/tmf-api/serviceOrdering/v4"
#: The states an order does not leave (see ``hub.models.OrderState.is_final``).
FINAL_STATES = frozenset({"completed", "failed", "cancelled"})

app = typer.Typer(
    help="Telecom integration hub: run it, and work with its processes.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="The hub database.", no_args_is_help=True)
temporal_app = typer.Typer(help="The Temporal namespace the hub runs in.", no_args_is_help=True)
order_app = typer.Typer(
    help="TMF641 service orders, through the hub API.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(temporal_app, name="temporal")
usage_app = typer.Typer(help="Usage data for billing reconciliation.", no_args_is_help=True)
recon_app = typer.Typer(help="Billing reconciliation, through the hub API.", no_args_is_help=True)
intake_app = typer.Typer(help="Orders from Kafka and MQTT (README: Brokers).", no_args_is_help=True)
app.add_typer(intake_app, name="intake")
app.add_typer(order_app, name="order")
app.add_typer(usage_app, name="usage")
app.add_typer(recon_app, name="recon")

console = Console()
err_console = Console(stderr=True)


class Broker(StrEnum):
    kafka = "kafka"
    mqtt = "mqtt"


def _fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(1)


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        # Without the input: it would print the keys and passwords that were given.
        problems = [
            f"{'.'.join(map(str, error['loc'])) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        ]
        _fail(f"the HUB_* settings are invalid: {'; '.join(problems)}")


# --- Running the hub -------------------------------------------------------------------------


@app.command()
def dev() -> None:
    """Start Temporal, the simulators, the worker and the API here; Ctrl-C stops them."""
    from hub.tools import devstack

    raise typer.Exit(devstack.main([]))


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Default: HUB_API_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default: HUB_API_PORT.")] = None,
) -> None:
    """Serve the HTTP API (uvicorn)."""
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
    )


@app.command()
def worker() -> None:
    """Run the worker: every workflow and activity on the task queue (HUB_TASK_QUEUE)."""
    import worker as worker_module

    worker_module.main()


@intake_app.command("run")
def intake_run() -> None:
    """Take TMF641 orders from Kafka and MQTT (HUB_KAFKA_BOOTSTRAP, HUB_MQTT_URL) and place
    them as POST /serviceOrder does; refused ones go to the rejects topics."""
    from hub.tools import intake as intake_module

    settings = _settings()
    if not settings.kafka_bootstrap and not settings.mqtt_url:
        _fail("no broker is configured: set HUB_KAFKA_BOOTSTRAP or HUB_MQTT_URL")
    intake_module.main(settings)


@intake_app.command("send")
def intake_send(
    broker: Annotated[Broker, typer.Argument(help="Where to send it.")],
    file: Annotated[
        Path | None,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="A TMF641 ServiceOrder as JSON."
        ),
    ] = None,
    example: Annotated[
        bool, typer.Option("--example", help="Send an example order (a new subscriber).")
    ] = False,
) -> None:
    """Send an order to the intake topic (HUB_KAFKA_INTAKE_TOPIC, HUB_MQTT_INTAKE_TOPIC), as
    an order system would; `hub intake run` places it. Prints its externalId."""
    from hub.tools import intake as intake_module

    if (file is None) == (not example):
        _fail("give a FILE or --example (one of them)")
    if file is not None:
        try:
            body = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            _fail(f"{file} is not a readable JSON file: {exc}")
    else:
        from hub.tools.devstack import example_order

        body = example_order()
    settings = _settings()
    try:
        topic = intake_module.send(settings, broker.value, body)
    except intake_module.SendFailed as exc:
        _fail(str(exc))
    console.print(
        f"sent to {broker.value} topic {escape(topic)}: externalId {body.get('externalId')}"
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the hub database (HUB_DATABASE_URL) to the newest schema."""
    from hub.db import migrate

    url = _settings().resolved_database_url
    migrate(url)
    shown = make_url(url).render_as_string(hide_password=True)
    console.print(f"the database {escape(shown)} is at the newest schema")


@temporal_app.command("setup")
def temporal_setup() -> None:
    """Register the hub's search attributes in the namespace (those it lacks; idempotent)."""
    import asyncio

    from hub.temporal import connect
    from hub.tools.devstack import ensure_search_attributes

    settings = _settings()

    async def setup() -> list[str]:
        client = await connect(settings)
        return await ensure_search_attributes(client, settings.temporal_namespace)

    try:
        added = asyncio.run(setup())
    except Exception as exc:
        _fail(f"Temporal at {settings.temporal_address}: {type(exc).__name__}: {exc}")
    where = f"namespace {settings.temporal_namespace} on {settings.temporal_address}"
    if added:
        console.print(f"registered search attributes {', '.join(added)} in {where}")
    else:
        console.print(f"{where} already has every hub search attribute")


# --- Talking to the API ----------------------------------------------------------------------

ApiUrl = Annotated[
    str,
    typer.Option("--api-url", envvar="HUB_API_URL", help="Base URL of the hub API."),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key. Default: the first of HUB_API_KEY (environment or .env).",
        show_default=False,
    ),
]


def api_client(
    api_url: str, api_key: str | None, *, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """An HTTP client for the hub API; tests pass a transport."""
    headers = {"X-API-Key": api_key} if api_key else {}
    return httpx.Client(
        base_url=api_url.rstrip("/"), headers=headers, timeout=15.0, transport=transport
    )


def _resolve_key(api_key: str | None) -> str | None:
    if api_key:
        return api_key
    keys = _settings().api_key
    return keys[0] if keys else None


@contextmanager
def _api(api_url: str, api_key: str | None) -> Iterator[httpx.Client]:
    """A client whose connection failures end the command with a readable message."""
    try:
        with api_client(api_url, _resolve_key(api_key)) as client:
            yield client
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        _fail(
            f"the API is not reachable at {api_url} ({exc or type(exc).__name__}). Start it "
            "with `make run` (or `hub api`), or point --api-url / HUB_API_URL at it."
        )
    except httpx.HTTPError as exc:
        _fail(f"the request to {api_url} failed: {type(exc).__name__}: {exc}")


def describe_api_error(response: httpx.Response) -> str:
    """One line from an error reply, from its TMF body ``{code, reason, message, status}``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        status = body.get("status") or response.status_code
        reason = body.get("reason") or response.reason_phrase
        return f"the API answered {status} {reason}: {body['message']}"
    text = response.text.strip()[:300]
    return f"the API answered {response.status_code} {response.reason_phrase}" + (
        f": {text}" if text else ""
    )


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    response = client.request(method, path, **kwargs)
    if response.is_error:
        message = describe_api_error(response)
        if response.status_code == 401 and "X-API-Key" not in client.headers:
            message += " (no API key given: pass --api-key or set HUB_API_KEY)"
        _fail(message)
    return response


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        _fail(f"the API answered {response.status_code} with a body that is not JSON")


def _print_order(order: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for label, key in [
        ("id", "id"),
        ("externalId", "externalId"),
        ("state", "state"),
        ("orderDate", "orderDate"),
        ("completionDate", "completionDate"),
    ]:
        if order.get(key) is not None:
            table.add_row(label, escape(str(order[key])))
    for item in order.get("serviceOrderItem") or []:
        spec = (item.get("service") or {}).get("serviceSpecification") or {}
        table.add_row(
            f"item {escape(str(item.get('id')))}",
            escape(f"{item.get('action')} {spec.get('name', '')}: {item.get('state')}"),
        )
    for error in order.get("errorMessage") or []:
        table.add_row("[red]error[/]", escape(str(error.get("message"))))
    console.print(table)


# --- Service orders --------------------------------------------------------------------------


@order_app.command("create")
def order_create(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="A TMF641 ServiceOrder as JSON."
        ),
    ],
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the id.")] = False,
) -> None:
    """Create a service order; it starts the order's workflow."""
    try:
        body = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        _fail(f"{file} is not a readable JSON file: {exc}")
    with _api(api_url, api_key) as client:
        response = _call(client, "POST", f"{TMF641}/serviceOrder", json=body)
    order = _json(response)
    if quiet:
        console.print(order.get("id"), markup=False, highlight=False)
        return
    verb = "created" if response.status_code == 201 else "already known (same externalId):"
    console.print(
        f"[green]{verb}[/] service order [bold]{escape(str(order.get('id')))}[/], "
        f"state {escape(str(order.get('state')))}"
    )
    console.print(f"follow it with: hub order wait {escape(str(order.get('id')))}")


@order_app.command("get")
def order_get(
    order_id: Annotated[str, typer.Argument(metavar="ID", help="The service order id.")],
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole order as JSON.")] = False,
) -> None:
    """Show one service order."""
    with _api(api_url, api_key) as client:
        order = _json(_call(client, "GET", f"{TMF641}/serviceOrder/{order_id}"))
    if as_json:
        console.print_json(data=order)
    else:
        _print_order(order)


@order_app.command("list")
def order_list(
    state: Annotated[
        str | None, typer.Option(help="Only orders in this state (e.g. inProgress).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 20,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """List service orders, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["state"] = state
    with _api(api_url, api_key) as client:
        response = _call(client, "GET", f"{TMF641}/serviceOrder", params=params)
    orders = _json(response)
    ids = [str(order.get("id") or "") for order in orders]
    table = Table(title=f"service orders{f' ({state})' if state else ''}", title_justify="left")
    # Ids are never cut or wrapped, so they can be copied whole; the rest folds if it must.
    table.add_column("id", no_wrap=True, min_width=max(map(len, ids), default=2))
    table.add_column("externalId", overflow="fold")
    table.add_column("state", no_wrap=True)
    table.add_column("orderDate", overflow="fold")
    for order_id, order in zip(ids, orders, strict=True):
        ordered = str(order.get("orderDate") or "").split(".")[0].replace("T", " ")
        table.add_row(
            escape(order_id),
            escape(str(order.get("externalId") or "")),
            escape(str(order.get("state") or "")),
            escape(ordered),
        )
    console.print(table)
    total = response.headers.get("X-Total-Count", str(len(orders)))
    console.print(f"{len(orders)} of {total} orders")


@order_app.command("cancel")
def order_cancel(
    order_id: Annotated[str, typer.Argument(metavar="ID", help="The service order id.")],
    reason: Annotated[str | None, typer.Option(help="Why it is cancelled.")] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Cancel an open service order (its done steps are compensated)."""
    body: dict[str, Any] = {"serviceOrder": {"id": order_id}}
    if reason:
        body["cancellationReason"] = reason
    with _api(api_url, api_key) as client:
        cancel = _json(_call(client, "POST", f"{TMF641}/cancelServiceOrder", json=body))
    console.print(
        f"cancellation [bold]{escape(str(cancel.get('id')))}[/] of order "
        f"{escape(order_id)}: {escape(str(cancel.get('state')))}"
    )
    console.print(f"follow it with: hub order wait {escape(order_id)}")


@order_app.command("wait")
def order_wait(
    order_id: Annotated[str, typer.Argument(metavar="ID", help="The service order id.")],
    timeout: Annotated[float, typer.Option(min=0, help="Give up after this many seconds.")] = 60,
    interval: Annotated[float, typer.Option(min=0.01, hidden=True)] = 1.0,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Wait until the order is completed, failed or cancelled; exit 0 only if completed."""
    started = time.monotonic()
    deadline = started + timeout
    with _api(api_url, api_key) as client, console.status(f"order {escape(order_id)}…") as status:
        while True:
            order = _json(_call(client, "GET", f"{TMF641}/serviceOrder/{order_id}"))
            state = str(order.get("state"))
            if state in FINAL_STATES:
                break
            if time.monotonic() >= deadline:
                status.stop()
                _fail(f"order {order_id} is still {state} after {timeout:g} s")
            status.update(
                f"order {escape(order_id)}: {escape(state)} ({time.monotonic() - started:.0f} s)"
            )
            time.sleep(interval)
    elapsed = time.monotonic() - started
    colour = "green" if state == "completed" else "red"
    console.print(
        f"order [bold]{escape(order_id)}[/] [{colour}]{escape(state)}[/] after {elapsed:.1f} s"
    )
    for error in order.get("errorMessage") or []:
        console.print(f"  {escape(str(error.get('message')))}")
    if state != "completed":
        raise typer.Exit(1)


# --- Usage data and reconciliation -----------------------------------------------------------

RECONCILIATIONS = "/reconciliations"


def _utc(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{value!r} is not an ISO 8601 date or time (2026-11-01, 2026-11-01T06:00Z)")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@usage_app.command("generate")
def usage_generate(
    out: Annotated[Path, typer.Argument(help="Folder to write network/, billing/ and the truth")],
    records: Annotated[int, typer.Option(min=1, help="Usage events of the period")] = 100_000,
    start: Annotated[str, typer.Option(help="Period start (UTC)")] = "",
    end: Annotated[str, typer.Option(help="Period end (UTC); default: a day after start")] = "",
    network_format: Annotated[str, typer.Option(help="parquet, csv or csv.gz")] = "parquet",
    billing_format: Annotated[str, typer.Option(help="parquet or csv")] = "parquet",
    rates: Annotated[
        str,
        typer.Option(help="Injected discrepancies, e.g. missing_in_billing=0.01,unbilled=0.002"),
    ] = "",
    seed: Annotated[int, typer.Option(help="Same seed, same data")] = 1,
    records_per_file: Annotated[int, typer.Option(min=1)] = 1_000_000,
    voice_share: Annotated[
        float | None,
        typer.Option(min=0, max=1, help="Share of voice calls (default: the generator's, 0.2)"),
    ] = None,
    sms_share: Annotated[
        float,
        typer.Option(
            min=0,
            max=1,
            help="Share of SMS (default none: the files stay what they were before SMS). "
            "Reconciliation prices them per message; regulatory reports count them",
        ),
    ] = 0.0,
) -> None:
    """Write a period of mediation CDRs and billing's rated usage, with known discrepancies."""
    from simulators.usage import DEFAULT_RATES, UsageSpec, generate, parse_rates

    period_start = (
        _utc(start)
        if start
        else datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        - timedelta(days=1)
    )
    period_end = _utc(end) if end else period_start + timedelta(days=1)
    if network_format not in ("parquet", "csv", "csv.gz") or billing_format not in (
        "parquet",
        "csv",
    ):
        _fail("--network-format is parquet, csv or csv.gz; --billing-format parquet or csv")
    # The generator's own default share of voice unless one is given.
    shares: dict[str, Any] = {"sms_share": sms_share}
    if voice_share is not None:
        shares["voice_share"] = voice_share
    try:
        spec = UsageSpec(
            period_start,
            period_end,
            records=records,
            seed=seed,
            rates=parse_rates(rates) if rates else dict(DEFAULT_RATES),
            network_format=network_format,  # type: ignore[arg-type]
            billing_format=billing_format,  # type: ignore[arg-type]
            records_per_file=records_per_file,
            **shares,
        )
    except ValueError as exc:
        _fail(str(exc))
    with Progress(console=console) as progress:
        task = progress.add_task("generating", total=None)
        manifest = generate(
            spec,
            out,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    console.print(
        f"wrote {manifest.network_rows:,} network and {manifest.billing_rows:,} billing records "
        f"for {period_start:%Y-%m-%d %H:%M}..{period_end:%Y-%m-%d %H:%M} UTC "
        f"under {escape(str(out))}"
    )
    for category, count in sorted(manifest.injected.items()):
        console.print(f"  {category}: {count:,}")
    console.print(
        f"reconcile it with: hub recon start --start {period_start.isoformat()} "
        f"--end {period_end.isoformat()} --network-source {escape(str(out / 'network'))} "
        f"--billing-source {escape(str(out / 'billing'))} --wait"
    )


def _print_run(run: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    currency = run.get("currency") or ""
    for label, value in [
        ("id", run["id"]),
        ("status", run["status"]),
        ("period", f"{run['periodStart']} .. {run['periodEnd']}"),
        ("records", f"{run['networkRecords']:,} network, {run['billingRecords']:,} billing"),
        ("billed revenue", f"{run['billedRevenue']:,.2f} {currency}"),
        ("leakage", f"{run['leakageAmount']:,.2f} {currency} ({run['leakagePct']:.3f}%)"),
        ("over-billed", f"{run['overbilledAmount']:,.2f} {currency}"),
        ("CRM case", run.get("caseId")),
        ("error", run.get("errorMessage")),
    ]:
        if (value is not None and run["status"] != "running") or label in (
            "id",
            "status",
            "period",
        ):
            table.add_row(label, escape(str(value)))
    console.print(table)
    if run.get("categories"):
        categories = Table("category", "records", "revenue impact")
        for row in run["categories"]:
            categories.add_row(
                row["category"], f"{row['count']:,}", f"{row['revenueImpact']:,.2f} {currency}"
            )
        console.print(categories)


@recon_app.command("start")
def recon_start(
    start: Annotated[str, typer.Option(help="Period start (UTC)")],
    end: Annotated[str, typer.Option(help="Period end (UTC)")],
    network_source: Annotated[str | None, typer.Option(help="Folder or URI of CDRs")] = None,
    billing_source: Annotated[
        str | None, typer.Option(help="billing-system, or a folder / URI of rated usage")
    ] = None,
    partitions: Annotated[int, typer.Option(min=0, help="Power of two; 0: automatic")] = 0,
    threshold: Annotated[
        float | None, typer.Option(help="Leakage % above which a CRM case opens")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it to its end")] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Start a billing reconciliation of a period."""
    body: dict[str, Any] = {
        "periodStart": _utc(start).isoformat(),
        "periodEnd": _utc(end).isoformat(),
        "partitions": partitions,
    }
    for key, value in (
        ("networkSource", network_source),
        ("billingSource", billing_source),
        ("leakageThresholdPct", threshold),
    ):
        if value is not None:
            body[key] = value
    with _api(api_url, api_key) as client:
        run = _json(_call(client, "POST", RECONCILIATIONS, json=body))
    console.print(f"reconciliation [bold]{escape(run['id'])}[/] started")
    if wait:
        recon_wait(run["id"], api_url=api_url, api_key=api_key)
    else:
        console.print(f"follow it with: hub recon wait {escape(run['id'])}")


@recon_app.command("get")
def recon_get(
    run_id: Annotated[str, typer.Argument(metavar="ID")],
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Show a reconciliation: totals, leakage, categories."""
    with _api(api_url, api_key) as client:
        _print_run(_json(_call(client, "GET", f"{RECONCILIATIONS}/{run_id}")))


@recon_app.command("wait")
def recon_wait(
    run_id: Annotated[str, typer.Argument(metavar="ID")],
    timeout: Annotated[float, typer.Option(min=0, help="Give up after this many seconds")] = 3600,
    interval: Annotated[float, typer.Option(min=0.01, hidden=True)] = 0.5,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Follow a reconciliation with a progress bar; exit 0 only if it completed."""
    deadline = time.monotonic() + timeout
    with _api(api_url, api_key) as client, Progress(console=console) as progress:
        files = progress.add_task("split files", total=None)
        parts = progress.add_task("reconcile partitions", total=None)
        while True:
            run = _json(_call(client, "GET", f"{RECONCILIATIONS}/{run_id}"))
            state = run.get("progress") or {}
            if state:
                progress.update(
                    files, completed=state["filesDone"], total=state["filesTotal"] or None
                )
                progress.update(
                    parts, completed=state["partitionsDone"], total=state["partitionsTotal"] or None
                )
            if run["status"] != "running":
                if run["status"] == "completed":
                    # It may end between two looks: show the bars full, not where they were.
                    for task in (files, parts):
                        done = max(progress.tasks[task].completed, 1)
                        progress.update(task, completed=done, total=done)
                break
            if time.monotonic() >= deadline:
                progress.stop()
                _fail(f"reconciliation {run_id} is still running after {timeout:g} s")
            time.sleep(interval)
    _print_run(run)
    if run["status"] != "completed":
        raise typer.Exit(1)


@recon_app.command("list")
def recon_list(
    status: Annotated[str | None, typer.Option(help="running, completed, failed")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """The latest reconciliations."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    with _api(api_url, api_key) as client:
        runs = _json(_call(client, "GET", RECONCILIATIONS, params=params))
    table = Table("id", "status", "period", "discrepancies", "leakage %", "case")
    for run in runs:
        table.add_row(
            escape(run["id"]),
            run["status"],
            f"{run['periodStart'][:10]}..{run['periodEnd'][:10]}",
            f"{run['discrepancyCount']:,}",
            f"{run['leakagePct']:.3f}",
            escape(run.get("caseId") or ""),
        )
    console.print(table)


# --- Commands in modules of their own --------------------------------------------------------
# Imported last: they use the helpers above (the API client, the options, the console).

from hub.tools.deadletters_cli import deadletters_app  # noqa: E402
from hub.tools.exports_cli import exports_app  # noqa: E402
from hub.tools.partners_cli import partners_app  # noqa: E402
from hub.tools.reports_cli import reports_app  # noqa: E402
from hub.tools.tasks_cli import tasks_app  # noqa: E402

app.add_typer(tasks_app, name="tasks")
app.add_typer(deadletters_app, name="deadletters")
app.add_typer(exports_app, name="exports")
app.add_typer(reports_app, name="reports")
app.add_typer(partners_app, name="partners")
