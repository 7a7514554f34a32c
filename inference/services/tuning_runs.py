"""The worker half of tuning jobs: claim, decrypt, split, train while recording progress, finish; and the reaper
that fails runs whose worker stopped and sends again queued jobs the broker never got.

The web half (validate, estimate, create, cancel) is inference.services.tuning_jobs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from alliance.errors import DomainError, NotFound
from inference import signals, tuning_config
from inference.models import TunedModel, TuningEvent, TuningEventKind, TuningJob, TuningStatus
from inference.registry import get_model_spec, resolve_source
from inference.services.tuning_datasets import dataset_parsed
from inference.services.tuning_jobs import tuning_event_add, tuning_job_enqueue, tuning_job_settle
from inference.services.tuning_tokens import split_rows, tokens_after_step

if TYPE_CHECKING:
    from inference.backends.tuning import TrainingProgress

logger = logging.getLogger(__name__)

PROGRESS_WRITE_SECONDS = 1.0
EPOCH_SCORE_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1"}


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _metrics_event(job: TuningJob, progress: TrainingProgress) -> TuningEvent:
    loss = _finite(progress.loss)
    shown = "n/a" if loss is None else f"{loss:.4f}"
    return TuningEvent(
        job=job,
        kind=TuningEventKind.METRICS,
        message=f"Step {progress.step}/{progress.total_steps}: training loss {shown}",
        step=progress.step,
        epoch=round(progress.epoch, 4),
        loss=loss,
        learning_rate=_finite(progress.learning_rate),
    )


@transaction.atomic
def tuning_progress_record(*, job: TuningJob, points: list[TrainingProgress], state: dict[str, Any]) -> bool:
    """Writes the trainer's points (one metrics event per step; a step written before is kept as it was) and the
    job's latest progress with a heartbeat. Answers whether the job is still running (False once canceled)."""
    TuningEvent.objects.bulk_create([_metrics_event(job, point) for point in points], ignore_conflicts=True)
    return bool(
        TuningJob.objects.filter(pk=job.pk, status=TuningStatus.RUNNING).update(
            progress=state, heartbeat_at=timezone.now()
        )
    )


