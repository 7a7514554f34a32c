"""The web half of tuning jobs: validate a request, estimate it, create it (charged), send it, cancel it.

The worker half (claim, train, record progress, finish, reap) is inference.services.tuning_runs.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from alliance.errors import Conflict, InvalidInput, NotFound, invalid_input_from
from inference import dispatch, tuning_config
from inference.models import Dataset, TuningEvent, TuningJob, TuningStatus
from partners.models import ApiKey, Partner
from partners.services import quota_for, usage_charge, usage_refund

logger = logging.getLogger(__name__)


def tuning_request_validated(*, partner: Partner, body: Any) -> tuple[dict[str, Any], Dataset]:
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object.", code="invalid_body")
    request = tuning_config.TuningRequest(data=body)
    if not request.is_valid():
        raise invalid_input_from(request.errors)
    clean = dict(request.validated_data)
    clean["hyperparameters"] = dict(clean.get("hyperparameters") or {})
    dataset = Dataset.objects.filter(partner=partner, public_id=clean["dataset"]).first()
    if dataset is None:
        raise NotFound("No dataset with that id.", code="dataset_not_found", param="dataset")
    if dataset.task != clean["task"]:
        raise InvalidInput(
            f"The dataset was uploaded for {dataset.task}, not {clean['task']}.", code="task_mismatch", param="task"
        )
    return clean, dataset


def tuning_estimate(*, dataset: Dataset, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    return tuning_config.estimate(dataset.task, dataset.stats, hyperparameters)


def tuning_job_create(*, api_key: ApiKey, body: Any) -> TuningJob:
    """Validates and charges the training tokens against the partner's tuning quota, then enqueues the job."""
    partner = api_key.partner
    clean, dataset = tuning_request_validated(partner=partner, body=body)
    figures = tuning_estimate(dataset=dataset, hyperparameters=clean["hyperparameters"])
    quota = quota_for(partner=partner, capability=tuning_config.QUOTA_KEY)
    with transaction.atomic():
        job = TuningJob.objects.create(
            partner=partner,
            api_key=api_key,
            dataset=dataset,
            task=clean["task"],
            base_model=clean["base_model"],
            method=clean["method"],
            hyperparameters=clean["hyperparameters"],
            units=figures["units"],
            progress={"step": 0, "total_steps": None, "epoch": 0, "loss": None, "eta_seconds": None},
            enqueued_at=timezone.now(),
        )
        usage_charge(quota=quota, api_key=api_key, job_id=job.pk, units=figures["units"])
        tuning_event_add(job=job, message="Tuning job created.", estimate=figures)
        transaction.on_commit(lambda: tuning_job_enqueue(job))
    return job


def tuning_job_enqueue(job: TuningJob) -> None:
    """Sends the job id to the tuning queue. A failed send leaves the job queued for the reaper to send again."""
    try:
        dispatch.send(dispatch.RUN_TUNING_JOB, str(job.pk), queue="tuning")
    except Exception:
        logger.warning("enqueue of tuning job %s failed; the reaper will send it again", job.pk, exc_info=True)


@transaction.atomic
def tuning_job_cancel(*, job: TuningJob) -> TuningJob:
    canceled = TuningJob.objects.filter(pk=job.pk, status__in=[TuningStatus.QUEUED, TuningStatus.RUNNING]).update(
        status=TuningStatus.CANCELED, finished_at=timezone.now()
    )
    job.refresh_from_db()
    if not canceled:
        raise Conflict(f"The tuning job is already {job.status}.", code="job_finished")
    usage_refund(job_id=job.pk)
    tuning_event_add(job=job, message="Canceled by the partner; its units are refunded.")
    return job


def tuning_event_add(*, job: TuningJob, message: str, level: str = "info", **data: Any) -> TuningEvent:
    """A message in the job's history (created, training, finished, failed, canceled)."""
    return TuningEvent.objects.create(job=job, level=level, message=message[:500], data=data)
