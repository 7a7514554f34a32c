"""/healthz, /readyz (answered by monitoring.middleware before host checks) and the operators' /metrics."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from monitoring import health, metrics


def healthz(request: HttpRequest) -> HttpResponse:
    """The process is up and answers (liveness): it checks nothing else."""
    return JsonResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


def readyz(request: HttpRequest) -> HttpResponse:
    """200 when this process can serve (readiness), else 503; the body names each check. `?family=llm` (repeatable,
    added to ALLIANCE_READY_FAMILIES) also requires a live worker serving that family. With the metrics token the
    body also names the errors and the workers' hostnames."""
    try:
        families = health.required_families(request.GET.getlist("family"))
    except ValueError as exc:
        return JsonResponse(
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "invalid",
                    "param": "family",
                    "message": f"Unknown worker family {exc.args[0]}; families: {settings.ALLIANCE_QUEUES}.",
                }
            },
            status=400,
        )
    result = health.readiness(families=families)
    return JsonResponse(
        result.as_dict(detailed=bool(_operator(request))),
        status=200 if result.ready else 503,
        headers={"Cache-Control": "no-store"},
    )


def _operator(request: HttpRequest) -> bool | None:
    """True for an operator (a bearer token equal to ALLIANCE_METRICS_TOKEN, or a staff session), False for someone
    else, None when no credentials came."""
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        expected = settings.ALLIANCE_METRICS_TOKEN
        return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), expected.encode())
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return bool(user.is_active and user.is_staff)
    return None


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    allowed = _operator(request)
    if not allowed:
        status = 401 if allowed is None else 403
        message = "Operators only: send Authorization: Bearer <ALLIANCE_METRICS_TOKEN> or sign in as staff."
        return JsonResponse(
            {
                "error": {
                    "type": "authentication_error" if status == 401 else "permission_error",
                    "code": "unauthorized" if status == 401 else "forbidden",
                    "message": message,
                    "param": None,
                }
            },
            status=status,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'} if status == 401 else {},
        )
    return HttpResponse(metrics.scrape(), content_type=CONTENT_TYPE_LATEST)
