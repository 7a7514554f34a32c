"""A seeded showcase whose result is the partner's own tuned model (the AI banker's classifier): record_showcases
uploads the showcase's dataset (usecases/data/, kept in the repository) and starts a tuning job through the
platform's own tuning path, under the partner's showcase-recorder key; once that job succeeds (on the tuning worker,
inference.signals.tuning_job_succeeded), the showcase's recordings run with the tuned model in place of the recipe's
zero-shot classifier, and become its recorded results. The page shows each tuned step with the model's accuracy on
the rows its tuning held out (usecases.selectors.tuned_model_figures)."""

from __future__ import annotations

import copy
import hashlib
import logging
from pathlib import Path
from typing import Any

from django.utils.text import slugify

from inference.models import Dataset, TunedModel, TuningJob, TuningStatus
from inference.services.tuning_datasets import dataset_create
from inference.services.tuning_jobs import tuning_job_create
from inference.tuning_config import TASK_CAPABILITY
from usecases.models import RecipeRun, UseCase
from usecases.runs import RECORDER_KEY_NAME, recorder_key, showcase_recordings_start
from usecases.services import recipe_validate

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
ACTIVE = (TuningStatus.QUEUED, TuningStatus.RUNNING)


def _showcase_jobs(usecase: UseCase, tuning: dict[str, Any]):
    """The tuning jobs the platform started for this showcase: its partner's, under the recorder key, on a dataset
    uploaded from the showcase's file."""
    return TuningJob.objects.filter(
        partner=usecase.partner,
        api_key__name=RECORDER_KEY_NAME,
        dataset__filename=Path(tuning["dataset"]).name,
        task=tuning.get("task", "classification"),
    ).order_by("-created_at")


def tuned_recipe(recipe: dict[str, Any], *, task: str, model: str) -> dict[str, Any]:
    """The recipe with every step of the tuned task's capability run by the tuned model (a tuned classifier knows
    its labels, so the step's `labels` go)."""
    capability = TASK_CAPABILITY[task]
    tuned = copy.deepcopy(recipe)
    for step in tuned["steps"]:
        if step["capability"] == capability:
            step["model"] = model
            step["input"].pop("labels", None)
    return tuned


def showcase_tuning_record(
    *, usecase: UseCase, tuning: dict[str, Any], recordings: list[dict[str, str]]
) -> tuple[str, int]:
    """Moves the showcase's tuned result on, once: with its tuned model, starts the recordings (none twice); with a
    tuning job queued or running, waits; otherwise uploads the dataset (once) and starts the tuning job. Answers what it
    did ("recording", "recorded", "tuning" or "started") and how many recipe runs it started."""
    jobs = _showcase_jobs(usecase, tuning)
    tuned = TunedModel.objects.filter(tuning_job__in=jobs).order_by("-created_at").first()
    if tuned is not None:
        runs = _record_with(usecase, tuned, recordings)
        return ("recording" if runs else "recorded"), len(runs)
    if jobs.filter(status__in=ACTIVE).exists():
        return "tuning", 0
    task = tuning.get("task", "classification")
    path = DATA_DIR / tuning["dataset"]
    data = path.read_bytes()
    uploaded = Dataset.objects.filter(partner=usecase.partner, filename=path.name, task=task)
    dataset = uploaded.filter(sha256=hashlib.sha256(data).hexdigest()).first()
    if dataset is None:  # uploaded once; a failed tuning job is tried again on the same dataset
        dataset = dataset_create(partner=usecase.partner, data=data, filename=path.name, task=task)
    body = {"dataset": dataset.public_id, "task": task, "hyperparameters": tuning.get("hyperparameters", {})}
    tuning_job_create(api_key=recorder_key(usecase.partner), body=body)
    return "started", 0


def _record_with(usecase: UseCase, tuned: TunedModel, recordings: list[dict[str, str]]) -> list[RecipeRun]:
    recipe = recipe_validate(
        partner=usecase.partner, recipe=tuned_recipe(usecase.recipe, task=tuned.task, model=tuned.name)
    )
    return showcase_recordings_start(usecase=usecase, recordings=recordings, recipe=recipe)


def tuned_showcases_record(*, job_id: str) -> int:
    """After a tuning job succeeded: the seeded showcases it was started for record their results with its model;
    how many showcases started recordings."""
    from usecases.seed import SHOWCASES

    job = TuningJob.objects.filter(pk=job_id, api_key__name=RECORDER_KEY_NAME).select_related("dataset").first()
    if job is None or job.dataset is None:
        return 0
    started = 0
    for entry in SHOWCASES:
        tuning = entry.get("tuning")
        if not tuning or Path(tuning["dataset"]).name != job.dataset.filename or entry["partner"] != job.partner.slug:
            continue
        usecase = UseCase.objects.filter(slug=slugify(entry["title"]), partner=job.partner).first()
        if usecase is not None and usecase.recipe:
            started += showcase_tuning_record(usecase=usecase, tuning=tuning, recordings=entry["recordings"])[1] > 0
    return started
