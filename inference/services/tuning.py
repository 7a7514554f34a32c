"""Datasets and tuning jobs: upload (validated, encrypted), estimate, create (charged), run, cancel."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
import secrets
import string
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from alliance.api.errors import ApiError, first_validation_error
from inference import tuning_config
from inference.datasets import DatasetRejected, ParsedDataset, parse_dataset
from inference.encryption import decrypt_for, encrypt_for
from inference.models import Dataset, TunedModel, TuningEvent, TuningJob, TuningStatus
from partners.models import ApiKey, Partner
from partners.services import quota_for, usage_charge, usage_refund

logger = logging.getLogger(__name__)

_ID_ALPHABET = string.ascii_lowercase + string.digits
PROGRESS_WRITE_SECONDS = 1.0


def _public_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


# ---------------------------------------------------------------- datasets


def dataset_create(*, partner: Partner, data: bytes, filename: str, task: str) -> Dataset:
    """Validates the file, then stores it encrypted with the partner's key; nothing is kept if it is refused."""
    try:
        parsed = parse_dataset(data, filename, task)
    except DatasetRejected as exc:
        raise ApiError(
            f"The file was refused: {exc.problems[0].message}" if exc.problems else "The file was refused.",
            code=exc.code,
            status_code=exc.status_code,
            param="file",
            details=[problem.as_dict() for problem in exc.problems],
        ) from None
    public_id = _public_id("ds_")
    relative = Path("datasets") / str(partner.pk) / f"{public_id}.enc"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".part")
    temporary.write_bytes(encrypt_for(partner, data))
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                public_id=public_id,
                partner=partner,
                task=task,
                filename=Path(filename).name[:255] or f"{public_id}.{parsed.format}",
                format=parsed.format,
                bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                path=str(relative),
                stats=parsed.stats,
            )
            temporary.replace(target)
    except Exception:
        temporary.unlink(missing_ok=True)
        raise
    return dataset


def dataset_path(dataset: Dataset) -> Path:
    return Path(settings.MEDIA_ROOT) / dataset.path


def dataset_delete(*, dataset: Dataset) -> None:
    dataset_path(dataset).unlink(missing_ok=True)
    dataset.delete()


def dataset_parsed(dataset: Dataset) -> ParsedDataset:
    """The dataset's rows, decrypted with its partner's key (worker side)."""
    plaintext = decrypt_for(dataset.partner, dataset_path(dataset).read_bytes())
    return parse_dataset(plaintext, dataset.filename, dataset.task)


# ---------------------------------------------------------------- tuning jobs


def tuning_request_validated(*, partner: Partner, body: Any) -> tuple[dict[str, Any], Dataset]:
    if not isinstance(body, dict):
        raise ApiError("The request body must be a JSON object.", code="invalid_body")
    request = tuning_config.TuningRequest(data=body)
    if not request.is_valid():
        param, code, message = first_validation_error(request.errors)
        raise ApiError(f"{param}: {message}" if param else message, code=code, param=param)
    clean = dict(request.validated_data)
    clean["hyperparameters"] = dict(clean.get("hyperparameters") or {})
    dataset = Dataset.objects.filter(partner=partner, public_id=clean["dataset"]).first()
    if dataset is None:
        raise ApiError("No dataset with that id.", code="dataset_not_found", status_code=404, param="dataset")
    if dataset.task != clean["task"]:
        raise ApiError(
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
        )
        usage_charge(quota=quota, api_key=api_key, job_id=job.pk, units=figures["units"])
        _event(job, "Tuning job created.", estimate=figures)
        transaction.on_commit(lambda: tuning_job_enqueue(job))
    return job


def tuning_job_enqueue(job: TuningJob) -> None:
    from inference.tasks import run_tuning_job

    try:
        run_tuning_job.apply_async(args=[str(job.pk)], queue="tuning", retry=False)
    except Exception:
        logger.warning("enqueue of tuning job %s failed", job.pk, exc_info=True)


@transaction.atomic
def tuning_job_cancel(*, job: TuningJob) -> TuningJob:
    canceled = TuningJob.objects.filter(pk=job.pk, status__in=[TuningStatus.QUEUED, TuningStatus.RUNNING]).update(
        status=TuningStatus.CANCELED, finished_at=timezone.now()
    )
    job.refresh_from_db()
    if not canceled:
        raise ApiError(f"The tuning job is already {job.status}.", code="job_finished", status_code=409)
    usage_refund(job_id=job.pk)
    _event(job, "Canceled by the partner; its units are refunded.")
    return job


def _event(job: TuningJob, message: str, level: str = "info", **data: Any) -> None:
    TuningEvent.objects.create(job=job, level=level, message=message[:500], data=data)


