"""The hub's logs: one JSON object per line, carrying the Temporal context of the record.

Every record the worker or the API logs becomes ``{"time", "level", "logger", "message", ...}``
with, where there is one, the workflow's or activity's context (``workflowId``, ``runId``,
``workflowType``, ``activity``, ``attempt``, ``taskQueue``) and the business id the workflow id
names (``orderId``, ``reportId``... from the process contracts' prefixes the worker passes in),
plus the record's own extra fields (``step``, ``dead_letter``). Logs aggregators (Loki,
Elasticsearch, CloudWatch) index them as they are: a NOC engineer finds every line of one order
by its id. ``HUB_LOG_FORMAT=text`` keeps the classic one-line format.

The SDK's loggers (``workflow.logger``, ``activity.logger``) put that context on the record
(``temporal_workflow``, ``temporal_activity``); with JSON it is not also appended to the message.
A record logged by plain ``logging`` inside an activity gets it from ``activity.info()``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from temporalio import activity, workflow

#: Attributes every ``LogRecord`` has: the rest are a record's extra fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_TEMPORAL = {"temporal_workflow", "temporal_activity"}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
#: The hub's own loggers: the only ones ``HUB_LOG_LEVEL=DEBUG`` makes verbose.
HUB_LOGGERS = ("hub", "api", "activities", "adapters", "workflows", "worker", "simulators")
#: Marks the handler :func:`configure` installed, so calling it again replaces it.
_OURS = "_hub_handler"


class JsonLines(logging.Formatter):
    """A record as one line of JSON. ``references``: workflow id prefix -> the business id's
    field (``{"service-order-": "orderId"}``)."""

    def __init__(self, references: Mapping[str, str] | None = None) -> None:
        super().__init__()
        # Longest first: "report-" must not take a prefix that a longer one names better.
        self.references = sorted((references or {}).items(), key=lambda kv: -len(kv[0]))

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update(self._temporal(record))
        workflow_id = doc.get("workflowId")
        if isinstance(workflow_id, str):
            for prefix, name in self.references:
                if workflow_id.startswith(prefix):
                    doc[name] = workflow_id.removeprefix(prefix)
                    break
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _TEMPORAL and key not in doc:
                doc[key] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        # ASCII only: U+2028 or NEL in a message must not split a line for a log reader.
        return json.dumps(doc, ensure_ascii=True)

    @staticmethod
    def _temporal(record: logging.LogRecord) -> dict[str, Any]:
        details = getattr(record, "temporal_activity", None)
        if not isinstance(details, dict) and activity.in_activity():
            info = activity.info()
            details = {
                "activity_type": info.activity_type,
                "attempt": info.attempt,
                "task_queue": info.task_queue,
                "workflow_id": info.workflow_id,
                "workflow_run_id": info.workflow_run_id,
                "workflow_type": info.workflow_type,
            }
        if isinstance(details, dict):
            return _present(
                workflowId=details.get("workflow_id"),
                runId=details.get("workflow_run_id"),
                workflowType=details.get("workflow_type"),
                activity=details.get("activity_type"),
                attempt=details.get("attempt"),
                taskQueue=details.get("task_queue"),
            )
        details = getattr(record, "temporal_workflow", None)
        if isinstance(details, dict):
            return _present(
                workflowId=details.get("workflow_id"),
                runId=details.get("run_id"),
                workflowType=details.get("workflow_type"),
                attempt=details.get("attempt"),
                taskQueue=details.get("task_queue"),
            )
        return {}


def _present(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def configure(
    fmt: str, level: str = "INFO", references: Mapping[str, str] | None = None
) -> logging.Handler:
    """Log to stderr in ``fmt`` (``json`` or ``text``) at ``level``: one handler on the root
    logger (replacing the one an earlier call installed), and uvicorn's loggers sent there too."""
    handler = logging.StreamHandler()
    setattr(handler, _OURS, True)
    if fmt == "json":
        handler.setFormatter(JsonLines(references))
        # The context is on the line as fields: not also in the message's text.
        activity.logger.activity_info_on_message = False
        workflow.logger.workflow_info_on_message = False
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # DEBUG is the hub's own: libraries' debug logs hold whole SOAP envelopes and payloads.
    root.setLevel("INFO" if level == "DEBUG" else level)
    for name in HUB_LOGGERS:
        logging.getLogger(name).setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    return handler
