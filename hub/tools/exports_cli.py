"""``hub exports``: scheduled exports from a terminal, through the hub API.

``list`` shows the export schedules (``/exportSchedules``), ``create`` makes one (every
``--interval`` or at a ``--cron`` time), ``trigger`` runs one now, ``pause`` / ``unpause`` stop
and restart its timing, ``runs`` lists the runs (``/exportRuns``, filters as the API's).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hub.exports import ExportDataset, ExportFormat
from hub.tools.cli import DEFAULT_API_URL, ApiKey, ApiUrl, _api, _call, _json, console

exports_app = typer.Typer(
    help="Scheduled exports (Parquet, CSV, XML), through the hub API.", no_args_is_help=True
)

SCHEDULES = "/exportSchedules"
RUNS = "/exportRuns"
ExportId = Annotated[str, typer.Argument(metavar="ID", help="The export's id.")]
Note = Annotated[
    str | None, typer.Option("--note", "-m", help="Why; shown on the schedule in Temporal.")
]


def _when(value: Any) -> str:
    return str(value or "").split(".")[0].replace("T", " ").removesuffix("Z")


def _timing(schedule: dict[str, Any]) -> str:
    if schedule.get("interval"):
        return f"every {schedule['interval']}"
    if schedule.get("cron"):
        cron = schedule["cron"]
        text = " ".join(cron) if isinstance(cron, list) else str(cron)
        return text + (f" ({schedule['timezone']})" if schedule.get("timezone") else "")
    return ""


def _print_schedule(schedule: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows = [
        ("id", schedule.get("id")),
        ("dataset", schedule.get("dataset")),
        ("format", schedule.get("format")),
        ("destination", schedule.get("destination")),
        ("runs", _timing(schedule)),
        ("paused", schedule.get("paused")),
        ("note", schedule.get("note")),
        ("pause reason", schedule.get("pauseReason")),
        ("watermark", schedule.get("watermark")),
        ("next runs", ", ".join(map(_when, schedule.get("nextRunTimes") or []))),
    ]
    for label, value in rows:
        if value is not None and value != "":
            table.add_row(label, escape(str(value)))
    console.print(table)


@exports_app.command("list")
def exports_list(api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None) -> None:
    """List the export schedules."""
    with _api(api_url, api_key) as client:
        schedules = _json(_call(client, "GET", SCHEDULES))
    ids = [str(schedule.get("id") or "") for schedule in schedules]
    table = Table(title="export schedules", title_justify="left")
    table.add_column("id", no_wrap=True, min_width=max(map(len, ids), default=2))
    table.add_column("dataset", overflow="fold")
    table.add_column("format", no_wrap=True)
    table.add_column("destination", overflow="fold")
    table.add_column("runs", overflow="fold")
    table.add_column("paused", no_wrap=True)
    table.add_column("next run", overflow="fold")
    for export_id, schedule in zip(ids, schedules, strict=True):
        upcoming = schedule.get("nextRunTimes") or []
        table.add_row(
            escape(export_id),
            escape(str(schedule.get("dataset") or "")),
            escape(str(schedule.get("format") or "")),
            escape(str(schedule.get("destination") or "")),
            escape(_timing(schedule)),
            "[yellow]paused[/]" if schedule.get("paused") else "no",
            escape(_when(upcoming[0])) if upcoming and not schedule.get("paused") else "",
        )
    console.print(table)
    console.print(f"{len(schedules)} export schedules")


@exports_app.command("create")
def exports_create(
    export_id: ExportId,
    dataset: Annotated[ExportDataset, typer.Option(help="What to copy.")],
    format_: Annotated[ExportFormat, typer.Option("--format", help="How to write it.")],
    destination: Annotated[
        str, typer.Option(help="A folder (absolute path or file:// URI) or s3://bucket/prefix.")
    ],
    interval: Annotated[
        str | None, typer.Option(help="Every this long: ISO 8601 (PT1H) or seconds.")
    ] = None,
    cron: Annotated[
        str | None, typer.Option(help="At these times: five-field cron, e.g. '0 2 * * *'.")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option(help="IANA time zone of the cron expression.")
    ] = None,
    start_from: Annotated[
        str | None,
        typer.Option(help="The first run copies rows changed after this (ISO 8601, with zone)."),
    ] = None,
    paused: Annotated[bool, typer.Option(help="Create it paused.")] = False,
    note: Note = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Create an export schedule: give --interval or --cron."""
    if (interval is None) == (cron is None):
        raise typer.BadParameter("give either --interval or --cron", param_hint="--interval")
    body: dict[str, Any] = {
        "id": export_id,
        "dataset": dataset.value,
        "format": format_.value,
        "destination": destination,
        "paused": paused,
    }
    if interval is not None:
        body["interval"] = int(interval) if interval.isdigit() else interval
    for name, value in (
        ("cron", cron),
        ("timezone", timezone),
        ("startFrom", start_from),
        ("note", note),
    ):
        if value is not None:
            body[name] = value
    with _api(api_url, api_key) as client:
        schedule = _json(_call(client, "POST", SCHEDULES, json=body))
    console.print(f"[green]created[/] export schedule [bold]{escape(export_id)}[/]")
    _print_schedule(schedule)


