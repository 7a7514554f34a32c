"""Dynamic batching on the worker's code path, with the real MiniLM classifier."""

from __future__ import annotations

import uuid

import pytest

from inference import services
from inference.models import Job
from inference.services.execution import job_claim_next
from partners.models import UsageRecord
from tests.factories import keyword_job

pytestmark = pytest.mark.django_db

REVIEWS = [
    ("This coffee is wonderful, rich and smooth. I will buy it again!", "praise"),
    ("The package arrived broken and the support team never answered.", "complaint"),
    ("Absolutely delicious snack, my kids love it.", "praise"),
    ("Terrible taste, stale and overpriced. Very disappointed.", "complaint"),
]


def _submit(api, text: str, labels: list[str] | None = None) -> str:
    data = {"text": text, **({"labels": labels} if labels is not None else {})}
    response = api.post("/api/v1/jobs", {"capability": "text_classification", "input": data}, format="json")
    assert response.status_code == 202, response.json()
    return response.json()["id"]


def test_one_delivery_runs_every_queued_job_of_its_kind_as_one_batch(api):
    ids = [_submit(api, text, ["praise", "complaint"]) for text, _ in REVIEWS]
    batch = services.job_execute(ids[0])
    assert sorted(str(job.pk) for job in batch) == sorted(ids)
    jobs = {str(job.pk): job for job in Job.objects.filter(pk__in=ids)}
    assert len({job.claim_token for job in jobs.values()}) == 1
    for job_id, (_, expected) in zip(ids, REVIEWS, strict=True):
        job = jobs[job_id]
        assert job.status == "succeeded" and job.attempts == 1
        assert job.output["label"] == expected, job.output
        assert abs(sum(job.output["scores"].values()) - 1) < 1e-3
    assert services.job_execute(ids[1]) == []


def test_batching_can_be_turned_off(api, settings):
    settings.ALLIANCE_MAX_BATCH = 1
    ids = [_submit(api, text, ["praise", "complaint"]) for text, _ in REVIEWS[:2]]
    assert [str(job.pk) for job in services.job_execute(ids[0])] == [ids[0]]
    assert Job.objects.get(pk=ids[1]).status == "queued"


def test_a_bad_job_fails_alone_and_the_rest_of_its_batch_succeeds(api):
    good = _submit(api, REVIEWS[0][0], ["praise", "complaint"])
    bad = _submit(api, "a job its model cannot run", ["praise", "complaint"])
    Job.objects.filter(pk=bad).update(input={"text": "a job its model cannot run"})  # labels lost on the way
    other = _submit(api, REVIEWS[1][0], ["praise", "complaint"])
    services.job_execute(good)
    jobs = {str(job.pk): job for job in Job.objects.filter(pk__in=[good, bad, other])}
    assert jobs[good].status == "succeeded" and jobs[other].status == "succeeded"
    assert jobs[bad].status == "failed" and jobs[bad].error["code"] == "invalid_input"
    assert "labels" in jobs[bad].error["message"]
    assert UsageRecord.objects.filter(job_id=bad, kind="refund").count() == 1
    assert not UsageRecord.objects.filter(job_id=good, kind="refund").exists()


def test_multi_label_scores_are_independent(api):
    job_id = _submit(
        api,
        "A fast laptop with a gorgeous screen and a long battery life.",
        ["computers", "display quality", "cooking"],
    )
    Job.objects.filter(pk=job_id).update(params={"multi_label": True, "hypothesis_template": "This text is about {}."})
    services.job_execute(job_id)
    scores = Job.objects.get(pk=job_id).output["scores"]
    assert scores["cooking"] < 0.5 < scores["computers"]
    assert sum(scores.values()) > 1.0


def test_a_batch_is_claimed_in_one_go_and_holds_one_capability(api):
    keywords = api.post("/api/v1/jobs", keyword_job(), format="json").json()["id"]
    ids = [_submit(api, text, ["praise", "complaint"]) for text, _ in REVIEWS]
    # MiniLM serves both capabilities: the fairest (oldest) job runs alone with its kind, the others next.
    assert [str(job.pk) for job in services.job_execute(ids[0])] == [keywords]
    batch = services.job_execute(ids[1])
    assert [str(job.pk) for job in batch] == ids  # oldest first, under one claim
    assert len({job.claim_token for job in batch}) == 1
    assert Job.objects.filter(pk__in=[keywords, *ids], status="succeeded").count() == 5


def test_an_output_the_database_refuses_fails_its_job_alone_with_a_refund(api):
    ids = [_submit(api, text, ["praise", "complaint"]) for text, _ in REVIEWS[:3]]
    delivered = Job.objects.get(pk=ids[0])
    jobs = job_claim_next(model=delivered.model, token=uuid.uuid4(), resend=delivered, limit=8)
    assert len(jobs) == 3
    outputs = [{"label": "praise", "scores": {"praise": 1.0}} for _ in jobs]
    outputs[1]["scores"]["praise"] = float("nan")  # not JSON PostgreSQL accepts: the batch's one UPDATE fails
    finished = services.jobs_succeed(results=list(zip(jobs, outputs, strict=True)), token=jobs[0].claim_token)
    assert finished.succeeded == 2 and [job.pk for job, _ in finished.failures] == [jobs[1].pk]
    for job, exc in finished.failures:
        assert services.job_fail(job=job, token=job.claim_token, code="model_error", message=str(type(exc)))
    states = dict(Job.objects.filter(pk__in=ids).values_list("pk", "status"))
    assert [states[job.pk] for job in jobs] == ["succeeded", "failed", "succeeded"]
    assert Job.objects.get(pk=jobs[0].pk).output == outputs[0]
    assert UsageRecord.objects.filter(job_id=jobs[1].pk, kind="refund").count() == 1
    assert not UsageRecord.objects.filter(job_id__in=[jobs[0].pk, jobs[2].pk], kind="refund").exists()
