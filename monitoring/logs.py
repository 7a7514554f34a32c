"""Structured event logs: one JSON line per request and per job state change, on the `alliance.events` logger.

Lines carry identifiers, counts and durations only: never a secret, a key, a header or a job's input or output.
The request id of the web request that caused the work rides along: a contextvar here, a Celery task header across
the broker (monitoring.signals), so a job's worker lines carry the id its web request answered with."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import uuid
from typing import Any

logger = logging.getLogger("alliance.events")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("alliance_request_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
TASK_HEADER = "alliance_request_id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def request_id_from(incoming: str | None) -> str:
    """The id a proxy gave the request when it is a plain token, else a new one."""
    if incoming and _VALID_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


def event(name: str, **fields: Any) -> None:
    """One event line; the current request id is added when there is one and the fields name none."""
    if "request_id" not in fields and (current := request_id_var.get()):
        fields["request_id"] = current
    logger.info(name, extra={"event_fields": fields})


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "event", ...fields} on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update(getattr(record, "event_fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)
