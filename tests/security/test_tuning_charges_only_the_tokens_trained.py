"""Tuning is charged by the tokens it trains, counted with the base model's own tokenizer: the estimate at creation,
what a canceled or timed-out run keeps (only the untrained rest is refunded), and a full run; and a partner has at
most ALLIANCE_MAX_ACTIVE_TUNING_JOBS tuning jobs queued or running, even when it asks for many at once."""

from __future__ import annotations

import io
import json
import math
import threading

import pytest
from django.db import connection
from django.test import override_settings
from transformers import AutoTokenizer

from capabilities.default_models import EMBEDDER, LLM
from inference.backends.tuning import TrainingProgress, generation
from inference.models import TuningJob, TuningStatus
from inference.registry import get_model_spec, resolve_source
from inference.services import tuning_datasets, tuning_jobs, tuning_runs
from inference.services.tuning_tokens import row_counter, split_rows
from partners.models import QuotaPeriod, UsageRecord
from tests.factories import client_for, make_key, make_partner

pytestmark = pytest.mark.usefixtures("prepared_llm")  # the web side counts with its tokenizer

REVIEWS = [
    ("The coffee was rich and smooth, exactly as described; I will order it again for the whole office.", "great"),
    ("Stale crackers. 유통기한이 지난 것 같아요, the box was crushed and half of them were broken.", "other"),
    ("Great tea, café-quality aroma, fast delivery.", "great"),
    ("Too sweet for me and the packaging leaked sticky syrup over everything else in the parcel.", "other"),
]


def classification_rows(n: int = 40) -> list[dict]:
    return [{"text": f"{REVIEWS[i % 4][0]} ({i})", "label": REVIEWS[i % 4][1]} for i in range(n)]


def jsonl(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(row, ensure_ascii=False) for row in rows).encode()


def upload(api, rows: list[dict], task: str = "classification") -> dict:
    data = io.BytesIO(jsonl(rows))
    data.name = "rows.jsonl"
    response = api.post("/api/v1/datasets", {"file": data, "task": task}, format="multipart")
    assert response.status_code == 201, response.json()
    return response.json()


def tokenizer_of(model: str):
    return AutoTokenizer.from_pretrained(resolve_source(get_model_spec(model).source), local_files_only=True)


def trainer_tokens(task: str, rows: list[dict], max_length: int) -> int:
    """The tokens the trainer itself builds for these rows, with transformers (what a worker trains on)."""
    if task == "classification":
        ids = tokenizer_of(EMBEDDER)([r["text"] for r in rows], truncation=True, max_length=max_length)["input_ids"]
        return sum(map(len, ids))
    tokenizer = tokenizer_of(LLM)
    examples = [generation.render(tokenizer, task, row, max_length) for row in rows]
    return sum(len(e.prompt_ids) + len(e.target_ids) for e in examples)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("task", "model", "rows"),
    [
        ("classification", EMBEDDER, classification_rows(12)),
        (
            "generation",
            LLM,
            [{"prompt": f"서울의 날씨는 어때요? ({i})", "completion": "Sunny, 23 °C."} for i in range(6)],
        ),
        (
            "chat",
            LLM,
            [
                {
                    "messages": [
                        {"role": "system", "content": "You answer like a bank teller."},
                        {"role": "user", "content": f"How do I open account {i}?"},
                        {"role": "assistant", "content": "Bring an ID card to any branch. " * (i + 1)},
                    ]
                }
                for i in range(6)
            ],
        ),
    ],
)
def test_the_web_counts_each_row_as_the_trainer_tokenizes_it(task, model, rows):
    counts = row_counter(model).counts(task, rows)
    assert [trainer_tokens(task, [row], 100_000) for row in rows] == counts
    characters = [math.ceil(len(json.dumps(row, ensure_ascii=False)) / 4) for row in rows]
    assert counts != characters  # not the characters / 4 of before


@pytest.mark.django_db
def test_the_estimate_charges_the_training_rows_tokens_times_the_epochs(partner, api):
    rows = classification_rows(40)
    dataset = upload(api, rows)
    hyper = {"epochs": 2, "max_length": 16, "seed": 3, "validation_fraction": 0.2}
    body = {"dataset": dataset["id"], "task": "classification", "method": "ia3", "hyperparameters": hyper}
    estimate = api.post("/api/v1/tuning-jobs/estimate", body, format="json").json()
    train, _ = split_rows("classification", rows, 0.2, 3)
    expected = trainer_tokens("classification", train, 16) * 2
    assert estimate["token_count"] == "tokenizer"
    assert estimate["training_tokens"] == expected == estimate["units"]
    created = api.post("/api/v1/tuning-jobs", body, format="json")
    assert created.status_code == 201
    charge = UsageRecord.objects.get(job_id=created.json()["id"], kind="charge")
    assert charge.units == expected


def start(api, rows=None, **hyperparameters) -> TuningJob:
    dataset = upload(api, rows or classification_rows(40))
    body = {"dataset": dataset["id"], "task": "classification", "method": "ia3", "hyperparameters": hyperparameters}
    response = api.post("/api/v1/tuning-jobs", body, format="json")
    assert response.status_code == 201, response.json()
    return TuningJob.objects.get(pk=response.json()["id"])