def _split(task: str, rows: list[dict[str, Any]], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Holds out a validation split: stratified by label for classification, at least one row per label."""
    rng = random.Random(seed)
    if task != "classification":
        shuffled = rows[:]
        rng.shuffle(shuffled)
        cut = max(1, round(len(shuffled) * fraction))
        return shuffled[cut:], shuffled[:cut]
    by_label: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    train, validation = [], []
    for label_rows in by_label.values():
        rng.shuffle(label_rows)
        cut = max(1, round(len(label_rows) * fraction)) if len(label_rows) > 1 else 0
        validation += label_rows[:cut]
        train += label_rows[cut:]
    rng.shuffle(train)
    return train, validation


class _ProgressWriter:
    """Writes progress at most once a second, with an ETA; answers whether the job was canceled meanwhile."""

    def __init__(self, job: TuningJob) -> None:
        self._job = job
        self._started = time.monotonic()
        self._last_write = 0.0
        self._canceled = False

    def __call__(self, progress: Any) -> None:
        now = time.monotonic()
        if now - self._last_write < PROGRESS_WRITE_SECONDS and progress.step < progress.total_steps:
            return
        self._last_write = now
        elapsed = now - self._started
        eta = elapsed / progress.step * (progress.total_steps - progress.step) if progress.step else None
        state = {
            "step": progress.step,
            "total_steps": progress.total_steps,
            "epoch": round(progress.epoch, 3),
            "loss": None if progress.loss is None else round(float(progress.loss), 5),
            "eta_seconds": None if eta is None else round(eta, 1),
        }
        updated = TuningJob.objects.filter(pk=self._job.pk, status=TuningStatus.RUNNING).update(
            progress=state, heartbeat_at=timezone.now()
        )
        self._canceled = not updated

    def should_stop(self) -> bool:
        return self._canceled


def tuned_model_name(job: TuningJob) -> str:
    return f"{tuning_config.TUNED_PREFIX}{job.base_model}:{job.partner.slug}:{job.pk.hex[:12]}"


def tuning_job_run(job_id: str) -> TuningJob | None:
    """Runs one tuning job on this worker: claim, decrypt, split, train, and record the model."""
    now = timezone.now()
    claimed = TuningJob.objects.filter(pk=job_id, status=TuningStatus.QUEUED).update(
        status=TuningStatus.RUNNING, started_at=now, heartbeat_at=now, claim_token=uuid.uuid4()
    )
    if not claimed:
        return None
    job = TuningJob.objects.select_related("partner", "dataset").get(pk=job_id)
    from inference.backends import tuning as trainer
    from inference.registry import get_model_spec, resolve_source

    try:
        if job.dataset is None:
            raise ApiError("The dataset was deleted before training started.", code="dataset_deleted")
        parsed = dataset_parsed(job.dataset)
        hyperparameters = {**trainer.default_hyperparameters(job.task, job.method), **job.hyperparameters}
        train_rows, validation_rows = _split(
            job.task, parsed.rows, hyperparameters.get("validation_fraction", 0.1), hyperparameters.get("seed", 0)
        )
        _event(job, f"Training on {len(train_rows)} rows; {len(validation_rows)} held out for validation.")
        adapter_relative = Path("adapters") / str(job.partner_id) / job.pk.hex
        writer = _ProgressWriter(job)
        result = trainer.train(
            trainer.TrainingRequest(
                task=job.task,
                base_model_path=resolve_source(get_model_spec(job.base_model).source),
                train_rows=train_rows,
                validation_rows=validation_rows,
                method=job.method,
                hyperparameters=hyperparameters,
                output_dir=Path(settings.MEDIA_ROOT) / adapter_relative,
                max_seconds=settings.ALLIANCE_TUNING_MAX_SECONDS,
            ),
            on_progress=writer,
            should_stop=writer.should_stop,
        )
    except trainer.TrainingStopped:
        _event(job, "Training stopped: the job was canceled.")
        return job
    except trainer.TrainingTimedOut:
        return _tuning_fail(
            job, "time_limit", f"Training ran past the limit of {settings.ALLIANCE_TUNING_MAX_SECONDS:.0f} s."
        )
    except MemoryError:
        return _tuning_fail(job, "out_of_memory", "Training ran out of memory; try a smaller batch size or max_length.")
    except ApiError as exc:
        return _tuning_fail(job, exc.error_code, exc.message)
    except Exception as exc:
        logger.exception("tuning job %s failed", job.pk)
        return _tuning_fail(job, "training_error", f"Training failed: {type(exc).__name__}: {str(exc)[:200]}")
    return _tuning_succeed(job, result, adapter_relative)


@transaction.atomic
def _tuning_succeed(job: TuningJob, result: Any, adapter_relative: Path) -> TuningJob:
    summary = {
        "trainable_parameters": result.trainable_parameters,
        "total_parameters": result.total_parameters,
        "metrics": result.metrics,
        "details": json.loads(json.dumps(result.details, default=str)),
    }
    finished = TuningJob.objects.filter(pk=job.pk, status=TuningStatus.RUNNING).update(
        status=TuningStatus.SUCCEEDED, result=summary, finished_at=timezone.now()
    )
    if finished:
        TunedModel.objects.create(
            name=tuned_model_name(job),
            partner=job.partner,
            tuning_job=job,
            task=job.task,
            base_model=job.base_model,
            adapter_path=str(adapter_relative),
            labels=result.labels,
        )
        _event(job, "Training finished.", metrics=result.metrics)
    job.refresh_from_db()
    return job


@transaction.atomic
def _tuning_fail(job: TuningJob, code: str, message: str) -> TuningJob:
    failed = TuningJob.objects.filter(pk=job.pk, status=TuningStatus.RUNNING).update(
        status=TuningStatus.FAILED, error={"code": code, "message": message}, finished_at=timezone.now()
    )
    if failed:
        usage_refund(job_id=job.pk)
        _event(job, message, level="error", code=code)
    job.refresh_from_db()
    return job


def tuning_jobs_reap(now: dt.datetime | None = None) -> int:
    """Fails tuning jobs whose worker stopped reporting (the data stays; the partner may start again)."""
    stale_before = (now or timezone.now()) - dt.timedelta(seconds=settings.ALLIANCE_TUNING_STALE_SECONDS)
    failed = 0
    for job in TuningJob.objects.filter(status=TuningStatus.RUNNING, heartbeat_at__lt=stale_before)[:100]:
        failed += _tuning_fail(job, "worker_lost", "The tuning worker stopped; its units are refunded.").status == (
            TuningStatus.FAILED
        )
    return failed
