"""Server-sent events of a job (inference.job_events) as an HTTP response: served from an async iterator under
ASGI (no thread held while it waits) and from a sync one under WSGI. Used by the API and the playground.

A client that disconnects only ends its own response: the job runs on, is stored and billed as usual (the batch
it shares with others is not disturbed), and GET /api/v1/jobs/<id> or .../events gives its result later.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

from inference.job_events import JobEvent, afollow_job, follow_job
from inference.models import Job
from inference.representations import job_representation

Render = Callable[[JobEvent], list[bytes]]
PING = b": ping\n\n"


def sse_response(request: HttpRequest, job: Job, render: Render, on_close: Callable[[], None] | None = None) -> Any:
    """The job's events through `render`, as text/event-stream; on_close runs however the response ends."""
    django_request = getattr(request, "_request", request)
    if isinstance(django_request, ASGIRequest):
        content: Any = _async_body(job, render, on_close)
    else:
        content = _sync_body(job, render, on_close)
    response = StreamingHttpResponse(content, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def _sync_body(job: Job, render: Render, on_close: Callable[[], None] | None) -> Iterator[bytes]:
    try:
        for event in follow_job(job):
            yield from render(event)
            if getattr(render, "done", False):
                break
    finally:
        if on_close is not None:
            on_close()


async def _async_body(job: Job, render: Render, on_close: Callable[[], None] | None) -> AsyncIterator[bytes]:
    try:
        async for event in afollow_job(job):
            for chunk in render(event):
                yield chunk
            if getattr(render, "done", False):
                break
    finally:
        if on_close is not None:
            on_close()


def data_line(payload: Any) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


# ---------------------------------------------------------------- the native stream


def native_events(event: JobEvent) -> list[bytes]:
    """`event: status|token|job` with a JSON `data:` line; `: ping` comments while idle."""
    if event.kind == "ping":
        return [PING]
    data = job_representation(event.data) if event.kind == "job" else event.data
    return [f"event: {event.kind}\n".encode() + data_line(data)]
