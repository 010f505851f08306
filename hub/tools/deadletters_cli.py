"""``hub deadletters``: parked steps from a terminal, through the hub API (``/deadLetters``).

``list`` shows dead letters (filters as ``GET /deadLetters``), ``show`` one with its input and
error, ``retry`` / ``skip`` / ``abort`` decide it. A retry may correct the step's input:
``--input msisdn=33612345678`` sets a string, ``--input qos:={"qci": 8}`` a JSON value. Who
decides is the API key's identity, as the API records it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from hub.tools.cli import DEFAULT_API_URL, ApiKey, ApiUrl, _api, _call, _json, console

deadletters_app = typer.Typer(
    help="Dead letters: steps parked for a person, through the hub API.", no_args_is_help=True
)

LETTERS = "/deadLetters"
LetterId = Annotated[str, typer.Argument(metavar="ID", help="The dead letter's id.")]
Reason = Annotated[
    str | None, typer.Option("--reason", "-m", help="Why; recorded with the decision.")
]


def _when(value: Any) -> str:
    return str(value or "").split(".")[0].replace("T", " ").removesuffix("Z")


@deadletters_app.command("list")
def deadletters_list(
    status: Annotated[
        str | None, typer.Option(help="parked, retrying, resolved, skipped, aborted, expired.")
    ] = None,
    process: Annotated[str | None, typer.Option(help="Only this process's letters.")] = None,
    system: Annotated[str | None, typer.Option(help="Only steps of this system.")] = None,
    step: Annotated[str | None, typer.Option(help="Only this step.")] = None,
    order: Annotated[
        str | None, typer.Option("--order", help="Only this service order's letters.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Parked at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Parked before (ISO 8601).")] = None,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 50,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """List dead letters, newest parked first."""
    params: dict[str, Any] = {"limit": limit}
    for name, value in (
        ("status", status),
        ("process", process),
        ("system", system),
        ("step", step),
        ("orderId", order),
        ("since", since),
        ("until", until),
    ):
        if value:
            params[name] = value
    if offset:
        params["offset"] = offset
    with _api(api_url, api_key) as client:
        response = _call(client, "GET", LETTERS, params=params)
    letters = _json(response)
    ids = [str(letter.get("id") or "") for letter in letters]
    table = Table(title="dead letters", title_justify="left")
    table.add_column("id", no_wrap=True, min_width=max(map(len, ids), default=2))
    table.add_column("status", no_wrap=True)
    table.add_column("process", overflow="fold")
    table.add_column("step", overflow="fold")
    table.add_column("system", no_wrap=True)
    table.add_column("order", overflow="fold")
    table.add_column("attempts", justify="right")
    table.add_column("parked", overflow="fold")
    table.add_column("last error", overflow="fold")
    for letter_id, letter in zip(ids, letters, strict=True):
        table.add_row(
            escape(letter_id),
            escape(str(letter.get("status") or "")),
            escape(str(letter.get("process") or "")),
            escape(str(letter.get("step") or ""))
            + (" [dim](compensation)[/]" if letter.get("compensation") else ""),
            escape(str(letter.get("system") or "")),
            escape(str(letter.get("orderId") or "")),
            str(letter.get("attempts") or ""),
            escape(_when(letter.get("parkedAt"))),
            escape(str(letter.get("lastError") or "")),
        )
    console.print(table)
    total = response.headers.get("X-Total-Count", str(len(letters)))
    console.print(f"{len(letters)} of {total} dead letters")


def _print_letter(letter: dict[str, Any]) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, key in [
        ("id", "id"),
        ("status", "status"),
        ("process", "process"),
        ("order", "orderId"),
        ("workflow", "workflowId"),
        ("step", "step"),
        ("system", "system"),
        ("activity", "activity"),
        ("compensation", "compensation"),
        ("skippable", "skippable"),
        ("error type", "errorType"),
        ("last error", "lastError"),
        ("attempts", "attempts"),
        ("first failure", "firstFailureAt"),
        ("last failure", "lastFailureAt"),
        ("parked", "parkedAt"),
        ("deadline", "deadline"),
        ("decision", "decision"),
        ("decided by", "decidedBy"),
        ("decided at", "decidedAt"),
        ("reason", "decisionReason"),
        ("closed", "closedAt"),
    ]:
        value = letter.get(key)
        if value is None or value == "":
            continue
        table.add_row(label, escape(str(value)))
    if letter.get("input") is not None:
        table.add_row("input", escape(json.dumps(letter["input"], indent=2, default=str)))
    console.print(table)


@deadletters_app.command("show")
def deadletters_show(
    letter_id: LetterId, api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None
) -> None:
    """One dead letter: the step, its input, its error, the decision taken."""
    with _api(api_url, api_key) as client:
        _print_letter(_json(_call(client, "GET", f"{LETTERS}/{letter_id}")))


def corrections(values: list[str]) -> dict[str, Any]:
    """``name=value`` (a string, as an MSISDN must stay) or ``name:=json`` (a number, an
    object): the fields of the step's input a retry corrects."""
    fields: dict[str, Any] = {}
    for pair in values:
        name, sep, raw = pair.partition("=")
        if not sep or not name or name == ":":
            raise typer.BadParameter(
                f"{pair!r}: expected name=value or name:=json", param_hint="--input"
            )
        if name.endswith(":"):
            try:
                fields[name[:-1]] = json.loads(raw)
            except ValueError as exc:
                raise typer.BadParameter(
                    f"{pair!r}: the value is not JSON ({exc})", param_hint="--input"
                ) from None
        else:
            fields[name] = raw
    return fields


def _decide(
    api_url: str, api_key: str | None, letter_id: str, action: str, body: dict[str, Any]
) -> None:
    with _api(api_url, api_key) as client:
        answer = _json(_call(client, "POST", f"{LETTERS}/{letter_id}/{action}", json=body))
    letter = answer.get("deadLetter") or {}
    console.print(
        f"dead letter [bold]{escape(letter_id)}[/]: [green]{escape(action)} accepted[/]"
        f" (decided by {escape(str(answer.get('decidedBy')))})"
        + (f"; step {escape(str(letter['step']))}" if letter.get("step") else "")
    )
    if letter.get("orderId"):
        console.print(f"follow the order with: hub order wait {escape(str(letter['orderId']))}")


@deadletters_app.command("retry")
def deadletters_retry(
    letter_id: LetterId,
    input_: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="A corrected input field: name=value (string) or name:=json. Repeatable.",
        ),
    ] = None,
    reason: Reason = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Run the parked step again, optionally with corrected input."""
    body: dict[str, Any] = {"reason": reason}
    if input_:
        body["input"] = corrections(input_)
    _decide(api_url, api_key, letter_id, "retry", body)


@deadletters_app.command("skip")
def deadletters_skip(
    letter_id: LetterId,
    reason: Reason = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Mark the parked step done by hand (where the step allows it)."""
    _decide(api_url, api_key, letter_id, "skip", {"reason": reason})


@deadletters_app.command("abort")
def deadletters_abort(
    letter_id: LetterId,
    reason: Reason = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Give up on the step: the process compensates and fails."""
    _decide(api_url, api_key, letter_id, "abort", {"reason": reason})
