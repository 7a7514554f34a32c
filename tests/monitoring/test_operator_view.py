"""The operator's view in the admin: staff only; the last day per partner and capability, the queues, the live
workers; a stuck job requeued (state, broker message and audit event), a healthy one refused."""

from __future__ import annotations

import datetime as dt

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from inference.models import Job
from monitoring import heartbeats
from partners.models import AuditEvent
from tests.factories import make_partner
from tests.services import skip_or_fail_without_services

URL = "/admin/monitoring/operatoroverview/"


@pytest.fixture
def staff_client(db):
    skip_or_fail_without_services()
    client = Client()
    client.force_login(get_user_model().objects.create_user("ops", password="pw-ops-123456789", is_staff=True))
    return client


def _job(partner, status: str, **fields) -> Job:
    return Job.objects.create(
        partner=partner,
        capability="keyword_extraction",
        model="all-MiniLM-L6-v2",
        queue="embeddings",
        status=status,
        input={"text": "private words of the partner"},
        **fields,
    )


def test_only_staff_see_the_overview(db):
    skip_or_fail_without_services()
    assert Client().get(URL).status_code == 302
    member = Client()
    member.force_login(get_user_model().objects.create_user("member", password="pw-member-123456"))
    assert member.get(URL).status_code == 302  # the admin sends non-staff to its sign-in page


def test_the_overview_shows_usage_queues_workers_and_stuck_jobs(staff_client):
    partner = make_partner("EBS", sector="education")
    _job(partner, "succeeded", units=7)
    _job(partner, "failed", units=3, error={"code": "model_error", "message": "x"})
    queued = _job(partner, "queued")
    stale = timezone.now() - dt.timedelta(seconds=settings.ALLIANCE_JOB_STALE_SECONDS + 60)
    stuck = _job(partner, "running", heartbeat_at=stale, attempts=2)
    beat = heartbeats.WorkerBeat(hostname="embeddings@ops-box", pid=3, queues=["embeddings"], models=["MiniLM-x"])
    beat.beat()
    try:
        page = staff_client.get(URL)
    finally:
        beat.stop()
    assert page.status_code == 200
    html = page.content.decode()
    row = next(r for r in page.context["usage"] if r["partner__slug"] == "ebs")
    assert (row["jobs"], row["units"], row["failures"], row["open"]) == (4, 7, 1, 2)
    embeddings = next(q for q in page.context["queues"] if q.family == "embeddings")
    assert (embeddings.queued, embeddings.running) == (1, 1)
    assert "embeddings@ops-box" in html and "MiniLM-x" in html
    listed = {job.pk: requeueable for job, requeueable in page.context["attention"]}
    assert listed[stuck.pk] is True and queued.pk not in listed  # a fresh queued job is not stuck
    assert f"requeue/{stuck.pk}/" in html
    assert "private words" not in html


def test_requeue_sends_a_stuck_job_again_and_audits_it(staff_client, django_capture_on_commit_callbacks):
    partner = make_partner("VA Corporation", sector="content")
    stale = timezone.now() - dt.timedelta(seconds=settings.ALLIANCE_JOB_STALE_SECONDS + 60)
    stuck = _job(partner, "running", heartbeat_at=stale, attempts=1, started_at=stale)
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    before = broker.llen("embeddings")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(f"{URL}requeue/{stuck.pk}/")
    assert response.status_code == 302
    stuck.refresh_from_db()
    assert stuck.status == "queued" and stuck.claim_token is None and stuck.started_at is None
    assert broker.llen("embeddings") == before + 1
    event = AuditEvent.objects.get(action="job.requeued", target=str(stuck.pk))
    assert event.actor == "user:ops" and event.partner == partner and event.data["status"] == "running"
    broker.delete("embeddings")


def test_a_healthy_job_is_not_requeued(staff_client):
    done = _job(make_partner("LG Electronics", sector="manufacturing"), "succeeded")
    page = staff_client.post(f"{URL}requeue/{done.pk}/", follow=True)
    assert "not stuck" in page.content.decode()
    done.refresh_from_db()
    assert done.status == "succeeded" and not AuditEvent.objects.filter(action="job.requeued").exists()
    assert staff_client.get(f"{URL}requeue/{done.pk}/").status_code == 405
