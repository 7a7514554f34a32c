"""Running a showcase's recipe: each step a real job on the runner's partner quota, step N+1 submitted when step N
finishes (recipe_runs_advance_for_jobs, called on inference.signals.jobs_finished in the process that finished the
job, so the continuation happens in the worker; recipe_run_advance is also safe to call from a reader, and does
nothing twice). A succeeded run can be recorded as one of the showcase's results: its generated images become the
showcase's pictures, and every visitor sees its steps."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import File
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from alliance.errors import Conflict, DomainError, Forbidden, InvalidInput
from inference.images import file_path
from inference.models import Job, JobStatus, StoredFile
from inference.services import job_request_submit
from partners.models import ApiKey, Partner
from partners.selectors import api_key_named
from partners.services import actor_for, api_key_issue, audit_record
from usecases import recipes
from usecases.models import RecipeRun, RecipeRunStatus, RecipeRunStep, UseCase
from usecases.services import EDITABLE_STATUSES, UseCaseTransitionError, recipe_validate, usecase_image_add

logger = logging.getLogger(__name__)

FINAL_JOB_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


@transaction.atomic
def usecase_recipe_set(*, usecase: UseCase, user: AbstractBaseUser | None, recipe: Any) -> UseCase:
    """Sets a draft's (or rejected showcase's) recipe; a published one changes only through review again."""
    if usecase.status not in EDITABLE_STATUSES:
        raise UseCaseTransitionError(f"A showcase that is {usecase.get_status_display().lower()} cannot be edited.")
    usecase.recipe = recipe_validate(partner=usecase.partner, recipe=recipe)
    usecase.save(update_fields=["recipe", "updated_at"])
    audit_record(partner=usecase.partner, actor=actor_for(user=user), action="usecase.recipe_set", target=usecase.slug)
    return usecase


@transaction.atomic
def recipe_run_start(
    *,
    usecase: UseCase,
    api_key: ApiKey,
    inputs: Any,
    user: AbstractBaseUser | None = None,
    record_when_done: bool = False,
    recipe: dict[str, Any] | None = None,
) -> RecipeRun:
    """Starts a run of the showcase's recipe under this key (its partner's quota and rate limits): the first step's
    job is submitted now; a refusal (quota, scope, input) leaves no run and no charge. `recipe` (the platform's own
    recordings only, checked by the caller) runs a variant of it, e.g. with the partner's tuned model."""
    recipe = recipe or usecase.recipe
    if not recipe:
        raise Conflict("This showcase has no recipe to run.", code="no_recipe")
    clean_inputs = recipes.inputs_check(recipe, inputs)
    run = RecipeRun.objects.create(
        usecase=usecase,
        partner=api_key.partner,
        api_key=api_key,
        started_by=user,
        recipe=recipe,
        inputs=clean_inputs,
        record_when_done=record_when_done,
    )
    _submit_step(run, 0, outputs={})
    audit_record(
        partner=api_key.partner,
        actor=actor_for(user=user, api_key=None if user else api_key),
        action="usecase.recipe_run_started",
        target=usecase.slug,
        data={"run": str(run.pk)},
    )
    return run


def _submit_step(run: RecipeRun, position: int, *, outputs: dict[str, Any]) -> RecipeRunStep:
    step = run.recipe["steps"][position]
    api_key = run.api_key
    now = timezone.now()
    if api_key is None or api_key.revoked_at is not None or (api_key.expires_at and api_key.expires_at <= now):
        raise Forbidden("The key this run was started with is revoked or expired.", code="key_revoked")
    try:
        data = recipes.render(step["input"], inputs=run.inputs, outputs=outputs)
    except recipes.RecipeInvalid as exc:
        raise InvalidInput(exc.message, code=exc.code, param=f"steps.{step['id']}.input") from None
    submission = job_request_submit(
        api_key=api_key,
        capability=step["capability"],
        data=data,
        params=step.get("params") or {},
        model=step.get("model"),
    )
    return RecipeRunStep.objects.create(run=run, position=position, step_id=step["id"], job=submission.job)


def _finish(run: RecipeRun, status: str, error: dict[str, Any] | None = None) -> None:
    run.status, run.error, run.finished_at = status, error, timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])


