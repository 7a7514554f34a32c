"""The human API guide at /api/guide/: the endpoints and each capability's example."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from capabilities import CAPABILITY_NAMES
from portal.catalogue import catalogue

API_ENDPOINTS = [
    (
        "POST",
        "/api/v1/jobs[?wait=S]",
        _("Submit a job: capability, input, params, model, webhook_url. Idempotency-Key header."),
    ),
    ("GET", "/api/v1/jobs", _("Your jobs, newest first: status, capability, created_after, created_before, limit.")),
    ("GET", "/api/v1/jobs/<id>", _("One job.")),
    ("POST", "/api/v1/jobs/<id>/cancel", _("Cancel a queued job (refunded) or a running one (its charge stays).")),
    ("GET", "/api/v1/capabilities", _("The eight capabilities, their models and examples.")),
    ("POST", "/api/v1/files", _("Upload an image (multipart `file`); answers its id for `image` inputs.")),
    (
        "GET",
        "/api/v1/files/<id>[/content]",
        _("A file's metadata or its bytes (generated images too). DELETE removes it."),
    ),
    ("GET", "/api/v1/usage", _("Net units and jobs per capability and day, and this month's quotas.")),
    ("GET", "/api/v1/me", _("The key's partner and scopes; the webhook signing secret with the admin scope.")),
]


@require_GET
def api_guide(request: HttpRequest) -> HttpResponse:
    capabilities = [
        {**entry, "example_json": json.dumps(entry["example"], indent=2, ensure_ascii=False)}
        for entry in catalogue(CAPABILITY_NAMES)
    ]
    return render(request, "playground/api_guide.html", {"endpoints": API_ENDPOINTS, "capabilities": capabilities})
