"""Datasets and tuning in the portal, with Django's test client: upload and its line-numbered refusals, the
pre-flight estimate, starting (charged) and canceling runs, roles on the server, other partners' data as 404."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile

from inference.backends.tuning import TrainingProgress
from inference.models import Dataset, TunedModel, TuningJob
from inference.services import tuning_datasets, tuning_jobs, tuning_runs
from partners.models import ApiKey, UsageRecord
from tests.factories import client_for, make_key
from tests.web.conftest import signed_in

pytestmark = pytest.mark.django_db

REVIEWS = [
    ("The delivery was fast and the product works perfectly.", "great"),
    ("It broke after two days and support never answered.", "other"),
]


def jsonl(rows: int = 40) -> bytes:
    lines = [{"text": f"{REVIEWS[i % 2][0]} (order {i})", "label": REVIEWS[i % 2][1]} for i in range(rows)]
    return "\n".join(json.dumps(line) for line in lines).encode()


def upload(name: str = "reviews.jsonl", data: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, jsonl() if data is None else data, content_type="application/jsonl")


def make_dataset(partner) -> Dataset:
    return tuning_datasets.dataset_create(
        partner=partner, data=jsonl(), filename="reviews.jsonl", task="classification"
    )


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_a_developer_uploads_a_good_file_and_sees_stats_and_the_estimate(developer):
    response = signed_in(developer).post("/portal/datasets/upload/", {"file": upload(), "task": "classification"})
    assert response.status_code == 201
    dataset = Dataset.objects.get(partner=developer.partner)
    figures = tuning_jobs.tuning_estimate(dataset=dataset, hyperparameters={})
    page = _text(response)
    assert 'data-testid="dataset-created"' in page and dataset.public_id in page
    assert re.search(r'data-testid="stat-rows">40<', page)
    assert "great · 20" in page and "other · 20" in page
    estimate = page.split('data-testid="dataset-estimate"')[1].split("</dl>")[0]
    assert f"{figures['training_tokens']:,}" in estimate and f"{figures['units']:,}" in estimate
    assert f"about {figures['expected_seconds']} s" in estimate
    assert f"/portal/tuning/?dataset={dataset.public_id}" in page
    listed = _text(signed_in(developer).get("/portal/datasets/"))
    assert dataset.public_id in listed and "reviews.jsonl" in listed


def test_a_bad_file_shows_every_problem_with_its_line_and_stores_nothing(developer):
    good = json.dumps({"text": "fine", "label": "great"})
    lines = [good] * 11 + ["{not json", json.dumps({"text": "no label"}), good, json.dumps({"text": "", "label": "x"})]
    response = signed_in(developer).post(
        "/portal/datasets/upload/", {"file": upload("bad.jsonl", "\n".join(lines).encode()), "task": "classification"}
    )
    assert response.status_code == 400
    page = _text(response)
    assert 'data-testid="dataset-problems"' in page and "nothing was stored" in page
    problems = dict(re.findall(r'<tr data-line="(\d+)"><td class="num mono">\d+</td><td>([^<]+)</td>', page))
    assert set(problems) == {"12", "13", "15"}
    assert "not valid JSON" in problems["12"] and "missing" in problems["13"] and "non-empty" in problems["15"]
    assert not Dataset.objects.exists()
    stored = Path(settings.MEDIA_ROOT) / "datasets" / str(developer.partner_id)
    assert not stored.exists() or not any(stored.iterdir())


def test_an_empty_upload_form_is_refused(developer):
    response = signed_in(developer).post("/portal/datasets/upload/", {"task": "classification"})
    assert response.status_code == 400 and not Dataset.objects.exists()


def test_a_viewer_may_look_but_not_upload_start_cancel_or_delete(viewer, partner):
    dataset = make_dataset(partner)
    key, _ = make_key(partner)
    job = tuning_jobs.tuning_job_create(api_key=key, body={"dataset": dataset.public_id, "task": "classification"})
    client = signed_in(viewer)
    datasets_page = _text(client.get("/portal/datasets/"))
    assert dataset.public_id in datasets_page and "Upload and check" not in datasets_page
    tuning_page = _text(client.get("/portal/tuning/"))
    assert str(job.pk) in tuning_page and "Start tuning" not in tuning_page
    detail = _text(client.get(f"/portal/tuning/{job.pk}/"))
    assert "Cancel run" not in detail
    assert client.get(f"/portal/tuning/{job.pk}/status").status_code == 200
    upload_response = client.post("/portal/datasets/upload/", {"file": upload(), "task": "classification"})
    assert upload_response.status_code == 403
    assert client.post("/portal/tuning/start/", {"dataset": dataset.public_id, "method": "default"}).status_code == 403
    assert client.post(f"/portal/tuning/{job.pk}/cancel/").status_code == 403
    assert client.post(f"/portal/datasets/{dataset.public_id}/delete/").status_code == 403
    assert Dataset.objects.count() == 1 and TuningJob.objects.count() == 1
    job.refresh_from_db()
    assert job.status == "queued"


def test_another_partners_datasets_and_runs_are_404(developer, other_partner):
    theirs = make_dataset(other_partner)
    key, _ = make_key(other_partner)
    job = tuning_jobs.tuning_job_create(api_key=key, body={"dataset": theirs.public_id, "task": "classification"})
    client = signed_in(developer)
    assert client.get(f"/portal/tuning/{job.pk}/").status_code == 404
    assert client.get(f"/portal/tuning/{job.pk}/status").status_code == 404
    assert client.post(f"/portal/tuning/{job.pk}/cancel/").status_code == 404
    assert client.get("/portal/tuning/not-a-uuid/").status_code == 404
    assert client.post(f"/portal/datasets/{theirs.public_id}/delete/").status_code == 404
    assert client.get(f"/portal/tuning/estimate?dataset={theirs.public_id}").status_code == 400
    started = client.post("/portal/tuning/start/", {"dataset": theirs.public_id, "method": "default"})
    assert started.status_code == 400
    assert theirs.public_id not in _text(client.get("/portal/datasets/"))
    assert str(job.pk) not in _text(client.get("/portal/tuning/"))
    job.refresh_from_db()
    assert job.status == "queued" and TuningJob.objects.count() == 1 and Dataset.objects.filter(pk=theirs.pk).exists()


def test_the_estimate_endpoint_follows_the_form(developer, partner):
    dataset = make_dataset(partner)
    client = signed_in(developer)
    default = client.get(f"/portal/tuning/estimate?dataset={dataset.public_id}&method=default")
    assert default.status_code == 200
    assert default.json() == {
        "object": "tuning_estimate",
        "dataset": dataset.public_id,
        **tuning_jobs.tuning_estimate(dataset=dataset, hyperparameters={}),
    }
    five = client.get(f"/portal/tuning/estimate?dataset={dataset.public_id}&method=lora&epochs=5").json()
    assert five["epochs"] == 5 and five["units"] > default.json()["units"]
    bad = client.get(f"/portal/tuning/estimate?dataset={dataset.public_id}&method=default&epochs=99")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "epochs"
    page = _text(client.get(f"/portal/tuning/?dataset={dataset.public_id}"))
    assert f'<option value="{dataset.public_id}" selected>' in page and 'data-testid="tuning-estimate"' in page


def test_starting_a_run_from_the_form_charges_the_estimate(developer, partner):
    dataset = make_dataset(partner)
    client = signed_in(developer)
    response = client.post("/portal/tuning/start/", {"dataset": dataset.public_id, "method": "lora", "epochs": "2"})
    job = TuningJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/portal/tuning/{job.pk}/"
    figures = tuning_jobs.tuning_estimate(dataset=dataset, hyperparameters={"epochs": 2})
    assert job.units == figures["units"] and job.method == "lora" and job.hyperparameters == {"epochs": 2}
    assert job.api_key == ApiKey.objects.get(name="playground:devon")
    charge = UsageRecord.objects.get(job_id=job.pk, kind="charge")
    assert charge.units == figures["units"] and charge.capability == "tuning"
    assert job.events.first().message == "Tuning job created."
    detail = client.get(response["Location"])
    assert detail.status_code == 200
    page = _text(detail)
    assert 'data-testid="tuning-progress"' in page and "Cancel run" in page and 'id="tuning-status"' in page
    assert "waiting for a worker" in page


def test_the_status_endpoint_shows_the_loss_curve_the_worker_wrote(developer, partner):
    dataset = make_dataset(partner)
    key, raw = make_key(partner)
    job = tuning_jobs.tuning_job_create(api_key=key, body={"dataset": dataset.public_id, "task": "classification"})
    client = signed_in(developer)
    first = client.get(f"/portal/tuning/{job.pk}/status").json()
    assert first["id"] == str(job.pk) and first["status"] == "queued" and first["loss_history"] == []
    assert [event["message"] for event in first["events"]] == ["Tuning job created."]
    TuningJob.objects.filter(pk=job.pk).update(status="running")
    steps = [TrainingProgress(step, 12, step / 4, 1.0 / step, 1e-3 * step) for step in range(1, 7)]
    state = {"step": 6, "total_steps": 12, "epoch": 1.5, "loss": 1 / 6, "eta_seconds": 2.0}
    assert tuning_runs.tuning_progress_record(job=job, points=steps[:4], state=state)
    assert tuning_runs.tuning_progress_record(job=job, points=steps[3:], state=state)  # step 4 again: kept once
    polled = client.get(f"/portal/tuning/{job.pk}/status")
    assert polled["Cache-Control"].startswith("max-age=0") or "no-cache" in polled["Cache-Control"]
    expected = [[step, round(1.0 / step, 5)] for step in range(1, 7)]
    body = polled.json()
    assert body["progress"]["step"] == 6 and body["loss_history"] == expected
    assert [event["message"] for event in body["events"]] == ["Tuning job created."]
    cache.clear()
    fresh = signed_in(developer).get(f"/portal/tuning/{job.pk}/status").json()
    assert fresh["loss_history"] == expected
    events = client_for(raw).get(f"/api/v1/tuning-jobs/{job.pk}/events").json()["data"]
    metrics = [event for event in events if event["kind"] == "metrics"]
    assert [(event["step"], event["loss"]) for event in metrics] == [(s, 1.0 / s) for s in range(1, 7)]
    assert metrics[-1]["learning_rate"] == pytest.approx(6e-3) and metrics[-1]["epoch"] == 1.5
    assert metrics[0]["message"] == "Step 1/12: training loss 1.0000" and events[0]["kind"] == "message"
    openai = client_for(raw).get(f"/v1/fine_tuning/jobs/{job.pk}/events").json()["data"]  # newest first
    assert openai[0]["type"] == "metrics" and openai[0]["data"] == {"step": 6, "train_loss": 1 / 6, "epoch": 1.5}
    assert openai[-1]["type"] == "message" and openai[-1]["message"] == "Tuning job created."
    tuning_jobs.tuning_job_cancel(job=job)
    assert not tuning_runs.tuning_progress_record(job=job, points=[], state=state)


def test_cancel_refunds_and_a_second_cancel_is_refused(developer, partner):
    dataset = make_dataset(partner)
    client = signed_in(developer)
    client.post("/portal/tuning/start/", {"dataset": dataset.public_id, "method": "default"})
    job = TuningJob.objects.get()
    response = client.post(f"/portal/tuning/{job.pk}/cancel/", follow=True)
    job.refresh_from_db()
    assert job.status == "canceled"
    assert UsageRecord.objects.filter(job_id=job.pk, kind="refund").count() == 1
    page = _text(response)
    assert "units are refunded" in page and "Cancel run" not in page
    again = client.post(f"/portal/tuning/{job.pk}/cancel/", follow=True)
    assert "already canceled" in _text(again)
    assert UsageRecord.objects.filter(job_id=job.pk, kind="refund").count() == 1


def test_a_finished_run_shows_metrics_parameters_and_the_model(developer, partner):
    dataset = make_dataset(partner)
    key, _ = make_key(partner)
    job = tuning_jobs.tuning_job_create(api_key=key, body={"dataset": dataset.public_id, "task": "classification"})
    result = {
        "trainable_parameters": 1_538,
        "total_parameters": 22_714_370,
        "metrics": {"accuracy": 0.875, "macro_f1": 0.8667, "loss": 0.41, "train_loss": 0.35},
        "details": {"recipe": "frozen-encoder head", "seconds": 4.2},
    }
    TuningJob.objects.filter(pk=job.pk).update(status="succeeded", result=result)
    name = tuning_runs.tuned_model_name(job)
    TunedModel.objects.create(
        name=name, partner=partner, tuning_job=job, task="classification", base_model=job.base_model, adapter_path="x"
    )
    page = _text(signed_in(developer).get(f"/portal/tuning/{job.pk}/"))
    assert f'data-testid="tuned-model">{name}<' in page
    assert "0.875" in page and "0.867" in page and "1,538 of 22,714,370" in page
    assert "curl -X POST" in page and "text_classification" in page and "Cancel run" not in page
    listed = _text(signed_in(developer).get("/portal/tuning/"))
    assert name in listed


def test_delete_a_dataset_removes_its_file(developer, partner):
    dataset = make_dataset(partner)
    path = tuning_datasets.dataset_path(dataset)
    assert path.exists()
    response = signed_in(developer).post(f"/portal/datasets/{dataset.public_id}/delete/", follow=True)
    assert response.status_code == 200 and "is deleted" in _text(response)
    assert not Dataset.objects.exists() and not path.exists()


def test_forms_need_the_csrf_token(developer, partner):
    dataset = make_dataset(partner)
    client = signed_in(developer, enforce_csrf=True)
    assert client.post("/portal/datasets/upload/", {"file": upload(), "task": "classification"}).status_code == 403
    assert client.post("/portal/tuning/start/", {"dataset": dataset.public_id, "method": "default"}).status_code == 403
    assert client.post(f"/portal/datasets/{dataset.public_id}/delete/").status_code == 403
    assert Dataset.objects.count() == 1 and not TuningJob.objects.exists()
    page = _text(client.get("/portal/datasets/"))
    assert page.count("csrfmiddlewaretoken") >= 3  # sign-out, upload, delete


def test_the_portal_menu_links_datasets_and_tuning(viewer):
    page = _text(signed_in(viewer).get("/portal/"))
    assert 'href="/portal/datasets/"' in page and 'href="/portal/tuning/"' in page
