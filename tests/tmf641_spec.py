"""The official TMF641 v4.0.0 Swagger document (``contracts/tmf641/``) as test assertions.

Swagger 2.0 schemas are JSON Schema draft 4 (less a few keywords the document does not use),
so a response is checked with ``jsonschema``'s draft 4 validator against the operation's
response schema, ``$ref`` resolving to the document's ``definitions``; ``date-time`` formats
are checked too. The document types every attribute and never allows ``null``: an attribute
without a value is left out, which :func:`nulls` holds the hub to everywhere.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft4Validator, FormatChecker

SPEC_PATH = (
    Path(__file__).resolve().parents[1]
    / "contracts"
    / "tmf641"
    / "TMF641-ServiceOrdering-v4.0.0.swagger.json"
)
BASE_PATH = "/tmf-api/serviceOrdering/v4"
#: First-level attributes the hub adds to the v4.0.0 resources (the document allows them: its
#: schemas are open): TMF641 v5's ``errorMessage`` (why an order failed or is held).
EXTENSIONS = {"ServiceOrder": {"errorMessage"}, "CancelServiceOrder": {"errorMessage"}}


@functools.cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


def _validator(schema: dict[str, Any]) -> Draft4Validator:
    # "definitions" beside "$ref" at the root: draft 4 ignores a $ref's siblings, and the
    # document's own "#/definitions/..." references resolve against this root.
    root = {**schema, "definitions": spec()["definitions"]}
    return Draft4Validator(root, format_checker=FormatChecker())


def problems(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Every way ``instance`` breaks ``schema``, each with the path where it does."""
    found = []
    for error in _validator(schema).iter_errors(instance):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        found.append(f"{where or '.'}: {error.message}")
    return sorted(found)


def definition(name: str) -> dict[str, Any]:
    return {"$ref": f"#/definitions/{name}"}


def attributes(name: str) -> set[str]:
    """The first-level attributes of a definition."""
    return set(spec()["definitions"][name]["properties"])


def documented(method: str, url: str) -> bool:
    """Whether the document has the operation (the hub's own extensions, such as replaying an
    event delivery, it does not)."""
    try:
        _operation(method, url)
    except AssertionError:
        return False
    return True


def _operation(method: str, url: str) -> tuple[str, dict[str, Any]]:
    path = httpx.URL(url).path.removeprefix(BASE_PATH)
    for template, operations in spec()["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            return template, operations[method.lower()]
    raise AssertionError(f"{method} {path}: no such operation in TMF641 v4.0.0")


def nulls(instance: Any, path: str = "") -> list[str]:
    """The paths of every ``null`` in ``instance``."""
    if instance is None:
        return [path or "."]
    if isinstance(instance, dict):
        return [n for key, value in instance.items() for n in nulls(value, f"{path}.{key}")]
    if isinstance(instance, list):
        return [n for i, value in enumerate(instance) for n in nulls(value, f"{path}[{i}]")]
    return []


def assert_conforms(response: httpx.Response) -> Any:
    """The response's body, after checking it (and a list's count headers) against what the
    document says the operation answers with that status. Answers the body."""
    template, operation = _operation(response.request.method, str(response.request.url))
    answers = operation["responses"]
    status = str(response.status_code)
    if status == "200" and status not in answers and "201" in answers:
        # A create retried with the same body answers the resource it created (the hub's
        # idempotent replay): what the 201 answered.
        answers = {status: answers["201"]}
    elif status not in answers and response.status_code >= 400:
        # An error the document does not list for the operation (a 415, a 404 naming the
        # order a cancellation is for): TMF630's Error all the same.
        answers = {status: {"schema": {"$ref": "#/definitions/Error"}}}
    assert status in answers, (
        f"{response.request.method} {template} answered {status}, which TMF641 v4.0.0 does not "
        f"list ({sorted(answers)}): {response.text}"
    )
    answer = answers[status]
    if "schema" not in answer:
        assert not response.content, response.text
        return None
    body = response.json()
    found = problems(body, answer["schema"]) + [f"{p}: null" for p in nulls(body)]
    assert not found, f"{response.request.method} {template} {status}: " + "; ".join(found)
    for header, declared in answer.get("headers", {}).items():
        assert header in response.headers, f"{template} {status}: no {header} header"
        if declared.get("type") == "integer":
            assert response.headers[header].isdigit(), (header, response.headers[header])
    if "X-Result-Count" in answer.get("headers", {}):
        assert int(response.headers["X-Result-Count"]) == len(body)
    return body
