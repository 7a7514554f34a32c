"""Native batches API: many jobs of one capability accepted at once, at a lower priority than interactive jobs.

POST /api/v1/batches `{"capability", "requests": [{"custom_id", "input", "params", "model"}, ...]}` (or
`"input_file"`: an uploaded JSONL file of such lines, purpose `batch`) accepts the batch whole in one transaction,
or refuses it whole: 400 `invalid_batch` with line-numbered errors, 429 `quota_exceeded` past the remaining quota.
GET /api/v1/batches[/<id>], POST /api/v1/batches/<id>/cancel. The output file's lines are
`{"custom_id", "job": <the job as GET /api/v1/jobs/<id> shows it>}`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from alliance.api.errors import ApiError
from alliance.api.pagination import NewestFirstCursorPagination
from alliance.api.parsers import JsonRefused, json_loads_bounded
from api.base import SUBMITS_JOB, PartnerApiView
from api.openai import translate
from inference import selectors
from inference.models import Batch, BatchApi, BatchStatus, Job
from inference.representations import job_representation, timestamp
from inference.services import batches
from inference.services.batches import BatchRequest, LineError
from partners import scopes

NATIVE_ENDPOINT = "/api/v1/jobs"
CREATE_FIELDS = {"capability", "requests", "input_file", "completion_window", "metadata"}
LINE_FIELDS = {"custom_id", "input", "params", "model"}
MAX_CUSTOM_ID = 512


# ---------------------------------------------------------------- reading input lines (shared with /v1/batches)


def jsonl_records(data: bytes) -> tuple[list[tuple[int, Any]], list[LineError]]:
    """The JSON value of each non-blank line of a JSONL file (line numbers from 1), and the lines that are not JSON."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [LineError(0, "invalid_encoding", "The file is not UTF-8 text.")]
    records: list[tuple[int, Any]] = []
    errors: list[LineError] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            records.append((number, json_loads_bounded(raw)))
        except JsonRefused as exc:
            errors.append(LineError(number, "invalid_json", str(exc)))
    return records, errors


def custom_id_of(record: dict[str, Any], line: int) -> str | LineError:
    custom_id = record.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > MAX_CUSTOM_ID:
        return LineError(line, "invalid_custom_id", f"`custom_id` must be a string of 1 to {MAX_CUSTOM_ID} characters.")
    return custom_id


def native_requests(records: list[tuple[int, Any]]) -> tuple[list[BatchRequest], list[LineError]]:
    requests: list[BatchRequest] = []
    errors: list[LineError] = []
    for line, record in records:
        if not isinstance(record, dict):
            errors.append(LineError(line, "invalid_request", "Each request must be a JSON object."))
            continue
        unknown = sorted(set(record) - LINE_FIELDS)
        if unknown:
            errors.append(LineError(line, "unknown_field", f"Unknown field {unknown[0]!r}.", unknown[0]))
            continue
        custom_id = custom_id_of(record, line)
        if isinstance(custom_id, LineError):
            errors.append(custom_id)
            continue
        requests.append(
            BatchRequest(
                line=line,
                custom_id=custom_id,
                data=record.get("input"),
                params=record.get("params"),
                model=record.get("model"),
            )
        )
    return requests, errors