class TuningProgressRecorder:
    """The trainer's on_progress: keeps every step's point and writes them, with the job's progress and an ETA,
    at most once a second and at the last step; answers should_stop() once the job was canceled meanwhile."""

    def __init__(self, job: TuningJob) -> None:
        self._job = job
        self._started = time.monotonic()
        self._last_write = 0.0
        self._pending: list[TrainingProgress] = []
        self._canceled = False
        self.planned_tokens: int | None = None  # the whole run's tokens, once counted
        self.trained_tokens = 0  # the tokens of the steps written so far

    def __call__(self, progress: TrainingProgress) -> None:
        self._pending.append(progress)
        now = time.monotonic()
        if now - self._last_write < PROGRESS_WRITE_SECONDS and progress.step < progress.total_steps:
            return
        self._last_write = now
        self.flush()

    def flush(self) -> None:
        """Writes the points not written yet (called at the end of a run too, however it ended)."""
        if not self._pending:
            return
        latest = self._pending[-1]
        elapsed = time.monotonic() - self._started
        eta = elapsed / latest.step * (latest.total_steps - latest.step) if latest.step else None
        loss = _finite(latest.loss)
        if self.planned_tokens is not None:
            self.trained_tokens = tokens_after_step(self.planned_tokens, latest.step, latest.total_steps)
        state = {
            "step": latest.step,
            "total_steps": latest.total_steps,
            "epoch": round(latest.epoch, 3),
            "loss": None if loss is None else round(loss, 5),
            "eta_seconds": None if eta is None else round(eta, 1),
            "training_tokens": self.planned_tokens,
            "trained_tokens": self.trained_tokens,
        }
        points, self._pending = self._pending, []
        self._canceled = not tuning_progress_record(job=self._job, points=points, state=state)

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

    recorder = TuningProgressRecorder(job)
    try:
        if job.dataset is None:
            raise NotFound("The dataset was deleted before training started.", code="dataset_deleted")
        parsed = dataset_parsed(job.dataset)
        defaults = trainer.default_hyperparameters(job.task, job.method, rows=len(parsed.rows))
        hyperparameters = {**defaults, **job.hyperparameters}
        train_rows, validation_rows = split_rows(
            job.task, parsed.rows, hyperparameters.get("validation_fraction", 0.1), hyperparameters.get("seed", 0)
        )
        base_model_path = resolve_source(get_model_spec(job.base_model).source)
        recorder.planned_tokens = _planned_tokens(job.task, base_model_path, train_rows, hyperparameters)
        tuning_event_add(
            job=job,
            message=f"Training on {len(train_rows)} rows; {len(validation_rows)} held out for validation.",
            train_rows=len(train_rows),
            validation_rows=len(validation_rows),
        )
        adapter_relative = Path("adapters") / str(job.partner_id) / job.pk.hex
        try:
            result = trainer.train(
                trainer.TrainingRequest(
                    task=job.task,
                    base_model_path=base_model_path,
                    train_rows=train_rows,
                    validation_rows=validation_rows,
                    method=job.method,
                    hyperparameters=hyperparameters,
                    output_dir=Path(settings.MEDIA_ROOT) / adapter_relative,
                    max_seconds=settings.ALLIANCE_TUNING_MAX_SECONDS,
                ),
                on_progress=recorder,
                should_stop=recorder.should_stop,
                on_epoch=lambda report: _epoch_event(job, recorder, report),
            )
        finally:
            recorder.flush()
    except trainer.TrainingStopped:
        tuning_event_add(job=job, message="Training stopped: the job was canceled.")
        return job
    except trainer.TrainingTimedOut:
        limit = settings.ALLIANCE_TUNING_MAX_SECONDS
        message = f"Training ran past the limit of {limit:.0f} s; the tokens it trained are charged."
        return _tuning_fail(job, "time_limit", message, trained_tokens=recorder.trained_tokens)
    except MemoryError:
        return _tuning_fail(job, "out_of_memory", "Training ran out of memory; try a smaller batch size or max_length.")
    except DomainError as exc:
        return _tuning_fail(job, exc.code, exc.message)
    except Exception as exc:
        logger.exception("tuning job %s failed", job.pk)
        return _tuning_fail(job, "training_error", f"Training failed: {type(exc).__name__}: {str(exc)[:200]}")
    trained = None if recorder.planned_tokens is None else recorder.trained_tokens  # less when stopped early
    return _tuning_succeed(job, result, adapter_relative, trained_tokens=trained)


def _epoch_event(job: TuningJob, recorder: TuningProgressRecorder, report: Any) -> None:
    """One message per finished epoch with its training and validation loss, and the task's other validation
    figures (classification: accuracy and macro-F1); the steps' points are written first."""
    recorder.flush()
    valid = "n/a" if report.validation_loss is None else f"{report.validation_loss:.4f}"
    train = "n/a" if report.train_loss is None else f"{report.train_loss:.4f}"
    message = f"Epoch {report.epoch}/{report.epochs}: training loss {train}, validation loss {valid}"
    message += "".join(f", {EPOCH_SCORE_NAMES.get(name, name)} {value:.4f}" for name, value in report.scores.items())
    if report.stopping:
        message += f"; stopping early, keeping epoch {report.best_epoch}"
    tuning_event_add(
        job=job,
        message=message,
        epoch=report.epoch,
        train_loss=report.train_loss,
        valid_loss=report.validation_loss,
        full_valid_loss=report.validation_loss,
        **report.scores,
        best_epoch=report.best_epoch,
        stopping=report.stopping,
    )


