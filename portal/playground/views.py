"""The no-code playground.

Running a job: a session- and CSRF-protected POST that calls the same job_submit as the API, on the signed-in
partner's quota, under the member's playground key; the page then follows the job's server-sent events (its text
as it is generated, for text generation and dialogue) or polls a session endpoint for the job JSON.
Errors come back in the API's one JSON shape.
"""

from __future__ import annotations

import base64
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from alliance.api.errors import ApiError, error_json_response
from alliance.api.parsers import JsonRefused, json_loads_bounded
from alliance.errors import DomainError, NotFound
from capabilities import CAPABILITIES, CORE_CAPABILITIES
from inference import selectors
from inference.images import MAX_IMAGE_BYTES
from inference.models import Job
from inference.registry import model_specs
from inference.representations import job_representation
from inference.selectors import tuned_models_of
from inference.services import capability_for_submission, job_request_submit
from inference.sse import native_events, sse_response
from inference.tuning_config import TASK_CAPABILITY
from partners.models import Membership
from portal.access import RUN_ROLE, current_membership, member_who_runs, role_at_least
from portal.catalogue import catalogue
from portal.playground.keys import playground_key_for
from portal.script_texts import PLAYGROUND_TEXTS
from usecases.selectors import try_it, usecase_for_viewer

# The capabilities the playground has a form for (the API also serves embeddings).
PLAYGROUND_CAPABILITIES = CORE_CAPABILITIES


def _preset(request: HttpRequest) -> dict[str, Any]:
    """The capability and input to start with: a showcase's 'Try it', or a capability's own example."""
    name = request.GET.get("capability")
    slug = request.GET.get("usecase")
    usecase = usecase_for_viewer(slug=slug, user=request.user) if slug else None
    if usecase is not None:
        target = try_it(usecase)
        if target is not None and (not name or name == target[0]):
            return {
                "capability": target[0],
                "input": target[1],
                "usecase": {"slug": usecase.slug, "title": usecase.title},
            }
    if name not in PLAYGROUND_CAPABILITIES or name not in CAPABILITIES:
        name = "text_classification"
    return {"capability": name, "input": CAPABILITIES[name].example_input, "usecase": None}


def model_options(membership: Membership | None) -> list[dict[str, Any]]:
    """The models the playground offers: each capability's registry models (its default first) and, for a member,
    their own partner's tuned models, never another partner's."""
    options = []
    specs = model_specs()
    for name in PLAYGROUND_CAPABILITIES:
        default = CAPABILITIES[name].default_model
        names = [
            default,
            *sorted(spec for spec, model in specs.items() if name in model.capabilities and spec != default),
        ]
        options += [{"capability": name, "name": model, "tuned": False, "default": model == default} for model in names]
    if membership is not None:
        for tuned in tuned_models_of(partner=membership.partner).order_by("-created_at"):
            capability = TASK_CAPABILITY.get(tuned.task)
            if capability in PLAYGROUND_CAPABILITIES:
                options.append({"capability": capability, "name": tuned.name, "tuned": True, "default": False})
    return options


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    membership = current_membership(request)
    can_run = membership is not None and role_at_least(membership.role, RUN_ROLE)
    preset = _preset(request)
    context = {
        "models": model_options(membership),
        "capabilities": catalogue(),
        "preset": preset,
        "membership": membership,
        "can_run": can_run,
        "preset_usecase": preset["usecase"],
        "texts": PLAYGROUND_TEXTS,
    }
    return render(request, "playground/playground.html", context)


def _json_field(request: HttpRequest, name: str) -> Any:
    raw = request.POST.get(name, "")
    if not raw:
        return None
    try:
        return json_loads_bounded(raw)
    except JsonRefused as exc:
        raise ApiError(f"`{name}` must be JSON: {exc}", code="invalid_json", param=name) from None


def _attach_upload(request: HttpRequest, data: Any, image_fields: tuple[str, ...]) -> Any:
    """An uploaded image goes into the input as base64, so job_submit checks and stores it as the API would."""
    upload = request.FILES.get("image")
    if upload is None or not image_fields:
        return data
    if upload.size > MAX_IMAGE_BYTES:
        raise ApiError(
            f"The image is {upload.size} bytes; the limit is {MAX_IMAGE_BYTES}.",
            code="image_too_large",
            status_code=413,
            param=f"input.{image_fields[0]}",
        )
    data = dict(data) if isinstance(data, dict) else {}
    data[image_fields[0]] = base64.b64encode(upload.read()).decode("ascii")
    return data


@never_cache
@require_POST
def run(request: HttpRequest) -> JsonResponse:
    try:
        membership = member_who_runs(request, what="the playground")
        capability = capability_for_submission(request.POST.get("capability"))
        data = _attach_upload(request, _json_field(request, "input"), capability.image_fields)
        submission = job_request_submit(
            api_key=playground_key_for(membership),
            capability=capability.name,
            data=data,
            params=_json_field(request, "params"),
            model=request.POST.get("model") or None,  # a registry model, or the partner's own tuned model
        )
    except (ApiError, DomainError) as exc:
        return error_json_response(exc)
    job = submission.job
    return JsonResponse(job_representation(job), status=200 if job.is_finished else 202)


def _member_job(request: HttpRequest, job_id: str) -> Job | HttpResponse:
    """The signed-in member's partner's job, or the error answer (401 signed out, 404 not theirs)."""
    membership = current_membership(request)
    if membership is None:
        return error_json_response(
            ApiError("Sign in to see playground jobs.", code="not_authenticated", status_code=401)
        )
    try:
        return selectors.job_of(partner=membership.partner, job_id=job_id)
    except NotFound as exc:
        return error_json_response(exc)


@never_cache
@require_GET
def job(request: HttpRequest, job_id: str) -> JsonResponse:
    found = _member_job(request, job_id)
    if isinstance(found, HttpResponse):
        return found
    return JsonResponse(job_representation(found))


@never_cache
@require_GET
def job_events(request: HttpRequest, job_id: str) -> HttpResponse:
    """The job's events (status, token, job) as GET /api/v1/jobs/<id>/events gives them, for the signed-in member."""
    found = _member_job(request, job_id)
    if isinstance(found, HttpResponse):
        return found
    return sse_response(request, found, native_events)
