"""Reads of jobs, always scoped to one partner: another partner's job is simply not found."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection

from django.db.models import QuerySet

from alliance.errors import NotFound
from inference.models import (
    BATCH_ID_PREFIX,
    Batch,
    Dataset,
    Job,
    StoredFile,
    TunedModel,
    TuningEvent,
    TuningEventKind,
    TuningJob,
)
from inference.tuning_config import TASK_CAPABILITY
from partners.models import Partner


def jobs_of(
    *,
    partner: Partner,
    status: str | None = None,
    capability: str | None = None,
    created_after: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
    capabilities: Collection[str] | None = None,
) -> QuerySet[Job]:
    """The partner's jobs; `capabilities` (what an API key may use; None: all) narrows them."""
    jobs = Job.objects.filter(partner=partner)
    if capabilities is not None:
        jobs = jobs.filter(capability__in=list(capabilities))
    if status:
        jobs = jobs.filter(status=status)
    if capability:
        jobs = jobs.filter(capability=capability)
    if created_after:
        jobs = jobs.filter(created_at__gte=created_after)
    if created_before:
        jobs = jobs.filter(created_at__lt=created_before)
    return jobs


def job_of(*, partner: Partner, job_id: str, capabilities: Collection[str] | None = None) -> Job:
    """One job of the partner; one of a capability outside `capabilities` (None: all) is not found either."""
    try:
        key = uuid.UUID(str(job_id))
    except ValueError:
        raise NotFound("No job with that id.", code="not_found") from None
    job = jobs_of(partner=partner, capabilities=capabilities).filter(pk=key).first()
    if job is None:
        raise NotFound("No job with that id.", code="not_found")
    return job


def file_of(*, partner: Partner, file_id: str, generated_by: Collection[str] | None = None) -> StoredFile:
    """One file of the partner; with `generated_by`, only one a job of those capabilities generated."""
    files = StoredFile.objects.filter(partner=partner, public_id=str(file_id))
    if generated_by is not None:
        files = files.filter(job__isnull=False, job__capability__in=list(generated_by))
    stored = files.first()
    if stored is None:
        raise NotFound("No file with that id.", code="not_found")
    return stored


def batches_of(*, partner: Partner, capabilities: Collection[str] | None = None) -> QuerySet[Batch]:
    """The partner's batches; `capabilities` (what an API key may use; None: all) narrows them, as for jobs."""
    found = Batch.objects.filter(partner=partner).select_related("input_file", "output_file", "error_file")
    if capabilities is not None:
        found = found.filter(capability__in=list(capabilities))
    return found


def batch_of(*, partner: Partner, batch_id: str, capabilities: Collection[str] | None = None) -> Batch:
    """One batch of the partner by its public id (batch_<hex>); another partner's is not found."""
    text = str(batch_id)
    try:
        key = uuid.UUID(text.removeprefix(BATCH_ID_PREFIX)) if text.startswith(BATCH_ID_PREFIX) else None
    except ValueError:
        key = None
    batch = batches_of(partner=partner, capabilities=capabilities).filter(pk=key).first() if key else None
    if batch is None:
        raise NotFound("No batch with that id.", code="not_found")
    return batch


def datasets_of(*, partner: Partner) -> QuerySet[Dataset]:
    return Dataset.objects.filter(partner=partner)


def dataset_of(*, partner: Partner, dataset_id: str) -> Dataset:
    dataset = Dataset.objects.filter(partner=partner, public_id=str(dataset_id)).first()
    if dataset is None:
        raise NotFound("No dataset with that id.", code="not_found")
    return dataset


def tuned_models_of(*, partner: Partner, capabilities: Collection[str] | None = None) -> QuerySet[TunedModel]:
    """The partner's tuned models; `capabilities` (what an API key may use; None: all) narrows them."""
    models = TunedModel.objects.filter(partner=partner)
    if capabilities is not None:
        models = models.filter(task__in=[task for task, name in TASK_CAPABILITY.items() if name in capabilities])
    return models


def tuning_jobs_of(*, partner: Partner) -> QuerySet[TuningJob]:
    return TuningJob.objects.filter(partner=partner).select_related("dataset")


def tuning_job_of(*, partner: Partner, job_id: str) -> TuningJob:
    try:
        key = uuid.UUID(str(job_id))
    except ValueError:
        raise NotFound("No tuning job with that id.", code="not_found") from None
    job = tuning_jobs_of(partner=partner).filter(pk=key).first()
    if job is None:
        raise NotFound("No tuning job with that id.", code="not_found")
    return job


def stored_file_for_member(*, user, file_id: str):
    """A stored file of a partner the user belongs to, or None (another partner's file is simply not found)."""
    if not user.is_authenticated:
        return None
    return StoredFile.objects.filter(public_id=str(file_id), partner__memberships__user=user).first()


def tuning_events_of(*, job: TuningJob, kind: str | None = None) -> QuerySet[TuningEvent]:
    """A tuning job's history, oldest first: messages and the worker's per-step metrics."""
    events = TuningEvent.objects.filter(job=job)
    return events.filter(kind=kind) if kind else events


def tuning_loss_curve(*, job: TuningJob, max_points: int = 2_000) -> list[list[float]]:
    """[step, loss] of every step the worker logged, thinned evenly to at most max_points (first and last kept)."""
    points = list(
        tuning_events_of(job=job, kind=TuningEventKind.METRICS)
        .filter(loss__isnull=False)
        .order_by("step")
        .values_list("step", "loss")
    )
    if len(points) > max_points > 1:
        last = len(points) - 1
        points = [points[round(i * last / (max_points - 1))] for i in range(max_points)]
    return [[step, round(loss, 5)] for step, loss in points]