def tuning_used(partner) -> int:
    return QuotaPeriod.objects.get(quota__partner=partner, quota__capability="tuning").used


@pytest.mark.django_db
def test_a_running_job_canceled_keeps_the_charge_for_the_tokens_it_trained_and_refunds_the_rest(partner, api):
    job = start(api, epochs=2)
    charged = job.units
    TuningJob.objects.filter(pk=job.pk).update(status=TuningStatus.RUNNING)
    recorder = tuning_runs.TuningProgressRecorder(job)
    recorder.planned_tokens = charged
    for step in range(1, 4):  # 3 of 10 steps trained, then the partner cancels
        recorder(TrainingProgress(step, 10, step / 5, 0.5, 1e-3))
    recorder.flush()
    trained = math.ceil(charged * 3 / 10)
    assert TuningJob.objects.get(pk=job.pk).progress["trained_tokens"] == trained

    response = api.post(f"/api/v1/tuning-jobs/{job.pk}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert response.json()["usage"]["units"] == trained
    refund = UsageRecord.objects.get(job_id=job.pk, kind="refund")
    assert refund.units == charged - trained
    assert tuning_used(partner) == trained
    assert api.post(f"/api/v1/tuning-jobs/{job.pk}/cancel").status_code == 409
    assert UsageRecord.objects.filter(job_id=job.pk, kind="refund").count() == 1


@pytest.mark.django_db
def test_a_queued_job_canceled_is_refunded_in_full(partner, api):
    job = start(api)
    assert tuning_used(partner) == job.units > 0
    assert api.post(f"/api/v1/tuning-jobs/{job.pk}/cancel").status_code == 200
    assert UsageRecord.objects.get(job_id=job.pk, kind="refund").units == job.units
    assert tuning_used(partner) == 0


@pytest.mark.django_db
def test_a_run_past_the_time_limit_keeps_the_charge_for_the_tokens_it_trained(partner, api):
    job = start(api, rows=classification_rows(400), epochs=3, batch_size=4, max_length=32)
    charged = job.units
    with override_settings(ALLIANCE_TUNING_MAX_SECONDS=3.0):
        tuning_runs.tuning_job_run(str(job.pk))  # the worker's own service, in this process
    job.refresh_from_db()
    assert job.status == "failed" and job.error["code"] == "time_limit"
    step, total = job.progress["step"], job.progress["total_steps"]
    assert 0 < step < total
    trained = math.ceil(charged * step / total)
    assert job.progress["trained_tokens"] == trained == job.units
    assert UsageRecord.objects.get(job_id=job.pk, kind="refund").units == charged - trained
    assert tuning_used(partner) == trained


@pytest.mark.django_db
def test_a_full_run_is_charged_exactly_its_estimate(partner, api):
    job = start(api, rows=classification_rows(24), epochs=1, max_length=24)
    charged = job.units
    tuning_runs.tuning_job_run(str(job.pk))
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert job.progress["training_tokens"] == job.progress["trained_tokens"] == charged == job.units
    assert not UsageRecord.objects.filter(job_id=job.pk, kind="refund").exists()
    assert tuning_used(partner) == charged


@pytest.mark.django_db
def test_a_partner_has_at_most_the_capped_number_of_tuning_jobs_queued_or_running(partner, api):
    with override_settings(ALLIANCE_MAX_ACTIVE_TUNING_JOBS=2):
        first, second = start(api), start(api)
        dataset = upload(api, classification_rows(12))
        body = {"dataset": dataset["id"], "task": "classification"}
        refused = api.post("/api/v1/tuning-jobs", body, format="json")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_tuning_jobs"
        assert "at most 2" in refused.json()["error"]["message"]
        assert TuningJob.objects.filter(partner=partner).count() == 2
        other = client_for(make_key(make_partner("LG Uplus", sector="telecom"))[1])
        assert start(other).partner.slug == "lg-uplus"  # the cap is per partner
        api.post(f"/api/v1/tuning-jobs/{first.pk}/cancel")
        assert api.post("/api/v1/tuning-jobs", body, format="json").status_code == 201
        assert second.pk != first.pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_tuning_requests_never_exceed_the_cap():
    partner = make_partner("Shutterstock", sector="content")
    key, _ = make_key(partner)
    dataset = tuning_datasets.dataset_create(
        partner=partner, data=jsonl(classification_rows(12)), filename="rows.jsonl", task="classification"
    )
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def create() -> None:
        try:
            barrier.wait()
            tuning_jobs.tuning_job_create(api_key=key, body={"dataset": dataset.public_id, "task": "classification"})
            outcomes.append("created")
        except Exception as exc:  # noqa: BLE001 - the refusal is the outcome under test
            outcomes.append(getattr(exc, "code", repr(exc)))
        finally:
            connection.close()

    with override_settings(ALLIANCE_MAX_ACTIVE_TUNING_JOBS=3):
        threads = [threading.Thread(target=create) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(outcomes) == ["created"] * 3 + ["too_many_tuning_jobs"] * 5
    assert TuningJob.objects.filter(partner=partner).count() == 3
    assert UsageRecord.objects.filter(partner=partner, kind="charge").count() == 3
