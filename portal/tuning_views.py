"""Datasets and tuning in the portal: upload (with every refused line shown), the pre-flight estimate, tuning
runs with live progress, cancel, and the resulting model.

The same services as the API (inference.services.tuning_*) do the work; a run started here is charged under the
member's playground key, like playground jobs. Viewers may look; developers and up may upload, start and cancel.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from alliance.api.errors import error_body, error_json_response, status_for
from alliance.errors import DomainError, NotFound
from inference import selectors
from inference.representations import dataset_representation
from inference.services import tuning_datasets
from inference.services.tuning_jobs import tuning_job_cancel, tuning_job_create
from partners.models import Role
from portal import forms
from portal.access import portal_view
from portal.playground.keys import playground_key_for
from portal.tuning import api_error_problems, estimate_for, status_payload, tuning_body, usage_snippet

# ---------------------------------------------------------------- datasets


def _dataset_of(request: HttpRequest, dataset_id: str):
    try:
        return selectors.dataset_of(partner=request.partner, dataset_id=dataset_id)
    except NotFound:
        raise Http404("No such dataset.") from None


def _datasets_page(request: HttpRequest, *, form=None, created=None, problems=None, status: int = 200) -> HttpResponse:
    context = {
        "datasets": [dataset_representation(d) for d in selectors.datasets_of(partner=request.partner)],
        "form": form or forms.DatasetUploadForm(),
        "created": dataset_representation(created) if created else None,
        "problems": problems,
    }
    return render(request, "portal/datasets.html", context, status=status)


@portal_view()
def datasets(request: HttpRequest) -> HttpResponse:
    return _datasets_page(request)


@require_POST
@portal_view(min_role=Role.DEVELOPER)
def dataset_upload(request: HttpRequest) -> HttpResponse:
    form = forms.DatasetUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _datasets_page(request, form=form, status=400)
    upload = form.cleaned_data["file"]
    try:
        dataset = tuning_datasets.dataset_create(
            partner=request.partner, data=upload.read(), filename=upload.name or "", task=form.cleaned_data["task"]
        )
    except DomainError as exc:
        return _datasets_page(request, form=form, problems=api_error_problems(exc), status=status_for(exc))
    return _datasets_page(request, created=dataset, status=201)


@require_POST
@portal_view(min_role=Role.DEVELOPER)
def dataset_delete(request: HttpRequest, dataset_id: str) -> HttpResponse:
    dataset = _dataset_of(request, dataset_id)
    tuning_datasets.dataset_delete(dataset=dataset)
    messages.success(
        request,
        _("Dataset %(file)s (%(id)s) is deleted, with its encrypted file.")
        % {"file": dataset.filename, "id": dataset_id},
    )
    return redirect("portal:datasets")


# ---------------------------------------------------------------- tuning jobs


def _job_of(request: HttpRequest, job_id: str):
    try:
        return selectors.tuning_job_of(partner=request.partner, job_id=job_id)
    except NotFound:
        raise Http404("No such tuning job.") from None


def _start_form(request: HttpRequest, data=None) -> forms.TuningStartForm:
    initial = {"dataset": request.GET.get("dataset")} if request.GET.get("dataset") else None
    return forms.TuningStartForm(data, datasets=selectors.datasets_of(partner=request.partner), initial=initial)


def _tuning_page(request: HttpRequest, *, form=None, status: int = 200) -> HttpResponse:
    context = {
        "jobs": selectors.tuning_jobs_of(partner=request.partner).select_related("tuned_model"),
        "form": form or _start_form(request),
    }
    return render(request, "portal/tuning.html", context, status=status)


@portal_view()
def tuning_jobs(request: HttpRequest) -> HttpResponse:
    return _tuning_page(request)


@never_cache
@require_GET
@portal_view()
def tuning_estimate(request: HttpRequest) -> JsonResponse:
    """The pre-flight estimate for the start form's current choices (a read: any member may ask)."""
    form = _start_form(request, request.GET)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        return JsonResponse(error_body(400, "invalid_request", f"{field}: {errors[0]}", field), status=400)
    dataset = _dataset_of(request, form.cleaned_data["dataset"])
    body = tuning_body(dataset=dataset, method=form.cleaned_data["method"], hyperparameters=form.hyperparameters())
    try:
        figures = estimate_for(partner=request.partner, body=body)
    except DomainError as exc:
        return error_json_response(exc)
    return JsonResponse({"object": "tuning_estimate", **figures})


@require_POST
@portal_view(min_role=Role.DEVELOPER)
def tuning_start(request: HttpRequest) -> HttpResponse:
    form = _start_form(request, request.POST)
    if not form.is_valid():
        return _tuning_page(request, form=form, status=400)
    dataset = _dataset_of(request, form.cleaned_data["dataset"])
    body = tuning_body(dataset=dataset, method=form.cleaned_data["method"], hyperparameters=form.hyperparameters())
    try:
        job = tuning_job_create(api_key=playground_key_for(request.membership), body=body)
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _tuning_page(request, form=form, status=status_for(exc))
    messages.success(
        request,
        _("Tuning started on %(file)s; %(units)s units are charged.")
        % {"file": dataset.filename, "units": f"{job.units:,}"},
    )
    return redirect("portal:tuning-detail", job.pk)


@portal_view()
def tuning_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    job = _job_of(request, job_id)
    payload = status_payload(job)
    snippet = None
    if payload["model"]:
        api_url = request.build_absolute_uri("/api/v1/jobs")
        snippet = usage_snippet(model=payload["model"], task=job.task, api_url=api_url)
    trainable, total = payload["trainable_parameters"], payload["total_parameters"]
    share = round(100 * trainable / total, 3) if trainable is not None and total else None
    context = {"job": job, "payload": payload, "snippet": snippet, "trainable_share": share}
    return render(request, "portal/tuning_detail.html", context)


@never_cache
@require_GET
@portal_view()
def tuning_status(request: HttpRequest, job_id: str) -> JsonResponse:
    return JsonResponse(status_payload(_job_of(request, job_id)))


@require_POST
@portal_view(min_role=Role.DEVELOPER)
def tuning_cancel(request: HttpRequest, job_id: str) -> HttpResponse:
    job = _job_of(request, job_id)
    try:
        tuning_job_cancel(job=job)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Tuning canceled; its units are refunded."))
    return redirect("portal:tuning-detail", job.pk)
