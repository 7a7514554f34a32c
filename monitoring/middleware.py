"""The operations middleware, first in MIDDLEWARE: answers /healthz and /readyz before anything else runs (no host
check, no session, no database unless readiness asks it), gives every other request an id (X-Request-ID, kept from
a proxy when it is a plain token), writes one JSON line per request and counts requests and limit rejections."""

from __future__ import annotations

import json
import time
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse

from monitoring import logs, metrics
from monitoring.views import healthz, readyz

HEALTH_PATHS = {"/healthz": healthz, "/readyz": readyz}
_REJECTION_STATUSES = {413, 429}
_REJECTION_CODES = {"quota_exceeded", "rate_limited", "too_many_waiting", "storage_quota_exceeded"}


def _rejection_code(response: HttpResponse) -> str | None:
    if response.status_code not in _REJECTION_STATUSES or getattr(response, "streaming", False):
        return None
    try:
        code = json.loads(response.content)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    if response.status_code == 429:
        return str(code or "http_429")
    return str(code) if code in _REJECTION_CODES else None


def _partner(request: HttpRequest) -> str | None:
    api_key = getattr(request, "auth", None)  # DRF sets the authenticated key on the Django request too
    partner = getattr(api_key, "partner", None)
    return getattr(partner, "slug", None)


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_SECRET_PARTS = ("token", "secret", "password")


def _logged_path(request: HttpRequest) -> str:
    """The path with the values of secret URL parts (an invitation's token) masked."""
    path = request.path
    match = getattr(request, "resolver_match", None)
    for name, value in match.kwargs.items() if match is not None else ():
        if any(part in name.lower() for part in _SECRET_PARTS) and str(value):
            path = path.replace(str(value), "[redacted]")
    return path


def _finish(request: HttpRequest, response: HttpResponse, started: float, request_id: str) -> None:
    elapsed = time.monotonic() - started
    response[logs.REQUEST_ID_HEADER] = request_id
    method = request.method if request.method in _METHODS else "other"  # bounded label values
    metrics.HTTP_REQUESTS.labels(method, str(response.status_code)).inc()
    metrics.HTTP_LATENCY.labels(method).observe(elapsed)
    fields: dict[str, Any] = {
        "request_id": request_id,
        "method": method,
        "path": _logged_path(request),
        "status": response.status_code,
        "duration_ms": round(elapsed * 1000, 1),
    }
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        fields["route"] = match.route
    if partner := _partner(request):
        fields["partner"] = partner
    if code := _rejection_code(response):
        metrics.REJECTIONS.labels(code).inc()
        fields["rejected"] = code
    logs.event("request", **fields)
    if match is not None and match.url_name == "job-cancel" and response.status_code == 200:
        _log_cancel(response, fields.get("partner"))


def _log_cancel(response: HttpResponse, partner: str | None) -> None:
    """A cancellation is a job state change the web makes (the API's own answer says which)."""
    try:
        job = json.loads(response.content)
    except ValueError:
        return
    if isinstance(job, dict) and job.get("status") == "canceled":
        logs.event(
            "job.canceled",
            job_id=job.get("id"),
            partner=partner,
            capability=job.get("capability"),
            model=job.get("model"),
        )


class OperationsMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self.__acall__(request)
        if health := HEALTH_PATHS.get(request.path):
            return health(request)
        started = time.monotonic()
        request_id = logs.request_id_from(request.headers.get(logs.REQUEST_ID_HEADER))
        request.request_id = request_id
        token = logs.request_id_var.set(request_id)
        try:
            response = self.get_response(request)
            _finish(request, response, started, request_id)
            return response
        finally:
            logs.request_id_var.reset(token)

    async def __acall__(self, request: HttpRequest):
        if health := HEALTH_PATHS.get(request.path):
            return await sync_to_async(health)(request)
        started = time.monotonic()
        request_id = logs.request_id_from(request.headers.get(logs.REQUEST_ID_HEADER))
        request.request_id = request_id
        token = logs.request_id_var.set(request_id)
        try:
            response = await self.get_response(request)
            _finish(request, response, started, request_id)
            return response
        finally:
            logs.request_id_var.reset(token)
