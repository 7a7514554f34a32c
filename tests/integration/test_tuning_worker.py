"""A tuning job through real processes: its broker message is lost, the reaper in a real worker sends it again,
the worker trains and writes one loss point per step, and readers that share nothing with it but the database (a
gunicorn web process, and this process after its cache is cleared) see exactly the worker's points, its
per-epoch validation and the checkpoint it kept."""

from __future__ import annotations

import http.client
import io
import json
import time

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

from inference.models import TuningEvent, TuningJob
from tests.factories import client_for, make_key, make_partner
from tests.integration.processes import start_web, start_worker
from tests.web.conftest import make_member, signed_in

pytestmark = pytest.mark.services

REVIEWS = {
    "great": ["Fast delivery and it works perfectly", "Lovely taste, I will buy again", "Great value, five stars"],
    "other": ["It broke after two days", "Stale and tasteless, never again", "Support never answered my mail"],
}


def small_dataset() -> io.BytesIO:
    rows = [{"text": f"{REVIEWS[label][i % 3]} (order {i})", "label": label} for label in REVIEWS for i in range(20)]
    upload = io.BytesIO("\n".join(json.dumps(row) for row in rows).encode())
    upload.name = "reviews.jsonl"
    return upload


def get_json(port: int, path: str, raw_key: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Bearer {raw_key}"})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 200, body
    return body


def test_a_lost_tuning_job_is_resent_trained_and_its_curve_read_the_same_everywhere(live_services, tmp_path):
    partner = make_partner("Woori Bank", sector="finance")
    _, raw = make_key(partner)
    api = client_for(raw)
    dataset = api.post("/api/v1/datasets", {"file": small_dataset(), "task": "classification"}, format="multipart")
    assert dataset.status_code == 201, dataset.json()
    body = {
        "dataset": dataset.json()["id"],
        "task": "classification",
        "hyperparameters": {"epochs": 2, "batch_size": 4},
    }
    job_id = api.post("/api/v1/tuning-jobs", body, format="json").json()["id"]
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    assert broker.llen("tuning") == 1
    broker.delete("tuning")  # the broker lost the message: only the database still knows the job is queued

    worker = start_worker(tmp_path, "w-tuning-resend", queues="tuning,default", ALLIANCE_JOB_REENQUEUE_SECONDS="3")
    try:
        deadline = time.monotonic() + 300
        job = TuningJob.objects.get(pk=job_id)
        while not job.is_finished:
            assert time.monotonic() < deadline, job.progress
            time.sleep(0.5)
            job.refresh_from_db()
        assert job.status == "succeeded", job.error
        assert "'tuning_resent': 1" in worker.log()
    finally:
        worker.stop()

    total = job.progress["total_steps"]
    assert total == 2 * 9 and job.progress["step"] == total  # 36 training rows in batches of 4, two epochs
    assert TuningEvent.objects.filter(job=job, message__startswith="Training on").count() == 1  # trained once
    points = list(TuningEvent.objects.filter(job=job, kind="metrics").order_by("step").values_list("step", "loss"))
    assert [step for step, _ in points] == list(range(1, total + 1))

    web, port = start_web(tmp_path, workers=1)
    try:
        events = get_json(port, f"/api/v1/tuning-jobs/{job_id}/events", raw)["data"]
        checkpoints = get_json(port, f"/v1/fine_tuning/jobs/{job_id}/checkpoints", raw)["data"]
    finally:
        web.stop()
    by_epoch = job.result["metrics"]["by_epoch"]
    epoch_events = [event for event in events if event["message"].startswith("Epoch ")]
    assert [event["data"]["valid_loss"] for event in epoch_events] == [row["validation_loss"] for row in by_epoch]
    assert len(by_epoch) == 2 and all(row["validation_loss"] > 0 and "accuracy" in row for row in by_epoch)
    assert [checkpoint["id"].rsplit("-", 1)[1] for checkpoint in checkpoints] == ["2"]  # no early stopping: the last
    assert checkpoints[0]["metrics"]["valid_loss"] == by_epoch[-1]["validation_loss"]
    metrics = [event for event in events if event["kind"] == "metrics"]
    assert [(event["step"], event["loss"]) for event in metrics] == points
    assert all(event["learning_rate"] > 0 and event["epoch"] > 0 for event in metrics)
    assert events[0]["message"] == "Tuning job created." and events[-1]["message"] == "Training finished."

    cache.clear()
    status = signed_in(make_member(partner, "viewer")).get(f"/portal/tuning/{job_id}/status").json()
    assert status["loss_history"] == [[step, round(loss, 5)] for step, loss in points]
    assert all(event["message"] != "" and not event["message"].startswith("Step ") for event in status["events"])
