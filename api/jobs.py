"""Native jobs API: submit, get, list, cancel; and the capability catalogue."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from alliance.api.errors import ApiError
from alliance.api.pagination import NewestFirstCursorPagination
from api.base import ANY_KEY, SUBMITS_JOB, PartnerApiView
from api.docs import IDEMPOTENCY_PARAMETER, JOB_EXAMPLES, WAIT_PARAMETER, JobDoc, JobListDoc, JobRequestDoc
from api.streaming import EventStreamNegotiation, native_events, sse_response
from api.waiting import AwaitsJobs, job_awaited
from capabilities import CAPABILITIES, CAPABILITY_NAMES
from inference import selectors, services
from inference.models import Job, JobStatus
from inference.registry import model_specs
from inference.representations import job_representation
from inference.services.waiting import wait_slot_take
from partners import scopes

SUBMIT_FIELDS = {"capability", "input", "params", "model", "webhook_url"}


class JobListFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=JobStatus.values, required=False)
    capability = serializers.ChoiceField(choices=CAPABILITY_NAMES, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


def _wait_seconds(request: Request) -> float | None:
    raw = request.query_params.get("wait")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        raise ApiError("`wait` must be a number of seconds.", code="invalid_wait", param="wait") from None
    if not 0 <= seconds <= 600:
        raise ApiError("`wait` must be between 0 and 600 seconds.", code="invalid_wait", param="wait")
    return seconds


@extend_schema_view(
    get=extend_schema(responses={200: JobListDoc}, parameters=[JobListFilterSerializer]),
    post=extend_schema(
        request=JobRequestDoc,
        responses={200: JobDoc, 202: JobDoc},
        examples=JOB_EXAMPLES,
        parameters=[WAIT_PARAMETER, IDEMPOTENCY_PARAMETER],
    ),
)
class JobCollectionApi(AwaitsJobs, PartnerApiView):
    required_scopes = {"GET": scopes.JOBS_READ, "POST": SUBMITS_JOB}

    @property
    def read_bucket(self) -> bool:  # submissions are counted against the capability's rpm instead
        return self.request.method != "POST"

    def get(self, request: Request) -> Response:
        filters = JobListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        jobs = selectors.jobs_of(partner=self.partner, capabilities=self.allowed_capabilities, **filters.validated_data)
        paginator = NewestFirstCursorPagination()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response([job_representation(job) for job in page])

    def post(self, request: Request) -> Response:
        body = request.data
        if not isinstance(body, dict):
            raise ApiError("The request body must be a JSON object.", code="invalid_body")
        unknown = sorted(set(body) - SUBMIT_FIELDS)
        if unknown:
            raise ApiError(f"Unknown field {unknown[0]!r}.", code="unknown_field", param=unknown[0])
        wait = _wait_seconds(request)
        fields = {
            "capability": body.get("capability"),
            "data": body.get("input"),
            "params": body.get("params"),
            "model": body.get("model"),
            "idempotency_key": request.headers.get("Idempotency-Key"),
            "webhook_url": body.get("webhook_url"),
        }
        if not wait:
            return _job_answer(self.submit_job(**fields).job)
        return job_awaited(self, timeout=wait, answer=_job_answer, submit=lambda: self.submit_job(**fields).job)


def _job_answer(job: Job) -> Response:
    """200 with the finished job; 202 with the job still queued or running."""
    code = status.HTTP_200_OK if job.is_finished else status.HTTP_202_ACCEPTED
    response = Response(job_representation(job), status=code)
    response["Location"] = f"/api/v1/jobs/{job.pk}"
    return response


@extend_schema_view(get=extend_schema(responses={200: JobDoc}))
class JobDetailApi(PartnerApiView):
    required_scopes = {"GET": scopes.JOBS_READ}

    def get(self, request: Request, job_id: str) -> Response:
        job = selectors.job_of(partner=self.partner, job_id=job_id, capabilities=self.allowed_capabilities)
        return Response(job_representation(job))


@extend_schema_view(get=extend_schema(responses={(200, "text/event-stream"): str}))
class JobEventsApi(PartnerApiView):
    """The job's events as server-sent events: `status` when its status changes, `token` for each piece of text as
    the worker generates it (text_generation, dialogue), and last `job`, the job as GET /jobs/<id> shows it; then
    the response ends. A job submitted earlier replays what it produced so far, then follows; a finished one
    replays and ends. Disconnecting does not cancel the job."""

    required_scopes = {"GET": scopes.JOBS_READ}
    content_negotiation_class = EventStreamNegotiation

    def get(self, request: Request, job_id: str) -> Any:
        job = selectors.job_of(partner=self.partner, job_id=job_id, capabilities=self.allowed_capabilities)
        slot = wait_slot_take(api_key=self.api_key, hold_seconds=settings.ALLIANCE_STREAM_MAX_SECONDS + 30)
        return sse_response(request, job, native_events, on_close=slot.release)


@extend_schema_view(post=extend_schema(request=None, responses={200: JobDoc}))
class JobCancelApi(PartnerApiView):
    required_scopes = {"POST": scopes.JOBS_WRITE}

    def post(self, request: Request, job_id: str) -> Response:
        job = selectors.job_of(partner=self.partner, job_id=job_id, capabilities=self.allowed_capabilities)
        job = services.job_cancel(job=job)
        return Response(job_representation(job))


class CapabilityListApi(PartnerApiView):
    required_scopes = {"GET": ANY_KEY}

    def get(self, request: Request) -> Response:
        specs = model_specs()
        data: list[dict[str, Any]] = []
        for name in CAPABILITY_NAMES:
            capability = CAPABILITIES.get(name)
            data.append(
                {
                    "name": name,
                    "available": capability is not None,
                    "description": capability.description if capability else "",
                    "default_model": capability.default_model if capability else None,
                    "models": [spec.name for spec in specs.values() if name in spec.capabilities],
                    "allowed": self.api_key.allows(name),
                    "example_input": capability.example_input if capability else None,
                }
            )
        return Response({"object": "list", "data": data})