def _planned_tokens(task: str, base_model_path: Path, train_rows: list[dict[str, Any]], h: dict[str, Any]) -> int:
    """The tokens the whole run trains on, counted with the trainer's own tokenizer and rendering: each training
    row truncated to max_length, times the epochs."""
    from transformers import AutoTokenizer

    from inference.backends.tuning import generation

    tokenizer = AutoTokenizer.from_pretrained(base_model_path, local_files_only=True)
    max_length = int(h["max_length"])
    if task == "classification":
        ids = tokenizer([str(row["text"]) for row in train_rows], truncation=True, max_length=max_length)["input_ids"]
        per_epoch = sum(len(row_ids) for row_ids in ids)
    else:
        examples = (generation.render(tokenizer, task, row, max_length) for row in train_rows)
        per_epoch = sum(len(example.prompt_ids) + len(example.target_ids) for example in examples)
    return per_epoch * int(h["epochs"])


@transaction.atomic
def _tuning_succeed(job: TuningJob, result: Any, adapter_relative: Path, trained_tokens: int | None) -> TuningJob:
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
        trained = job.units if trained_tokens is None else trained_tokens
        refunded = tuning_job_settle(job=job, trained_tokens=trained)
        tuning_event_add(
            job=job,
            message="Training finished.",
            metrics=result.metrics,
            trained_tokens=trained,
            refunded_units=refunded,
        )
        name = tuned_model_name(job)
        transaction.on_commit(lambda: _announce_succeeded(str(job.pk), name))
    job.refresh_from_db()
    return job


def _announce_succeeded(job_id: str, model: str) -> None:
    """inference.signals.tuning_job_succeeded for the apps above; a receiver's failure is logged, never the job's."""
    for receiver, outcome in signals.tuning_job_succeeded.send_robust(sender=None, job_id=job_id, model=model):
        if isinstance(outcome, Exception):
            logger.error("a tuning_job_succeeded receiver (%s) failed", receiver, exc_info=outcome)


@transaction.atomic
def _tuning_fail(job: TuningJob, code: str, message: str, trained_tokens: int = 0) -> TuningJob:
    """Fails a running job; it keeps the charge for `trained_tokens` (a run that reached the time limit) and is
    refunded the rest (all of it when the platform failed it)."""
    failed = TuningJob.objects.filter(pk=job.pk, status=TuningStatus.RUNNING).update(
        status=TuningStatus.FAILED, error={"code": code, "message": message}, finished_at=timezone.now()
    )
    if failed:
        refunded = tuning_job_settle(job=job, trained_tokens=trained_tokens)
        tuning_event_add(
            job=job, message=message, level="error", code=code, trained_tokens=trained_tokens, refunded_units=refunded
        )
    job.refresh_from_db()
    return job


def tuning_jobs_reap(now: dt.datetime | None = None) -> dict[str, int]:
    """Fails tuning jobs whose worker stopped reporting (the data stays; the partner may start again), and sends
    again queued jobs not claimed within ALLIANCE_JOB_REENQUEUE_SECONDS of their last send (a failed send, a lost
    message):
    each at most once a period, a duplicate delivery being a no-op claim."""
    now = now or timezone.now()
    counts = {"tuning_failed": 0, "tuning_resent": 0}
    stale_before = now - dt.timedelta(seconds=settings.ALLIANCE_TUNING_STALE_SECONDS)
    for job in TuningJob.objects.filter(status=TuningStatus.RUNNING, heartbeat_at__lt=stale_before)[:100]:
        reaped = _tuning_fail(job, "worker_lost", "The tuning worker stopped; its units are refunded.")
        counts["tuning_failed"] += int(reaped.status == TuningStatus.FAILED)
    resend_before = now - dt.timedelta(seconds=settings.ALLIANCE_JOB_REENQUEUE_SECONDS)
    for job in TuningJob.objects.filter(status=TuningStatus.QUEUED, enqueued_at__lt=resend_before)[:100]:
        resent = TuningJob.objects.filter(pk=job.pk, status=TuningStatus.QUEUED, enqueued_at=job.enqueued_at).update(
            enqueued_at=now
        )
        if resent:
            counts["tuning_resent"] += 1
            tuning_job_enqueue(job)
    return counts