@exports_app.command("trigger")
def exports_trigger(
    export_id: ExportId, api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None
) -> None:
    """Run an export now (also when paused; queued behind a run in progress)."""
    with _api(api_url, api_key) as client:
        _call(client, "POST", f"{SCHEDULES}/{export_id}/trigger")
    console.print(f"export [bold]{escape(export_id)}[/]: a run is queued")
    console.print(f"follow it with: hub exports runs --export {escape(export_id)}")


Reason = Annotated[
    str | None, typer.Option("--reason", "-r", help="Why it is paused or resumed; shown on it.")
]


def _set_paused(
    api_url: str, api_key: str | None, export_id: str, action: str, reason: str | None
) -> None:
    body = {"reason": reason} if reason is not None else None
    with _api(api_url, api_key) as client:
        schedule = _json(_call(client, "POST", f"{SCHEDULES}/{export_id}/{action}", json=body))
    state = "paused" if schedule.get("paused") else "running on schedule"
    console.print(f"export [bold]{escape(export_id)}[/]: {state}")
    _print_schedule(schedule)


@exports_app.command("pause")
def exports_pause(
    export_id: ExportId,
    reason: Reason = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Pause a schedule (a trigger still runs it)."""
    _set_paused(api_url, api_key, export_id, "pause", reason)


@exports_app.command("unpause")
def exports_unpause(
    export_id: ExportId,
    reason: Reason = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Let a paused schedule run at its times again."""
    _set_paused(api_url, api_key, export_id, "unpause", reason)


@exports_app.command("runs")
def exports_runs(
    export: Annotated[str | None, typer.Option("--export", help="Only this export's runs.")] = None,
    status: Annotated[str | None, typer.Option(help="running, completed or failed.")] = None,
    since: Annotated[str | None, typer.Option(help="Started at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Started before (ISO 8601).")] = None,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 20,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """List export runs, newest first."""
    params: dict[str, Any] = {"limit": limit}
    for name, value in (
        ("exportId", export),
        ("status", status),
        ("since", since),
        ("until", until),
    ):
        if value:
            params[name] = value
    if offset:
        params["offset"] = offset
    with _api(api_url, api_key) as client:
        response = _call(client, "GET", RUNS, params=params)
    runs = _json(response)
    ids = [str(run.get("id") or "") for run in runs]
    table = Table(title="export runs", title_justify="left")
    table.add_column("id", no_wrap=True, min_width=max(map(len, ids), default=2))
    table.add_column("export", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("window", overflow="fold")
    table.add_column("rows", justify="right")
    table.add_column("files", justify="right")
    table.add_column("bytes", justify="right")
    table.add_column("started", overflow="fold")
    table.add_column("manifest / error", overflow="fold")
    colours = {"completed": "green", "failed": "red"}
    for run_id, run in zip(ids, runs, strict=True):
        status_text = escape(str(run.get("status") or ""))
        colour = colours.get(str(run.get("status")))
        window = f"{_when(run.get('watermarkFrom')) or '…'} .. {_when(run.get('watermarkTo'))}"
        table.add_row(
            escape(run_id),
            escape(str(run.get("exportId") or "")),
            f"[{colour}]{status_text}[/]" if colour else status_text,
            escape(window),
            "" if run.get("rows") is None else f"{run['rows']:,}",
            "" if run.get("files") is None else str(run["files"]),
            "" if run.get("bytes") is None else f"{run['bytes']:,}",
            escape(_when(run.get("startedAt"))),
            escape(str(run.get("errorMessage") or run.get("manifestUri") or "")),
        )
    console.print(table)
    total = response.headers.get("X-Total-Count", str(len(runs)))
    console.print(f"{len(runs)} of {total} runs")
