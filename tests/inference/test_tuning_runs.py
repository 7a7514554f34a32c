"""The worker half of tuning, driven through its services: per-step progress points, the loss curve readers get,
and the reaper that sends again a queued tuning job the broker never got."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from inference import selectors
from inference.backends.tuning import TrainingProgress
from inference.models import TuningEvent, TuningJob
from inference.services import tuning_datasets, tuning_jobs, tuning_runs
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
