"""The job state machine, driven through the services a worker calls."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from inference import services
from inference.models import Job
from partners.models import QuotaPeriod, UsageRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued_job(api):
    from tests.factories import keyword_job

    job_id = api.post("/api/v1/jobs", keyword_job(), format="json").json()["id"]
    return Job.objects.get(pk=job_id)


def test_a_job_is_claimed_once(queued_job):
    first = services.job_claim(str(queued_job.pk))
    assert first is not None
    job, token = first
    assert job.status == "running" and job.attempts == 1 and job.claim_token == token
    assert services.job_claim(str(queued_job.pk)) is None
    assert Job.objects.get(pk=queued_job.pk).attempts == 1


def test_a_stale_claim_cannot_finish_the_job(queued_job):
    job, token = services.job_claim(str(queued_job.pk))
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=5))
    assert services.jobs_reap()["requeued"] == 1
    assert Job.objects.get(pk=job.pk).status == "queued"
    assert services.job_succeed(job=job, token=token, output={"keywords": []}) is False
    job2, token2 = services.job_claim(str(job.pk))
    assert token2 != token and job2.attempts == 2
    assert services.job_succeed(job=job2, token=token2, output={"keywords": [{"keyword": "x", "score": 1.0}]})
    finished = Job.objects.get(pk=job.pk)
    assert finished.status == "succeeded" and finished.output["keywords"][0]["keyword"] == "x"
    assert UsageRecord.objects.filter(job_id=job.pk).count() == 1


def test_the_reaper_leaves_a_job_with_a_fresh_heartbeat_alone(queued_job):
    services.job_claim(str(queued_job.pk))
    assert services.jobs_reap() == {"requeued": 0, "failed": 0, "resent": 0}
    assert Job.objects.get(pk=queued_job.pk).status == "running"


def test_a_job_whose_workers_keep_dying_fails_with_a_refund(queued_job, settings):
    settings.ALLIANCE_JOB_MAX_ATTEMPTS = 2
    for _ in range(2):
        services.job_claim(str(queued_job.pk))
        Job.objects.filter(pk=queued_job.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=5))
        services.jobs_reap()
    job = Job.objects.get(pk=queued_job.pk)
    assert job.status == "failed"
    assert job.error["code"] == "worker_lost"
    assert UsageRecord.objects.filter(job_id=job.pk, kind="refund").count() == 1
    assert QuotaPeriod.objects.get().used == 0


def test_queued_jobs_the_broker_may_have_lost_are_sent_again(queued_job, settings):
    Job.objects.filter(pk=queued_job.pk).update(enqueued_at=timezone.now() - dt.timedelta(hours=1))
    assert services.jobs_reap()["resent"] == 1
    assert Job.objects.get(pk=queued_job.pk).enqueued_at > timezone.now() - dt.timedelta(minutes=1)
    assert services.jobs_reap()["resent"] == 0


def test_failure_refunds_and_records_a_clear_error(queued_job):
    job, token = services.job_claim(str(queued_job.pk))
    assert services.job_fail(job=job, token=token, code="model_error", message="The model failed: RuntimeError.")
    failed = Job.objects.get(pk=job.pk)
    assert failed.status == "failed"
    assert failed.error == {"code": "model_error", "message": "The model failed: RuntimeError."}
    assert UsageRecord.objects.filter(job_id=job.pk, kind="refund").count() == 1
    assert services.job_fail(job=job, token=token, code="model_error", message="again") is False
    assert UsageRecord.objects.filter(job_id=job.pk, kind="refund").count() == 1


def test_a_delivery_for_a_finished_job_is_a_no_op(queued_job):
    job, token = services.job_claim(str(queued_job.pk))
    services.job_succeed(job=job, token=token, output={"keywords": []})
    assert services.job_execute(str(job.pk)) == []
    assert Job.objects.get(pk=job.pk).attempts == 1
