from __future__ import annotations

from urllib.parse import urlencode

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import get_language
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from alliance.api.errors import ApiError, error_json_response
from alliance.api.parsers import JsonRefused, json_loads_bounded
from alliance.errors import DomainError
from partners.models import Membership
from portal.access import RUN_ROLE, current_membership, member_who_runs, role_at_least
from portal.gallery.forms import GalleryFilterForm
from portal.gallery.runs import card_results, run_json
from portal.playground.keys import playground_key_for
from portal.script_texts import RECIPE_TEXTS
from usecases import recipes
from usecases.images import served_content_type
from usecases.models import RecipeRun, UseCase
from usecases.runs import recipe_run_advance, recipe_run_record, recipe_run_start
from usecases.selectors import (
    image_for_viewer,
    published_usecases,
    recorded_runs,
    run_for_viewer,
    try_it,
    usecase_for_viewer,
    with_recorded_runs,
)


def gallery(request: HttpRequest) -> HttpResponse:
    form = GalleryFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    filters = {key: value for key, value in filters.items() if value}
    usecases = published_usecases(
        sector=filters.get("sector"),
        capability=filters.get("capability"),
        partner=filters.get("partner"),
        query=filters.get("q"),
    ).prefetch_related("images")
    usecases = list(with_recorded_runs(usecases))
    for usecase in usecases:
        usecase.card_results = card_results(usecase)
    featured = [] if filters else [usecase for usecase in usecases if usecase.featured]
    return render(
        request,
        "gallery/gallery.html",
        {"form": form, "filtered": bool(filters), "usecases": usecases, "featured": featured},
    )


def playground_url(usecase) -> str | None:
    target = try_it(usecase)
    if target is None:
        return None
    return reverse("playground:index") + "?" + urlencode({"capability": target[0], "usecase": usecase.slug})


def usecase_detail(request: HttpRequest, slug: str) -> HttpResponse:
    usecase = usecase_for_viewer(slug=slug, user=request.user)
    if usecase is None:
        raise Http404("No such showcase.")
    membership = current_membership(request)
    context = {"usecase": usecase, "images": usecase.images.all(), "try_url": playground_url(usecase)}
    if usecase.recipe:
        recorded = [run_json(request, run, own=False) for run in recorded_runs(usecase)]
        tuned = {step["model"]: step["tuned"] for run in recorded for step in run["steps"] if step.get("tuned")}
        context.update(
            recipe=recipes.localized(usecase.recipe, get_language()),
            texts=RECIPE_TEXTS,
            recorded=recorded,
            tuned_models=[
                {"name": name, **figures}
                for name, figures in tuned.items()
                if figures["accuracy"] is not None and figures["held_out"]
            ],
            recipe_code=recipes.python_script(usecase.recipe, base_url=request.build_absolute_uri("/")),
            can_run=membership is not None and role_at_least(membership.role, RUN_ROLE),
            membership=membership,
        )
    return render(request, "gallery/detail.html", context)


def _runner(request: HttpRequest) -> Membership:
    return member_who_runs(request, what="a recipe; visitors see its recorded runs")


def _runnable(request: HttpRequest, slug: str) -> UseCase:
    usecase = usecase_for_viewer(slug=slug, user=request.user)
    if usecase is None:
        raise ApiError("No such showcase.", code="not_found", status_code=404)
    return usecase


@never_cache
@require_POST
def recipe_run_create(request: HttpRequest, slug: str) -> JsonResponse:
    """Runs the showcase's recipe as real jobs on the signed-in member's partner quota (their playground key)."""
    try:
        membership = _runner(request)
        usecase = _runnable(request, slug)
        try:
            body = json_loads_bounded(request.body or b"{}")
        except JsonRefused as exc:
            raise ApiError(f"The body must be JSON: {exc}", code="invalid_json") from None
        inputs = body.get("inputs") if isinstance(body, dict) else None
        run = recipe_run_start(
            usecase=usecase, api_key=playground_key_for(membership), inputs=inputs, user=request.user
        )
    except (ApiError, DomainError) as exc:
        return error_json_response(exc)
    return JsonResponse(run_json(request, run, own=True), status=202)


def _own_or_recorded(request: HttpRequest, slug: str, run_id: str) -> tuple[RecipeRun, bool]:
    usecase = _runnable(request, slug)
    membership = current_membership(request)
    partner = membership.partner if membership is not None else None
    run = run_for_viewer(usecase=usecase, run_id=run_id, partner=partner)
    if run is None:
        raise ApiError("No such run.", code="not_found", status_code=404)
    return run, partner is not None and run.partner_id == partner.pk


@never_cache
@require_GET
def recipe_run_detail(request: HttpRequest, slug: str, run_id: str) -> JsonResponse:
    """The run with each step as it stands (the page polls it); moves the run on if a step's end was missed."""
    try:
        run, own = _own_or_recorded(request, slug, run_id)
    except ApiError as exc:
        return error_json_response(exc)
    if run.status == "running":
        run = recipe_run_advance(run_id=run.pk) or run
        run.refresh_from_db()
    return JsonResponse(run_json(request, run, own=own))


@never_cache
@require_POST
def recipe_run_record_view(request: HttpRequest, slug: str, run_id: str) -> JsonResponse:
    """The showcase's own partner keeps a succeeded run as one of its results."""
    try:
        membership = _runner(request)
        run, own = _own_or_recorded(request, slug, run_id)
        if not own:
            raise ApiError("No such run.", code="not_found", status_code=404)
        if run.usecase.partner_id != membership.partner_id:
            raise ApiError("Only the showcase's own partner can record its runs.", code="not_owner", status_code=403)
        run = recipe_run_record(run=run, user=request.user)
    except (ApiError, DomainError) as exc:
        return error_json_response(exc)
    return JsonResponse(run_json(request, run, own=True))


def usecase_image(request: HttpRequest, slug: str, image_id: int) -> FileResponse:
    image = image_for_viewer(image_id=image_id, user=request.user)
    if image is None or image.usecase.slug != slug:
        raise Http404("No such image.")
    try:
        handle = image.image.open("rb")
    except FileNotFoundError:
        raise Http404("The image is gone.") from None
    content_type = served_content_type(handle.read(16))
    if content_type is None:  # not PNG, JPEG or WebP, whatever its name says: never served
        handle.close()
        raise Http404("No such image.")
    handle.seek(0)
    response = FileResponse(handle, content_type=content_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "public, max-age=300" if image.usecase.is_public else "private, no-store"
    return response
