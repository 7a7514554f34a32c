"""OpenAI's Batch API on /v1/batches: a JSONL input file uploaded with purpose `batch`, one line per request
(`{"custom_id", "method": "POST", "url", "body"}`), every url the batch's endpoint.

An input file with any invalid line is not run: the batch is created `failed` with line-numbered `errors` (OpenAI's
`validating -> failed`), no job and no charge. A valid one is accepted whole in one transaction
(inference.services.batches): `in_progress` at once (the validation is done within the request), then `completed`,
or `cancelling -> cancelled`, or `expired` past its 24 h window. Units beyond the remaining quota answer 429 and
nothing is created. Lines of the output file are `{"id", "custom_id", "response": {"status_code": 200,
"request_id", "body"}, "error": null}`; the error file holds failed requests (status_code 400/500 with an error
body) and cancelled or expired ones (`response: null`, `error: {"code": "batch_cancelled" | "batch_expired"}`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.response import Response

from alliance.api.errors import ApiError
from api.base import SUBMITS_JOB
from api.batches import (
    custom_id_of,
    input_file_of,
    jsonl_records,
    metadata_of,
    refreshed,
    request_counts,
)
from api.openai import translate
from api.openai.views import OpenAIView
from inference import selectors
from inference.models import Batch, BatchApi
from inference.services import batches
from inference.services.batches import BatchRequest, LineError
from partners import scopes

ENDPOINTS = {"/v1/chat/completions": "dialogue", "/v1/completions": "text_generation", "/v1/embeddings": "embeddings"}
CREATE_FIELDS = {"input_file_id", "endpoint", "completion_window", "metadata"}
LINE_FIELDS = {"custom_id", "method", "url", "body"}


# ---------------------------------------------------------------- input lines


def _chat(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"messages": translate.chat_messages(body.get("messages"))}, translate.sampling_params(body, allow_n=True)


def _completion(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ApiError("`prompt` must be a string.", code="invalid_type", param="prompt")
    return {"prompt": prompt}, translate.sampling_params(body, allow_n=False)


def _embeddings(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    texts = body.get("input")
    if (body.get("encoding_format") or "float") != "float":
        raise ApiError("In a batch, `encoding_format` must be float.", code="invalid_value", param="encoding_format")
    return {"texts": [texts] if isinstance(texts, str) else texts}, {}


TRANSLATIONS = {"/v1/chat/completions": _chat, "/v1/completions": _completion, "/v1/embeddings": _embeddings}


def _request(line: int, record: Any, endpoint: str) -> BatchRequest | LineError:
    if not isinstance(record, dict):
        return LineError(line, "invalid_request", "Each line must be a JSON object.")
    unknown = sorted(set(record) - LINE_FIELDS)
    if unknown:
        return LineError(line, "unknown_field", f"Unknown field {unknown[0]!r}.", unknown[0])
    custom_id = custom_id_of(record, line)
    if isinstance(custom_id, LineError):
        return custom_id
    if record.get("method") != "POST":
        return LineError(line, "invalid_method", "`method` must be POST.", "method")
    if record.get("url") != endpoint:
        return LineError(
            line, "mismatched_url", f"`url` must be the batch's endpoint {endpoint}, not {record.get('url')!r}.", "url"
        )
    body = record.get("body")
    if not isinstance(body, dict):
        return LineError(line, "invalid_body", "`body` must be a JSON object.", "body")
    if not body.get("model"):
        return LineError(line, "missing_required_parameter", "`body.model` is required.", "body.model")
    if body.get("stream"):
        return LineError(line, "invalid_value", "Requests of a batch cannot stream.", "body.stream")
    try:
        data, params = TRANSLATIONS[endpoint](body)
    except ApiError as exc:
        return LineError(line, exc.error_code, exc.message, f"body.{exc.param}" if exc.param else "body")
    return BatchRequest(line=line, custom_id=custom_id, data=data, params=params, model=body.get("model"))


def openai_requests(data: bytes, endpoint: str) -> tuple[list[BatchRequest], list[LineError]]:
    records, errors = jsonl_records(data)
    requests: list[BatchRequest] = []
    for line, record in records:
        item = _request(line, record, endpoint)
        (errors if isinstance(item, LineError) else requests).append(item)  # type: ignore[arg-type]
    return requests, sorted(errors, key=lambda error: error.line)


# ---------------------------------------------------------------- output lines and the batch object


def _seconds(value: Any) -> int | None:
    return None if value is None else int(value.timestamp())


def openai_batch(batch: Batch) -> dict[str, Any]:
    return {
        "id": batch.public_id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
        "input_file_id": batch.input_file.public_id if batch.input_file_id and batch.input_file else None,
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": batch.output_file.public_id if batch.output_file_id and batch.output_file else None,
        "error_file_id": batch.error_file.public_id if batch.error_file_id and batch.error_file else None,
        "created_at": _seconds(batch.created_at),
        "in_progress_at": _seconds(batch.in_progress_at),
        "expires_at": _seconds(batch.expires_at),
        "finalizing_at": _seconds(batch.finalizing_at),
        "completed_at": _seconds(batch.completed_at),
        "failed_at": _seconds(batch.failed_at),
        "expired_at": _seconds(batch.expired_at),
        "cancelling_at": _seconds(batch.cancelling_at),
        "cancelled_at": _seconds(batch.cancelled_at),
        "request_counts": request_counts(batch),
        "metadata": batch.metadata,
    }


# ---------------------------------------------------------------- views


class BatchesApi(OpenAIView):
    """Creating a batch needs the scope of its endpoint's capability (checked where it is accepted); reading and
    listing need jobs:read and show only batches of capabilities the key may use, as jobs do."""

    required_scopes = {"GET": scopes.JOBS_READ, "POST": SUBMITS_JOB}

    @property
    def read_bucket(self) -> bool:  # a batch counts once against the key's write bucket
        return self.request.method != "POST"

    def get(self, request: Request) -> Response:
        raw = request.query_params.get("limit", "20")
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 100:
            raise ApiError("`limit` must be an integer from 1 to 100.", code="invalid_value", param="limit")
        found = selectors.batches_of(partner=self.partner, capabilities=self.allowed_capabilities)
        after = request.query_params.get("after")
        if after:
            last = selectors.batch_of(partner=self.partner, batch_id=after, capabilities=self.allowed_capabilities)
            found = found.filter(created_at__lte=last.created_at).exclude(created_at=last.created_at, id__gte=last.pk)
        page = list(found.order_by("-created_at", "-id")[: int(raw) + 1])
        data = [openai_batch(refreshed(batch)) for batch in page[: int(raw)]]
        return Response(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": len(page) > int(raw),
            }
        )

    def post(self, request: Request) -> Response:
        self.check_request_rate(request, "write", settings.ALLIANCE_API_KEY_WRITE_RPM)
        body = self.body()
        unknown = sorted(set(body) - CREATE_FIELDS)
        if unknown:
            raise ApiError(f"Unknown parameter {unknown[0]!r}.", code="unknown_parameter", param=unknown[0])
        endpoint = body.get("endpoint")
        if endpoint not in ENDPOINTS:
            raise ApiError(
                f"`endpoint` must be one of: {', '.join(ENDPOINTS)}.", code="invalid_value", param="endpoint"
            )
        if not self.has_scope(ENDPOINTS[endpoint]):
            raise ApiError(
                f"This API key lacks the scope this operation needs: `{ENDPOINTS[endpoint]}`.",
                code="insufficient_scope",
                status_code=403,
                param="endpoint",
                details=[{"required_scopes": [ENDPOINTS[endpoint]]}],
            )
        window = body.get("completion_window")
        if window != "24h":
            raise ApiError("`completion_window` must be 24h.", code="invalid_value", param="completion_window")
        metadata = metadata_of(body.get("metadata"))
        stored, data = input_file_of(self, body.get("input_file_id"), "input_file_id")
        requests, errors = openai_requests(data, endpoint)
        fields = {
            "api_key": self.api_key,
            "api": BatchApi.OPENAI,
            "capability": ENDPOINTS[endpoint],
            "endpoint": endpoint,
            "input_file": stored,
            "completion_window": window,
            "metadata": metadata,
        }
        try:
            batch = batches.batch_create(requests=requests, line_errors=errors, **fields)
        except batches.BatchInvalid as invalid:
            batch = batches.batch_create_failed(errors=invalid.errors, **fields)
        return Response(openai_batch(batch))


class BatchDetailApi(OpenAIView):
    required_scopes = {"GET": scopes.JOBS_READ}

    def get(self, request: Request, batch_id: str) -> Response:
        batch = selectors.batch_of(partner=self.partner, batch_id=batch_id, capabilities=self.allowed_capabilities)
        return Response(openai_batch(refreshed(batch)))


class BatchCancelApi(OpenAIView):
    required_scopes = {"POST": scopes.JOBS_WRITE}

    def post(self, request: Request, batch_id: str) -> Response:
        batch = selectors.batch_of(partner=self.partner, batch_id=batch_id, capabilities=self.allowed_capabilities)
        return Response(openai_batch(refreshed(batches.batch_cancel(batch=batch))))
