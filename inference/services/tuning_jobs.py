"""The web half of tuning jobs: validate a request, estimate it, create it (charged), send it, cancel it.

The worker half (claim, train, record progress, finish, reap) is inference.services.tuning_runs.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from alliance.errors import Conflict, InvalidInput, LimitReached, NotFound, invalid_input_from
from inference import dispatch, tuning_config
from inference.backends.tuning.recipes import default_hyperparameters
from inference.models import Dataset, TuningEvent, TuningJob, TuningStatus
from inference.services.tuning_datasets import dataset_token_groups
from inference.services.tuning_tokens import epoch_tokens
from partners.models import ApiKey, Partner
from partners.services import quota_for, usage_charge
from partners.services.quotas import partner_lock
from partners.services.usage import usage_settle

ACTIVE_STATUSES = (TuningStatus.QUEUED, TuningStatus.RUNNING)

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


def _validated_with_estimate(*, partner: Partner, body: Any) -> tuple[dict[str, Any], Dataset, dict[str, Any]]:
    clean, dataset = tuning_request_validated(partner=partner, body=body)
    figures = tuning_estimate(
        dataset=dataset,
        hyperparameters=clean["hyperparameters"],
        method=clean["method"],
        base_model=clean["base_model"],
    )
    return clean, dataset, figures


def tuning_request_estimate(*, partner: Partner, body: Any) -> tuple[Dataset, dict[str, Any]]:
    """The pre-flight figures of a tuning request, validated exactly as creating it would validate it."""
    _, dataset, figures = _validated_with_estimate(partner=partner, body=body)
    return dataset, figures


def tuning_estimate(
    *, dataset: Dataset, hyperparameters: dict[str, Any], method: str = "default", base_model: str | None = None
) -> dict[str, Any]:
    """Training tokens, quota units (one per training token) and expected seconds, before any training: the training
    rows' tokens with the base model's tokenizer (each truncated to max_length), times the epochs the run will use.
    Where that tokenizer is not readable here, characters / 4 stands in (`token_count`: "characters")."""
    base_model = base_model or tuning_config.BASE_MODELS[dataset.task][0]
    rows = dataset.stats.get("rows") if isinstance(dataset.stats, dict) else None
    resolved = {**default_hyperparameters(dataset.task, method, rows=rows), **hyperparameters}
    groups = dataset_token_groups(dataset=dataset, base_model=base_model)
    if groups is None:
        figures = tuning_config.estimate(
            dataset.task, base_model, dataset.stats, {"epochs": resolved["epochs"], **hyperparameters}
        )
        return {**figures, "token_count": "characters"}
    per_epoch = epoch_tokens(
        dataset.task,
        groups,
        fraction=float(resolved.get("validation_fraction", 0.1)),
        seed=int(resolved.get("seed", 0)),
        max_length=int(resolved["max_length"]),
    )
    epochs = int(resolved["epochs"])
    training_tokens = per_epoch * epochs
    return {
        "epochs": epochs,
        "training_tokens": training_tokens,
        "units": max(1, training_tokens),
        "expected_seconds": tuning_config.expected_seconds(base_model, training_tokens),
        "token_count": "tokenizer",
    }


def active_tuning_jobs(*, partner_id: int) -> int:
    """The partner's tuning jobs queued or running: what ALLIANCE_MAX_ACTIVE_TUNING_JOBS caps."""
    return TuningJob.objects.filter(partner_id=partner_id, status__in=ACTIVE_STATUSES).count()


def tuning_job_create(*, api_key: ApiKey, body: Any) -> TuningJob:
    """Validates and charges the training tokens against the partner's tuning quota, then enqueues the job; at most
    ALLIANCE_MAX_ACTIVE_TUNING_JOBS of a partner queued or running at once (429 `too_many_tuning_jobs`)."""
    partner = api_key.partner
    clean, dataset, figures = _validated_with_estimate(partner=partner, body=body)
    quota = quota_for(partner=partner, capability=tuning_config.QUOTA_KEY)
    with transaction.atomic():
        partner_lock(partner_id=partner.pk)  # the count below holds until this job is written
        active = active_tuning_jobs(partner_id=partner.pk)
        limit = settings.ALLIANCE_MAX_ACTIVE_TUNING_JOBS
        if active >= limit:
            raise LimitReached(
                f"{active} tuning jobs of this partner are queued or running; at most {limit} may be at once. "
                "Wait for one to finish, or cancel one.",
                code="too_many_tuning_jobs",
            )
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
    """Cancels a queued or running job. A queued job is refunded in full; a running one keeps the charge for the
    tokens it trained up to its last recorded step (the worker stops before its next step) and is refunded the rest.
    """
    locked = TuningJob.objects.select_for_update().filter(pk=job.pk).first()
    if locked is None or locked.status not in ACTIVE_STATUSES:
        job.refresh_from_db()
        raise Conflict(f"The tuning job is already {job.status}.", code="job_finished")
    trained = int((locked.progress or {}).get("trained_tokens") or 0) if locked.status == TuningStatus.RUNNING else 0
    TuningJob.objects.filter(pk=job.pk).update(status=TuningStatus.CANCELED, finished_at=timezone.now())
    refunded = tuning_job_settle(job=locked, trained_tokens=trained)
    job.refresh_from_db()
    tuning_event_add(
        job=job,
        message=f"Canceled by the partner after {trained} trained tokens; {refunded} units refunded.",
        trained_tokens=trained,
        refunded_units=refunded,
    )
    return job


def tuning_job_settle(*, job: TuningJob, trained_tokens: int) -> int:
    """Keeps the charge for the tokens trained (at most the units charged) and refunds the rest, once; the job's
    units become what it is charged. Runs in the transaction of the conditional UPDATE that ended the job."""
    refunded = usage_settle(job_id=job.pk, used_units=trained_tokens) or 0
    if refunded:
        TuningJob.objects.filter(pk=job.pk).update(units=F("units") - refunded)
    return refunded


def tuning_event_add(*, job: TuningJob, message: str, level: str = "info", **data: Any) -> TuningEvent:
    """A message in the job's history (created, training, finished, failed, canceled)."""
    return TuningEvent.objects.create(job=job, level=level, message=message[:500], data=data)
