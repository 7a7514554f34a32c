"""Server-sent events at the edge: a job's events (inference.job_events) rendered as the native event stream or as
OpenAI's chunk stream, served from an async iterator under ASGI (no thread held while waiting) and a sync one
under WSGI.

A client that disconnects only ends its own response: the job runs on, is stored and billed as usual (the batch
it shares with others is not disturbed), and GET /api/v1/jobs/<id> or .../events gives its result later.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse
from rest_framework.renderers import BaseRenderer

from inference.job_events import JobEvent, afollow_job, follow_job
from inference.models import Job, JobStatus
from inference.representations import job_representation

Render = Callable[[JobEvent], list[bytes]]
PING = b": ping\n\n"


class EventStreamRenderer(BaseRenderer):
    """Lets a client that sends `Accept: text/event-stream` (EventSource does) reach an SSE view; errors before the
    stream starts are still the API's JSON error shape."""

    media_type = "text/event-stream"
    format = "event-stream"
    charset = None

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return json.dumps(data).encode()


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
    finally:
        if on_close is not None:
            on_close()


async def _async_body(job: Job, render: Render, on_close: Callable[[], None] | None) -> AsyncIterator[bytes]:
    try:
        async for event in afollow_job(job):
            for chunk in render(event):
                yield chunk
    finally:
        if on_close is not None:
            on_close()


def _data(payload: Any) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


# ---------------------------------------------------------------- the native stream


def native_events(event: JobEvent) -> list[bytes]:
    """`event: status|token|job` with a JSON `data:` line; `: ping` comments while idle."""
    if event.kind == "ping":
        return [PING]
    data = job_representation(event.data) if event.kind == "job" else event.data
    return [f"event: {event.kind}\n".encode() + _data(data)]


# ---------------------------------------------------------------- OpenAI's chunks


class OpenAIChunks:
    """OpenAI's stream for a dialogue (chat.completion.chunk) or text_generation (text_completion) job: a role chunk
    per choice first (chat), content deltas as they come, a finish_reason chunk per choice, with
    stream_options.include_usage a last chunk with no choices and the token counts, then `data: [DONE]`. A job that
    fails or is canceled ends the stream with `data: {"error": {...}}` (the SDK raises it) and no [DONE]."""

    def __init__(self, job: Job, *, chat: bool, include_usage: bool, usage: Callable[[Job], dict[str, int]]) -> None:
        self.chat = chat
        self.include_usage = include_usage
        self.usage = usage
        self.base = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{job.pk.hex}",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(job.created_at.timestamp()),
            "model": job.model,
        }
        self.choices = int((job.params or {}).get("n") or 1)
        self.started = False

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {**self.base, "choices": choices, **extra}
        if self.include_usage and "usage" not in extra:
            chunk["usage"] = None
        return _data(chunk)

    def _choice(self, index: int, text: str | None, finish_reason: str | None, role: bool = False) -> dict[str, Any]:
        if not self.chat:
            return {"index": index, "text": text or "", "finish_reason": finish_reason, "logprobs": None}
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        return {"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}

    def _start(self) -> list[bytes]:
        if self.started or not self.chat:
            self.started = True
            return []
        self.started = True
        return [self._chunk([self._choice(i, "", None, role=True)]) for i in range(self.choices)]

    def __call__(self, event: JobEvent) -> list[bytes]:
        out = self._start()
        if event.kind == "ping":
            return [*out, PING]
        if event.kind == "token":
            return [*out, self._chunk([self._choice(event.data["choice"], event.data["text"], None)])]
        if event.kind != "job":
            return out
        job: Job = event.data
        if job.status != JobStatus.SUCCEEDED:
            return [*out, _data({"error": _stream_error(job)})]
        output = job.output or {}
        for index, choice in enumerate(output.get("choices") or [output]):
            out.append(self._chunk([self._choice(index, None, choice.get("finish_reason", "stop"))]))
        if self.include_usage:
            out.append(self._chunk([], usage=self.usage(job)))
        return [*out, b"data: [DONE]\n\n"]


def _stream_error(job: Job) -> dict[str, Any]:
    if job.status == JobStatus.CANCELED:
        return {"message": "The job was canceled.", "type": "invalid_request_error", "code": "canceled", "param": None}
    if not job.is_finished:
        return {
            "message": f"The job {job.pk} is still {job.status}; follow GET /api/v1/jobs/{job.pk}/events.",
            "type": "server_error",
            "code": "timeout",
            "param": None,
        }
    error = job.error or {}
    bad_input = error.get("code") == "invalid_input"
    return {
        "message": error.get("message", "The model failed."),
        "type": "invalid_request_error" if bad_input else "server_error",
        "code": error.get("code", "model_error"),
        "param": None,
    }
