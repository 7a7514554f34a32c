"""OpenAI's chunk stream over a job's events (inference.job_events), and the renderer that lets SSE clients in.
The response itself (ASGI or WSGI) and the native event format are inference.sse's, shared with the playground."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer

from inference.job_events import JobEvent
from inference.models import Job, JobStatus
from inference.sse import PING, data_line, native_events, sse_response

__all__ = ["EventStreamNegotiation", "OpenAIChunks", "native_events", "sse_response"]


class EventStreamNegotiation(BaseContentNegotiation):
    """For the SSE views: any Accept (EventSource sends text/event-stream) is served; the event stream itself is a
    StreamingHttpResponse, and an error before it starts is the API's one JSON shape."""

    def select_parser(self, request: Any, parsers: list[Any]) -> Any:
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(self, request: Any, renderers: list[Any], format_suffix: str | None = None) -> Any:
        renderer = next(r for r in renderers if isinstance(r, JSONRenderer))
        return renderer, renderer.media_type


# ---------------------------------------------------------------- OpenAI's chunks


class OpenAIChunks:
    """OpenAI's stream for a dialogue (chat.completion.chunk) or text_generation (text_completion) job: a role chunk
    per choice first (chat), content deltas as they come, a tool call (delta.tool_calls, whole) where the model made
    one, a finish_reason chunk per choice, with
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
        self.done = False  # after an error: the response ends (inference.sse stops at a render that is done)

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {**self.base, "choices": choices, **extra}
        if self.include_usage and "usage" not in extra:
            chunk["usage"] = None
        return data_line(chunk)

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
        if event.kind == "status" and event.data.get("restarted"):  # text already sent cannot be taken back
            self.done = True
            return [*out, data_line({"error": _restarted_error(event)})]
        if event.kind != "job":
            return out
        job: Job = event.data
        if job.status != JobStatus.SUCCEEDED:
            return [*out, data_line({"error": _stream_error(job)})]
        output = job.output or {}
        for index, choice in enumerate(output.get("choices") or [output]):
            calls = (choice.get("message") or {}).get("tool_calls") if self.chat else None
            if calls:  # a tool call is not streamed as content: it comes whole, before its finish_reason
                out.append(self._chunk([_tool_calls_choice(index, calls)]))
            out.append(self._chunk([self._choice(index, None, choice.get("finish_reason", "stop"))]))
        if self.include_usage:
            out.append(self._chunk([], usage=self.usage(job)))
        return [*out, b"data: [DONE]\n\n"]


def _tool_calls_choice(index: int, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """OpenAI's delta.tool_calls: each call with its position, id, type, name and its whole arguments string."""
    delta = {"tool_calls": [{"index": position, **call} for position, call in enumerate(calls)]}
    return {"index": index, "delta": delta, "finish_reason": None, "logprobs": None}


def _restarted_error(event: JobEvent) -> dict[str, Any]:
    return {
        "message": "The job's worker stopped mid-stream and the job is running again; its result will be at "
        "GET /api/v1/jobs/<id> (the id is this stream's id without its prefix).",
        "type": "server_error",
        "code": "job_restarted",
        "param": None,
    }


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
