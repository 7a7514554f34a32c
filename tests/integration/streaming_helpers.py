"""Reading server-sent events off a live server with the standard library, timing each event."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Sse:
    event: str
    data: str
    at: float  # time.time() when it arrived

    def json(self) -> Any:
        return json.loads(self.data)


def open_sse(
    url: str, key: str, *, method: str = "GET", body: Any = None, accept: str = "text/event-stream"
) -> http.client.HTTPResponse:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=180)
    headers = {"Authorization": f"Bearer {key}", "Accept": accept}
    payload = None
    if body is not None:
        payload = json.dumps(body)
        headers["Content-Type"] = "application/json"
    connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=payload, headers=headers)
    return connection.getresponse()


def events(response: http.client.HTTPResponse, limit: int | None = None) -> list[Sse]:
    """The events of the stream (comments skipped), up to `limit` of them."""
    found: list[Sse] = []
    name, data = "message", []
    while limit is None or len(found) < limit:
        line = response.readline()
        if not line:
            break
        line = line.decode().rstrip("\r\n")
        if not line:
            if data:
                found.append(Sse(name, "\n".join(data), time.time()))
            name, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    return found
