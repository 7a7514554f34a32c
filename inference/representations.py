"""The public JSON shape of a job (a plain function: a ModelSerializer costs ~1 ms a call on the hot path)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from inference.models import Dataset, Job, TunedModel, TuningJob
from inference.services import tuning_jobs


def timestamp(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def job_representation(job: Job) -> dict[str, Any]:
    return {
        "id": str(job.pk),
        "object": "job",
        "capability": job.capability,
        "model": job.model,
        "status": job.status,
        "input": job.input,
        "params": job.params,
        "output": job.output,
        "error": job.error,
        "usage": {"units": job.units},
        "webhook_url": job.webhook_url,
        "attempts": job.attempts,
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
    }


def dataset_representation(dataset: Dataset) -> dict[str, Any]:
    return {
        "id": dataset.public_id,
        "object": "dataset",
        "task": dataset.task,
        "purpose": dataset.purpose,
        "filename": dataset.filename,
        "format": dataset.format,
        "bytes": dataset.bytes,
        "stats": dataset.stats,
        "estimate": tuning_jobs.tuning_estimate(dataset=dataset, hyperparameters={}),
        "created_at": timestamp(dataset.created_at),
    }


def tuning_checkpoint(job: TuningJob) -> dict[str, Any] | None:
    """The epoch whose adapter a finished job saved (the best by validation loss with early stopping, else the last),
    with its losses, the step it ended at and (classification) its accuracy and macro-F1; None before the job
    succeeded."""
    metrics = (job.result or {}).get("metrics") or {}
    chosen = metrics.get("chosen_epoch")
    if not chosen:
        return None
    by_epoch = {row.get("epoch"): row for row in metrics.get("by_epoch") or []}
    planned = ((job.result or {}).get("details") or {}).get("hyperparameters", {}).get("epochs")
    total = (job.progress or {}).get("total_steps")
    step = round(total / int(planned) * int(chosen)) if total and planned else None
    row = by_epoch.get(chosen, {})
    return {
        "epoch": chosen,
        "step": step,
        "train_loss": row.get("train_loss"),
        "validation_loss": row.get("validation_loss"),
        "accuracy": row.get("accuracy"),
        "macro_f1": row.get("macro_f1"),
        "epochs_run": metrics.get("epochs_run"),
        "stopped_early": metrics.get("stopped_early"),
    }


def tuning_job_representation(job: TuningJob) -> dict[str, Any]:
    tuned = TunedModel.objects.filter(tuning_job=job).values_list("name", flat=True).first()
    result = job.result or {}
    return {
        "id": str(job.pk),
        "object": "tuning_job",
        "dataset": job.dataset.public_id if job.dataset else None,
        "task": job.task,
        "base_model": job.base_model,
        "method": job.method,
        "hyperparameters": job.hyperparameters,
        "status": job.status,
        "progress": job.progress,
        "trainable_parameters": result.get("trainable_parameters"),
        "total_parameters": result.get("total_parameters"),
        "metrics": result.get("metrics"),
        "details": result.get("details"),
        "checkpoint": tuning_checkpoint(job),
        "model": tuned,
        "error": job.error,
        "usage": {"units": job.units},
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
    }
