"""The worker half of tuning, driven through its services: per-step progress points, the loss curve readers get,
a classification run's per-epoch validation, early stopping and kept checkpoint as the APIs show them, and the
reaper that sends again a queued tuning job the broker never got."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from inference import selectors
from inference.backends.tuning import TrainingProgress
from inference.models import TuningEvent, TuningJob
from inference.services import tuning_datasets, tuning_jobs, tuning_runs, tuning_tokens
from partners.models import UsageRecord
from tests.factories import make_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def tuning_job(partner) -> TuningJob:
    rows = "\n".join(json.dumps({"text": f"review number {i}", "label": "ab"[i % 2]}) for i in range(20))
    dataset = tuning_datasets.dataset_create(
        partner=partner, data=rows.encode(), filename="rows.jsonl", task="classification"
    )
    key, _ = make_key(partner)
    # A test's transaction never commits, so the on_commit send never happens: the broker has no message for it.
    return tuning_jobs.tuning_job_create(api_key=key, body={"dataset": dataset.public_id, "task": "classification"})


def sent_tuning_job_ids() -> list[str]:
    """The job ids waiting in the broker's tuning queue, oldest first."""
    ids = []
    for raw in reversed(redis.Redis.from_url(settings.CELERY_BROKER_URL).lrange("tuning", 0, -1)):
        message = json.loads(raw)
        assert message["headers"]["task"] == "inference.tasks.run_tuning_job"
        ids.append(json.loads(base64.b64decode(message["body"]))[0][0])
    return ids


def test_a_queued_tuning_job_never_sent_is_sent_once_a_period(tuning_job):
    job_id = str(tuning_job.pk)
    assert job_id not in sent_tuning_job_ids()
    created = tuning_job.enqueued_at
    assert tuning_runs.tuning_jobs_reap(now=created + dt.timedelta(seconds=5)) == {
        "tuning_failed": 0,
        "tuning_resent": 0,
    }
    assert job_id not in sent_tuning_job_ids()
    later = created + dt.timedelta(seconds=settings.ALLIANCE_JOB_REENQUEUE_SECONDS + 1)
    assert tuning_runs.tuning_jobs_reap(now=later)["tuning_resent"] == 1
    assert sent_tuning_job_ids().count(job_id) == 1
    assert TuningJob.objects.get(pk=job_id).enqueued_at == later
    assert tuning_runs.tuning_jobs_reap(now=later + dt.timedelta(seconds=1))["tuning_resent"] == 0
    assert sent_tuning_job_ids().count(job_id) == 1
    next_period = later + dt.timedelta(seconds=settings.ALLIANCE_JOB_REENQUEUE_SECONDS + 1)
    assert tuning_runs.tuning_jobs_reap(now=next_period)["tuning_resent"] == 1
    assert sent_tuning_job_ids().count(job_id) == 2
    tuning_jobs.tuning_job_cancel(job=tuning_job)
    far = next_period + dt.timedelta(hours=1)
    assert tuning_runs.tuning_jobs_reap(now=far)["tuning_resent"] == 0
    assert sent_tuning_job_ids().count(job_id) == 2


def test_a_running_tuning_job_whose_worker_stopped_fails_with_a_refund_and_is_not_resent(tuning_job):
    TuningJob.objects.filter(pk=tuning_job.pk).update(
        status="running", heartbeat_at=timezone.now() - dt.timedelta(seconds=settings.ALLIANCE_TUNING_STALE_SECONDS + 5)
    )
    counts = tuning_runs.tuning_jobs_reap(now=timezone.now() + dt.timedelta(hours=1))
    assert counts == {"tuning_failed": 1, "tuning_resent": 0}
    job = TuningJob.objects.get(pk=tuning_job.pk)
    assert job.status == "failed" and job.error["code"] == "worker_lost"
    assert UsageRecord.objects.filter(job_id=job.pk, kind="refund").count() == 1


def test_the_recorder_writes_every_step_it_was_given_and_stops_a_canceled_run(tuning_job):
    TuningJob.objects.filter(pk=tuning_job.pk, status="queued").update(status="running")
    recorder = tuning_runs.TuningProgressRecorder(tuning_job)
    total = 25
    points = TuningEvent.objects.filter(job=tuning_job, kind="metrics")
    recorder(TrainingProgress(1, total, 0.04, 0.9, 1e-4))
    assert points.count() == 1  # the first point is written at once
    for step in range(2, 11):
        recorder(TrainingProgress(step, total, step / total, 1.0 / step, 1e-4))
    assert points.count() in range(1, 11)  # at most once a second: the rest wait in the recorder
    recorder.flush()  # as the run does when training ends, however it ends
    assert list(points.values_list("step", flat=True)) == list(range(1, 11))
    assert TuningJob.objects.get(pk=tuning_job.pk).progress["step"] == 10
    assert not recorder.should_stop()
    tuning_jobs.tuning_job_cancel(job=tuning_job)
    for step in range(11, total + 1):
        recorder(TrainingProgress(step, total, step / total, float("nan") if step == total else 0.1, None))
    assert recorder.should_stop()
    assert points.count() == total  # the steps a canceled run did take are still its history
    last = points.get(step=total)
    assert last.loss is None and last.message == f"Step {total}/{total}: training loss n/a"
    assert TuningJob.objects.get(pk=tuning_job.pk).progress["step"] == 10  # a canceled job's progress stays


