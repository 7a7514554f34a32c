from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import Prefetch, Q, QuerySet

from capabilities import CAPABILITIES
from inference.models import TunedModel, TuningEvent
from partners.models import Membership, Partner
from usecases.models import RecipeRun, UseCase, UseCaseImage, UseCaseStatus


def published_usecases(
    *,
    sector: str | None = None,
    capability: str | None = None,
    partner: str | None = None,
    query: str | None = None,
) -> QuerySet[UseCase]:
    usecases = UseCase.objects.filter(status=UseCaseStatus.PUBLISHED).select_related("partner")
    if sector:
        usecases = usecases.filter(sector=sector)
    if partner:
        usecases = usecases.filter(partner__slug=partner)
    if query:
        usecases = usecases.filter(
            Q(title__icontains=query)
            | Q(summary__icontains=query)
            | Q(story__icontains=query)
            | Q(title_ko__icontains=query)
            | Q(summary_ko__icontains=query)
            | Q(story_ko__icontains=query)
            | Q(partner__name__icontains=query)
        )
    if capability:
        usecases = with_capability(usecases, capability)
    return usecases


def with_capability(usecases: QuerySet[UseCase], capability: str) -> QuerySet[UseCase]:
    if connection.features.supports_json_field_contains:
        return usecases.filter(capabilities__contains=[capability])
    ids = [pk for pk, names in usecases.values_list("pk", "capabilities") if capability in (names or [])]
    return usecases.filter(pk__in=ids)


def gallery_partners() -> QuerySet[Partner]:
    """Partners with at least one published showcase, for the gallery's filter."""
    return Partner.objects.filter(usecases__status=UseCaseStatus.PUBLISHED).distinct().order_by("name")


def usecases_of(*, partner: Partner) -> QuerySet[UseCase]:
    return UseCase.objects.filter(partner=partner).order_by("-updated_at")


def usecases_in_review() -> QuerySet[UseCase]:
    return UseCase.objects.filter(status=UseCaseStatus.IN_REVIEW).select_related("partner")


def can_preview(usecase: UseCase, user: AbstractBaseUser | AnonymousUser) -> bool:
    """Published showcases are public; others only to the partner's members and alliance operators."""
    if usecase.is_public:
        return True
    if not user.is_authenticated:
        return False
    return user.is_staff or Membership.objects.filter(user=user, partner_id=usecase.partner_id).exists()


def usecase_for_viewer(*, slug: str, user: AbstractBaseUser | AnonymousUser) -> UseCase | None:
    usecase = UseCase.objects.select_related("partner").filter(slug=slug).first()
    return usecase if usecase is not None and can_preview(usecase, user) else None


def image_for_viewer(*, image_id: int, user: AbstractBaseUser | AnonymousUser) -> UseCaseImage | None:
    image = UseCaseImage.objects.select_related("usecase").filter(pk=image_id).first()
    return image if image is not None and can_preview(image.usecase, user) else None


def try_it(usecase: UseCase) -> tuple[str, dict[str, Any]] | None:
    """The capability and input 'Try it' opens: the chosen one, else the first listed that accepts the example."""
    names = [usecase.try_capability] if usecase.try_capability else list(usecase.capabilities)
    for name in names:
        capability = CAPABILITIES.get(name)
        if capability is None:
            continue
        example = usecase.example_input or {}
        if example and capability.input_serializer(data=example).is_valid():
            return name, example
        if usecase.try_capability:
            return name, capability.example_input
    for name in usecase.capabilities:
        if name in CAPABILITIES:
            return name, CAPABILITIES[name].example_input
    return None


# ---------------------------------------------------------------- recipe runs


def with_recorded_runs(usecases: QuerySet[UseCase]) -> QuerySet[UseCase]:
    """The showcases with `recorded_runs` (their recorded runs and each step's job) fetched in two more queries."""
    runs = RecipeRun.objects.filter(recorded=True).order_by("created_at").prefetch_related("steps__job")
    return usecases.prefetch_related(Prefetch("runs", queryset=runs, to_attr="recorded_runs"))


def recorded_runs(usecase: UseCase) -> QuerySet[RecipeRun]:
    return usecase.runs.filter(recorded=True).order_by("created_at")


def run_for_viewer(*, usecase: UseCase, run_id: str, partner: Partner | None) -> RecipeRun | None:
    """A recorded run of the showcase (public with it), or a run of the viewer's own partner; None otherwise."""
    try:
        uuid.UUID(str(run_id))
    except ValueError:
        return None
    runs = RecipeRun.objects.filter(pk=run_id, usecase=usecase)
    visible = Q(recorded=True) | Q(partner=partner) if partner is not None else Q(recorded=True)
    return runs.filter(visible).first()


def recipe_run_representation(
    run: RecipeRun, *, image_url: Callable[[int], str], file_url: Callable[[str], str] | None
) -> dict[str, Any]:
    """A run and each step's job as they stand; a generated image links to the showcase's copy (a recorded run)
    or, for the runner's own partner (file_url given), to the stored file."""
    jobs = {step.step_id: step.job for step in run.steps.select_related("job")}
    steps = []
    for step in run.recipe["steps"]:
        job = jobs.get(step["id"])
        output = dict(job.output) if job is not None and job.output else None
        if output and isinstance(output.get("image"), dict):
            image = dict(output["image"])
            if step["id"] in run.images:
                image["url"] = image_url(run.images[step["id"]])
            elif file_url is not None and image.get("file_id"):
                image["url"] = file_url(image["file_id"])
            output["image"] = image
        steps.append(
            {
                "id": step["id"],
                "title": step.get("title") or step["id"].replace("_", " ").capitalize(),
                "capability": step["capability"],
                "model": job.model
                if job is not None
                else step.get("model") or CAPABILITIES[step["capability"]].default_model,
                "status": job.status if job is not None else ("skipped" if run.status != "running" else "waiting"),
                "input": job.input if job is not None else None,
                "output": output,
                "error": job.error if job is not None else None,
                "job_id": str(job.pk) if job is not None and file_url is not None else None,
            }
        )
    return {
        "id": str(run.pk),
        "status": run.status,
        "recorded": run.recorded,
        "inputs": run.inputs,
        "error": run.error,
        "steps": steps,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def tuned_model_figures(*, partner_id: int, names: list[str]) -> dict[str, dict[str, Any]]:
    """For the partner's tuned models among `names`: what its tuning measured on the rows it held out (accuracy and
    macro-F1 for a classifier, the validation loss otherwise) and how many rows it trained on and held out."""
    figures: dict[str, dict[str, Any]] = {}
    for tuned in TunedModel.objects.filter(partner_id=partner_id, name__in=names).select_related("tuning_job"):
        job = tuned.tuning_job
        metrics = (job.result or {}).get("metrics") or {}
        split = (
            TuningEvent.objects.filter(job=job, data__has_key="validation_rows").values_list("data", flat=True).first()
            or {}
        )
        figures[tuned.name] = {
            "accuracy": metrics.get("accuracy"),
            "macro_f1": metrics.get("macro_f1"),
            "loss": metrics.get("loss"),
            "held_out": split.get("validation_rows"),
            "trained_on": split.get("train_rows"),
            "labels": tuned.labels or [],
            "method": job.method,
        }
    return figures