def recipe_run_advance(*, run_id: uuid.UUID | str) -> RecipeRun | None:
    """Moves the run on if its current step's job has finished: submits the next step, or ends the run (failed
    with the step's error, or succeeded after the last step, then recorded if it was started to be). The run's row
    is locked meanwhile, so two callers (the worker's signal and a reader) never submit a step twice."""
    record = False
    with transaction.atomic():
        run = RecipeRun.objects.select_for_update().filter(pk=run_id, status=RecipeRunStatus.RUNNING).first()
        if run is None:
            return None
        steps = list(run.steps.select_related("job"))
        current = steps[-1] if steps else None
        if current is None or current.job is None:
            _finish(run, RecipeRunStatus.FAILED, {"code": "job_gone", "message": "A step's job is gone."})
            return run
        job = current.job
        if job.status not in FINAL_JOB_STATUSES:
            return run
        if job.status != JobStatus.SUCCEEDED:
            error = job.error or {"code": job.status, "message": f"The job was {job.status}."}
            _finish(run, RecipeRunStatus.FAILED, {**error, "step": current.step_id})
            return run
        if len(steps) == len(run.recipe["steps"]):
            _finish(run, RecipeRunStatus.SUCCEEDED)
            record = run.record_when_done
        else:
            outputs = {step.step_id: step.job.output for step in steps if step.job is not None}
            try:
                with transaction.atomic():
                    _submit_step(run, len(steps), outputs=outputs)
            except DomainError as exc:
                step_id = run.recipe["steps"][len(steps)]["id"]
                _finish(run, RecipeRunStatus.FAILED, {"code": exc.code, "message": exc.message, "step": step_id})
    if record:
        recipe_run_record(run=run, user=None)
    return run


def recipe_runs_advance_for_jobs(job_ids: Iterable[str]) -> int:
    """The runs whose current step is one of these finished jobs, moved on; how many there were."""
    run_ids = set(RecipeRunStep.objects.filter(job_id__in=list(job_ids)).values_list("run_id", flat=True))
    for run_id in run_ids:
        recipe_run_advance(run_id=run_id)
    return len(run_ids)


def recipe_run_record(*, run: RecipeRun, user: AbstractBaseUser | None) -> RecipeRun:
    """Makes a succeeded run of the showcase's own partner one of its recorded results, shown to every visitor;
    each generated image becomes one of the showcase's pictures, served by the platform."""
    if run.partner_id != run.usecase.partner_id:
        raise Forbidden("Only the showcase's own partner can record its runs as results.", code="not_owner")
    if run.status != RecipeRunStatus.SUCCEEDED:
        raise Conflict(f"The run is {run.status}; only a succeeded run can be recorded.", code="run_not_succeeded")
    if run.recorded:
        return run
    images = dict(run.images)
    for step in run.steps.select_related("job"):
        image = (step.job.output or {}).get("image") if step.job else None
        if not isinstance(image, dict) or step.step_id in images:
            continue
        stored = StoredFile.objects.filter(partner_id=run.partner_id, public_id=image.get("file_id")).first()
        if stored is None or not file_path(stored).exists():
            continue
        caption = str((step.job.input or {}).get("prompt", ""))[:200]
        with file_path(stored).open("rb") as handle:
            added = usecase_image_add(
                usecase=run.usecase, user=user, image=File(handle, name=stored.filename), caption=caption
            )
        images[step.step_id] = added.pk
    run.images, run.recorded = images, True
    run.save(update_fields=["images", "recorded"])
    audit_record(
        partner=run.partner,
        actor=actor_for(user=user),
        action="usecase.recipe_run_recorded",
        target=run.usecase.slug,
        data={"run": str(run.pk)},
    )
    return run


def job_outputs(run: RecipeRun) -> dict[str, Job | None]:
    return {step.step_id: step.job for step in run.steps.select_related("job")}


RECORDER_KEY_NAME = "showcase-recorder"


def recorder_key(partner: Partner) -> ApiKey:
    """The partner's key for the runs the platform records on its showcases (visible and revocable in the portal)."""
    api_key = api_key_named(partner=partner, name=RECORDER_KEY_NAME, now=timezone.now())
    if api_key is None:
        api_key, _raw = api_key_issue(partner=partner, name=RECORDER_KEY_NAME, actor="system:record_showcases")
    return api_key


def showcase_recordings_start(
    *, usecase: UseCase, recordings: list[dict[str, str]], recipe: dict[str, Any] | None = None
) -> list[RecipeRun]:
    """Starts the runs that become the showcase's recorded results once they succeed (each recording's inputs over
    the recipe's examples), on the showcase partner's own quota; none while one of the same recipe (the showcase's,
    or the given variant) is recorded or still running."""
    recipe = recipe or usecase.recipe
    if not recipe:
        return []
    pending = Q(recorded=True) | Q(record_when_done=True, status=RecipeRunStatus.RUNNING)
    if any(run.recipe == recipe for run in usecase.runs.filter(pending).only("recipe")):
        return []
    examples = {item["name"]: item["example"] for item in recipe["inputs"]}
    api_key = recorder_key(usecase.partner)
    return [
        recipe_run_start(
            usecase=usecase, api_key=api_key, inputs={**examples, **inputs}, record_when_done=True, recipe=recipe
        )
        for inputs in recordings or [{}]
    ]