def test_the_loss_curve_is_thinned_evenly_keeping_the_first_and_last_step(tuning_job):
    TuningJob.objects.filter(pk=tuning_job.pk).update(status="running")
    steps = [TrainingProgress(step, 10, step / 10, 10.0 - step, None) for step in range(1, 11)]
    tuning_runs.tuning_progress_record(job=tuning_job, points=steps, state={})
    assert selectors.tuning_loss_curve(job=tuning_job) == [[step, 10.0 - step] for step in range(1, 11)]
    assert selectors.tuning_loss_curve(job=tuning_job, max_points=4) == [[1, 9.0], [4, 6.0], [7, 3.0], [10, 0.0]]


REVIEWS = {
    "great": ["Fast delivery and it works perfectly", "Lovely taste, I will buy again", "Great value, five stars"],
    "other": ["It broke after two days", "Stale and tasteless, never again", "Support never answered my mail"],
}


def rows_that_overfit(per_label: int = 20) -> bytes:
    """Reviews whose held-out rows (the platform's own stratified split, fraction 0.1, seed 0) read like the other
    label's: the better the model fits the training rows, the higher its validation loss."""
    kept, _ = tuning_tokens.split_positions("classification", [per_label] * 2, 0.1, 0)
    other = {"great": "other", "other": "great"}
    rows = []
    for position in range(per_label):
        for group, label in enumerate(REVIEWS):  # interleaved: "great" is the first label seen, group 0
            voice = label if (group, position) in kept else other[label]
            rows.append({"text": f"{REVIEWS[voice][position % 3]} (order {position})", "label": label})
    return "\n".join(json.dumps(row) for row in rows).encode()


def test_a_classification_job_reports_every_epoch_stops_early_and_keeps_the_best_checkpoint(api, partner):
    upload = io.BytesIO(rows_that_overfit())
    upload.name = "reviews.jsonl"
    dataset = api.post("/api/v1/datasets", {"file": upload, "task": "classification"}, format="multipart").json()
    hyperparameters = {"epochs": 6, "batch_size": 4, "early_stopping_patience": 1}
    body = {"dataset": dataset["id"], "task": "classification", "hyperparameters": hyperparameters}
    created = api.post("/api/v1/tuning-jobs", body, format="json")
    assert created.status_code == 201, created.json()
    job_id = created.json()["id"]

    tuning_runs.tuning_job_run(job_id)  # the worker's own run, in this process

    job = api.get(f"/api/v1/tuning-jobs/{job_id}").json()
    assert job["status"] == "succeeded", job["error"]
    metrics = job["metrics"]
    losses = [row["validation_loss"] for row in metrics["by_epoch"]]
    assert [row["epoch"] for row in metrics["by_epoch"]] == list(range(1, len(losses) + 1))
    assert metrics["stopped_early"] and metrics["epochs_run"] == len(losses) < 6
    chosen = metrics["chosen_epoch"]
    assert chosen == losses.index(min(losses)) + 1 == len(losses) - 1  # patience 1: one worse epoch, then stop
    best = metrics["by_epoch"][chosen - 1]
    assert (metrics["loss"], metrics["accuracy"], metrics["macro_f1"]) == (
        min(losses),
        best["accuracy"],
        best["macro_f1"],
    )
    steps_per_epoch = 9  # 36 training rows in batches of 4
    assert job["checkpoint"] == {
        "epoch": chosen,
        "step": steps_per_epoch * chosen,
        "train_loss": best["train_loss"],
        "validation_loss": min(losses),
        "accuracy": best["accuracy"],
        "macro_f1": best["macro_f1"],
        "epochs_run": len(losses),
        "stopped_early": True,
    }

    events = api.get(f"/api/v1/tuning-jobs/{job_id}/events").json()["data"]
    epoch_events = [event for event in events if event["message"].startswith("Epoch ")]
    assert [event["data"]["valid_loss"] for event in epoch_events] == losses  # one per epoch, in order
    assert [event["data"]["accuracy"] for event in epoch_events] == [row["accuracy"] for row in metrics["by_epoch"]]
    assert epoch_events[-1]["data"]["stopping"] and f"keeping epoch {chosen}" in epoch_events[-1]["message"]
    assert "accuracy" in epoch_events[0]["message"] and "macro-F1" in epoch_events[0]["message"]

    openai_events = api.get(f"/v1/fine_tuning/jobs/{job_id}/events").json()["data"]
    valid_losses = [event["data"]["valid_loss"] for event in openai_events if event["message"].startswith("Epoch ")]
    assert sorted(valid_losses) == sorted(losses)
    checkpoints = api.get(f"/v1/fine_tuning/jobs/{job_id}/checkpoints").json()["data"]
    assert [checkpoint["fine_tuned_model_checkpoint"] for checkpoint in checkpoints] == [job["model"]]
    assert checkpoints[0]["metrics"]["valid_loss"] == checkpoints[0]["metrics"]["full_valid_loss"] == min(losses)
    assert checkpoints[0]["step_number"] == steps_per_epoch * chosen
    # Only the epochs run are charged: the rest of the estimate is refunded.
    finished = next(event for event in events if event["message"] == "Training finished.")
    assert finished["data"]["refunded_units"] > 0
    assert job["usage"]["units"] == finished["data"]["trained_tokens"] < created.json()["usage"]["units"]