def metadata_of(value: Any) -> dict[str, str] | None:
    """OpenAI's metadata: up to 16 string pairs (keys up to 64 characters, values up to 512)."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or len(value) > 16
        or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in value.items()
        )
    ):
        raise ApiError(
            "`metadata` must be an object of at most 16 string values (keys up to 64 characters, values up to 512).",
            code="invalid_value",
            param="metadata",
        )
    return value


def input_file_of(view: PartnerApiView, file_id: Any, param: str) -> tuple[Any, bytes]:
    if not isinstance(file_id, str) or not file_id:
        raise ApiError(f"`{param}` must be a file id.", code="invalid_type", param=param)
    stored = selectors.file_of(partner=view.partner, file_id=file_id)
    return stored, batches.batch_input_read(stored)


# ---------------------------------------------------------------- the native shape


def request_counts(batch: Batch) -> dict[str, int]:
    counts = batches.batch_counts(batch)
    return {"total": counts.total, "completed": counts.completed, "failed": counts.failed}


def _file_id(stored_id: Any, batch: Batch, name: str) -> str | None:
    stored = getattr(batch, name)
    return stored.public_id if stored_id is not None and stored is not None else None


def batch_representation(batch: Batch) -> dict[str, Any]:
    return {
        "id": batch.public_id,
        "object": "batch",
        "capability": batch.capability,
        "endpoint": batch.endpoint,
        "status": batch.status,
        "completion_window": batch.completion_window,
        "input_file": _file_id(batch.input_file_id, batch, "input_file"),
        "output_file": _file_id(batch.output_file_id, batch, "output_file"),
        "error_file": _file_id(batch.error_file_id, batch, "error_file"),
        "errors": batch.errors,
        "request_counts": request_counts(batch),
        "usage": {"units": batch.units},
        "metadata": batch.metadata,
        "created_at": timestamp(batch.created_at),
        "in_progress_at": timestamp(batch.in_progress_at),
        "expires_at": timestamp(batch.expires_at),
        "finalizing_at": timestamp(batch.finalizing_at),
        "completed_at": timestamp(batch.completed_at),
        "failed_at": timestamp(batch.failed_at),
        "expired_at": timestamp(batch.expired_at),
        "cancelling_at": timestamp(batch.cancelling_at),
        "cancelled_at": timestamp(batch.cancelled_at),
    }


def native_line(batch: Batch, job: Job) -> dict[str, Any]:
    return {"custom_id": job.custom_id, "job": job_representation(job)}


def refreshed(batch: Batch) -> Batch:
    """The batch brought up to date (finished, with its files, once its last job has), whichever API accepted it."""
    if batch.api == BatchApi.OPENAI:
        return batches.batch_refresh(batch=batch, render=translate.batch_line)
    return batches.batch_refresh(batch=batch, render=native_line)


# ---------------------------------------------------------------- views


class BatchRequestDoc(serializers.Serializer):
    custom_id = serializers.CharField(max_length=MAX_CUSTOM_ID)
    input = serializers.DictField(help_text="The capability's input, as in POST /api/v1/jobs.")
    params = serializers.DictField(required=False)
    model = serializers.CharField(required=False)


class BatchCreateDoc(serializers.Serializer):
    capability = serializers.CharField()
    requests = BatchRequestDoc(many=True, required=False, help_text="The requests; or `input_file`.")
    input_file = serializers.CharField(required=False, help_text="An uploaded JSONL file (purpose batch) of requests.")
    completion_window = serializers.ChoiceField(choices=["24h"], required=False)
    metadata = serializers.DictField(child=serializers.CharField(), required=False)


class BatchCountsDoc(serializers.Serializer):
    total = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()


class BatchDoc(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    capability = serializers.CharField()
    endpoint = serializers.CharField()
    status = serializers.ChoiceField(choices=BatchStatus.values)
    completion_window = serializers.CharField()
    input_file = serializers.CharField(allow_null=True)
    output_file = serializers.CharField(allow_null=True)
    error_file = serializers.CharField(allow_null=True)
    errors = serializers.ListField(child=serializers.DictField(), allow_null=True)
    request_counts = BatchCountsDoc()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)


class BatchListDoc(serializers.Serializer):
    object = serializers.CharField()
    data = BatchDoc(many=True)
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)


@extend_schema_view(
    get=extend_schema(responses={200: BatchListDoc}),
    post=extend_schema(request=BatchCreateDoc, responses={201: BatchDoc}),
)
class BatchCollectionApi(PartnerApiView):
    required_scopes = {"GET": scopes.JOBS_READ, "POST": SUBMITS_JOB}

    @property
    def read_bucket(self) -> bool:  # a batch counts once against the key's write bucket
        return self.request.method != "POST"

    def get(self, request: Request) -> Response:
        paginator = NewestFirstCursorPagination()
        found = selectors.batches_of(partner=self.partner, capabilities=self.allowed_capabilities)
        page = paginator.paginate_queryset(found, request, view=self)
        return paginator.get_paginated_response([batch_representation(refreshed(batch)) for batch in page])

    def post(self, request: Request) -> Response:
        self.check_request_rate(request, "write", settings.ALLIANCE_API_KEY_WRITE_RPM)
        body = request.data
        if not isinstance(body, dict):
            raise ApiError("The request body must be a JSON object.", code="invalid_body")
        unknown = sorted(set(body) - CREATE_FIELDS)
        if unknown:
            raise ApiError(f"Unknown field {unknown[0]!r}.", code="unknown_field", param=unknown[0])
        if ("requests" in body) == ("input_file" in body):
            raise ApiError("Send either `requests` or `input_file`.", code="invalid_value", param="requests")
        input_file = None
        if "input_file" in body:
            input_file, data = input_file_of(self, body["input_file"], "input_file")
            records, errors = jsonl_records(data)
        else:
            if not isinstance(body["requests"], list):
                raise ApiError("`requests` must be a list.", code="invalid_type", param="requests")
            records, errors = list(enumerate(body["requests"], start=1)), []
        requests, line_errors = native_requests(records)
        batch = batches.batch_create(
            api_key=self.api_key,
            api=BatchApi.NATIVE,
            capability=body.get("capability"),
            endpoint=NATIVE_ENDPOINT,
            requests=requests,
            line_errors=errors + line_errors,
            input_file=input_file,
            completion_window=body.get("completion_window") or "24h",
            metadata=metadata_of(body.get("metadata")),
        )
        response = Response(batch_representation(batch), status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/batches/{batch.public_id}"
        return response


@extend_schema_view(get=extend_schema(responses={200: BatchDoc}))
class BatchDetailApi(PartnerApiView):
    required_scopes = {"GET": scopes.JOBS_READ}

    def get(self, request: Request, batch_id: str) -> Response:
        batch = selectors.batch_of(partner=self.partner, batch_id=batch_id, capabilities=self.allowed_capabilities)
        return Response(batch_representation(refreshed(batch)))


@extend_schema_view(post=extend_schema(request=None, responses={200: BatchDoc}))
class BatchCancelApi(PartnerApiView):
    required_scopes = {"POST": scopes.JOBS_WRITE}

    def post(self, request: Request, batch_id: str) -> Response:
        batch = selectors.batch_of(partner=self.partner, batch_id=batch_id, capabilities=self.allowed_capabilities)
        return Response(batch_representation(refreshed(batches.batch_cancel(batch=batch))))
