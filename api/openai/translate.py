"""OpenAI request bodies to platform inputs and params, and platform results to OpenAI's shapes."""

from __future__ import annotations

import base64
import struct
from typing import Any

from alliance.api.errors import ApiError
from inference.images import file_path
from inference.models import Batch, Job, JobStatus, StoredFile, TuningJob

ROLE_ALIASES = {"developer": "system", "system": "system", "user": "user", "assistant": "assistant"}


def created(job: Job | TuningJob) -> int:
    return int(job.created_at.timestamp())


def _text_of(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        if len(parts) == len(content):
            return "".join(parts)
    raise ApiError("Only text content is supported in messages.", code="invalid_content", param=param)


def chat_messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list):
        raise ApiError("`messages` must be a list.", code="invalid_type", param="messages")
    converted = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLE_ALIASES:
            raise ApiError(
                f"messages[{index}].role must be system, developer, user or assistant.",
                code="invalid_role",
                param=f"messages[{index}].role",
            )
        content = _text_of(message.get("content"), f"messages[{index}].content")
        converted.append({"role": ROLE_ALIASES[message["role"]], "content": content})
    return converted


def sampling_params(body: dict[str, Any], *, allow_n: bool) -> dict[str, Any]:
    params: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        params["max_new_tokens"] = max_tokens
    for key in ("temperature", "top_p", "seed"):
        if body.get(key) is not None:
            params[key] = body[key]
    stop = body.get("stop")
    if stop is not None:
        params["stop"] = [stop] if isinstance(stop, str) else stop
    n = body.get("n")
    if n not in (None, 1):
        if not allow_n:
            raise ApiError("`n` must be 1 for this endpoint.", code="invalid_n", param="n")
        params["n"] = n
    return params


def _usage(tokens: dict[str, int] | None, fallback: int) -> dict[str, int]:
    prompt = (tokens or {}).get("prompt", 0)
    completion = (tokens or {}).get("completion", max(0, fallback - prompt))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _choices(output: dict[str, Any]) -> list[dict[str, Any]]:
    return output.get("choices") or [output]


def chat_usage(job: Job) -> dict[str, int]:
    """The prompt's tokens and the completion tokens of all choices, as the model's tokenizer counted them."""
    choices = _choices(job.output)
    completion_tokens = sum((choice.get("tokens") or {}).get("completion", 0) for choice in choices)
    usage = _usage(choices[0].get("tokens"), job.units)
    usage["completion_tokens"] = completion_tokens or usage["completion_tokens"]
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return usage


def text_usage(job: Job) -> dict[str, int]:
    return _usage(job.output.get("tokens"), job.units)


def include_usage(body: dict[str, Any]) -> bool:
    """stream_options.include_usage of a streamed request (stream_options without stream is refused)."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not body.get("stream"):
        raise ApiError(
            "`stream_options` is only allowed with stream=true.", code="invalid_value", param="stream_options"
        )
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise ApiError(
            '`stream_options` must be an object like {"include_usage": true}.',
            code="invalid_type",
            param="stream_options",
        )
    return bool(options.get("include_usage", False))


def chat_completion(job: Job) -> dict[str, Any]:
    choices = _choices(job.output)
    usage = chat_usage(job)
    return {
        "id": f"chatcmpl-{job.pk.hex}",
        "object": "chat.completion",
        "created": created(job),
        "model": job.model,
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": choice["message"]["content"], "refusal": None},
                "finish_reason": choice.get("finish_reason", "stop"),
                "logprobs": None,
            }
            for index, choice in enumerate(choices)
        ],
        "usage": usage,
    }


def text_completion(job: Job) -> dict[str, Any]:
    output = job.output
    return {
        "id": f"cmpl-{job.pk.hex}",
        "object": "text_completion",
        "created": created(job),
        "model": job.model,
        "choices": [
            {"index": 0, "text": output["text"], "finish_reason": output.get("finish_reason", "stop"), "logprobs": None}
        ],
        "usage": text_usage(job),
    }


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def embeddings_list(job: Job, encoding_format: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": _encoded(vector, encoding_format)}
            for index, vector in enumerate(job.output["embeddings"])
        ],
        "model": job.model,
        "usage": {"prompt_tokens": job.units, "total_tokens": job.units},
    }


def images_response(job: Job, response_format: str, absolute: Any) -> dict[str, Any]:
    data = []
    for choice in _choices(job.output):
        image = choice["image"]
        if response_format == "b64_json":
            stored = StoredFile.objects.get(partner_id=job.partner_id, public_id=image["file_id"])
            data.append({"b64_json": base64.b64encode(file_path(stored).read_bytes()).decode()})
        else:
            data.append({"url": absolute(image["url"])})
    return {"created": created(job), "data": data}


def _response_body(job: Job) -> dict[str, Any]:
    if job.capability == "dialogue":
        return chat_completion(job)
    if job.capability == "text_generation":
        return text_completion(job)
    return embeddings_list(job, "float")


def batch_line(batch: Batch, job: Job) -> dict[str, Any]:
    """One line of a /v1 batch's output file (a succeeded request) or error file (failed, cancelled, expired)."""
    line: dict[str, Any] = {"id": f"batch_req_{job.pk.hex}", "custom_id": job.custom_id, "response": None}
    if job.status == JobStatus.SUCCEEDED:
        line["response"] = {"status_code": 200, "request_id": str(job.pk), "body": _response_body(job)}
        line["error"] = None
    elif job.status == JobStatus.FAILED:
        error = job.error or {}
        code = 400 if error.get("code") == "invalid_input" else 500
        body = {
            "error": {
                "message": error.get("message", "The model failed."),
                "type": "invalid_request_error" if code == 400 else "server_error",
                "param": None,
                "code": error.get("code", "model_error"),
            }
        }
        line["response"] = {"status_code": code, "request_id": str(job.pk), "body": body}
        line["error"] = None
    elif batch.expired_at is not None:
        line["error"] = {"code": "batch_expired", "message": "This request was not run before the batch expired."}
    else:
        line["error"] = {"code": "batch_cancelled", "message": "This request was cancelled with its batch."}
    return line
