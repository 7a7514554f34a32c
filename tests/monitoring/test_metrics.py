"""The operators' /metrics in one process: who may read it, and the counters and gauges that move with real rows
and real API answers (the multiprocess scrape with live workers is in tests/integration/test_operations.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from inference.models import Job, TuningJob, WebhookDelivery
from tests.factories import client_for, keyword_job, make_key, make_partner
from tests.services import skip_or_fail_without_services

TOKEN = "a-test-metrics-token-0123456789"


@pytest.fixture
def operators(db, settings):
    skip_or_fail_without_services()
    settings.ALLIANCE_METRICS_TOKEN = TOKEN


def _samples(client: Client | None = None) -> dict[tuple[str, tuple], float]:
    client = client or Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    response = client.get("/metrics")
    assert response.status_code == 200, response.content[:300]
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }


def _total(samples, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


def test_metrics_are_for_operators_only(operators, settings):
    assert Client().get("/metrics").status_code == 401
    assert Client(HTTP_AUTHORIZATION="Bearer nope").get("/metrics").status_code == 403
    member = get_user_model().objects.create_user("member", password="pw-member-123456")
    client = Client()
    client.force_login(member)
    assert client.get("/metrics").status_code == 403
    staff = get_user_model().objects.create_user("operator", password="pw-operator-123456", is_staff=True)
    client.force_login(staff)
    assert "alliance_queue_depth" in client.get("/metrics").content.decode()
    settings.ALLIANCE_METRICS_TOKEN = ""  # no token configured: no bearer token opens it, not even an empty one
    assert Client(HTTP_AUTHORIZATION="Bearer ").get("/metrics").status_code == 403
    assert Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}").get("/metrics").status_code == 403


def test_quota_rejections_are_counted_by_code(operators):
    partner = make_partner("LG Uplus", sector="telecom")
    api = client_for(make_key(partner)[1])
    call_command("set_quota", partner.slug, "keyword_extraction", "--monthly-units", "1")
    before = _total(_samples(), "alliance_rejections_total", code="quota_exceeded")
    response = api.post("/api/v1/jobs", keyword_job(), format="json")
    assert response.status_code == 429 and response.json()["error"]["code"] == "quota_exceeded"
    assert _total(_samples(), "alliance_rejections_total", code="quota_exceeded") == before + 1


def test_submissions_queue_depth_webhooks_and_tuning_progress(operators, django_capture_on_commit_callbacks):
    partner = make_partner("Shutterstock", sector="content", tier="strategic")
    api = client_for(make_key(partner)[1])
    before = _samples()
    with django_capture_on_commit_callbacks(execute=True):
        ids = [api.post("/api/v1/jobs", keyword_job(f"text {i}"), format="json").json()["id"] for i in range(2)]
    after = _samples()
    labels = {"capability": "keyword_extraction", "tier": "strategic"}
    assert (
        _total(after, "alliance_jobs_submitted_total", **labels)
        == _total(before, "alliance_jobs_submitted_total", **labels) + 2
    )
    assert _total(after, "alliance_queue_depth", family="embeddings") == 2

    job = Job.objects.get(pk=ids[0])
    sent = _total(after, "alliance_webhook_deliveries_total")
    WebhookDelivery.objects.create(job=job, attempt=1, status_code=200, delivered=True)
    WebhookDelivery.objects.create(job=job, attempt=2, status_code=503, error="HTTP 503")
    WebhookDelivery.objects.create(job=job, attempt=3, error="connection refused")
    hooks = _samples()
    assert _total(hooks, "alliance_webhook_deliveries_total") == sent + 3
    for outcome in ("delivered", "http_5xx", "unreachable"):
        assert _total(hooks, "alliance_webhook_deliveries_total", outcome=outcome) >= 1

    tuning = TuningJob.objects.create(
        partner=partner,
        task="classification",
        base_model="all-MiniLM-L6-v2",
        method="lora",
        status="running",
        progress={"step": 5, "total_steps": 20},
    )
    samples = _samples()
    assert _total(samples, "alliance_tuning_jobs_running") == 1
    assert _total(samples, "alliance_tuning_job_progress", job=str(tuning.pk)) == 0.25
    assert _total(samples, "alliance_jobs_running", family="tuning") == 1


def test_live_workers_and_what_they_host(operators):
    from monitoring import heartbeats

    beat = heartbeats.WorkerBeat(hostname="vision@metrics-box", pid=5, queues=["vision"], models=["captioner"])
    beat.beat()
    heartbeats.store().put(
        "vision@metrics-box/9", heartbeats.BATCH, {"hostname": "vision@metrics-box", "job_id": "j", "pid": 9}, 30
    )
    try:
        samples = _samples()
    finally:
        heartbeats.store().delete("vision@metrics-box/9")
        beat.stop()
    assert (
        _total(samples, "alliance_worker_info", worker="vision@metrics-box", queues="vision", models="captioner") == 1
    )
    assert _total(samples, "alliance_worker_busy_processes", worker="vision@metrics-box") == 1
    assert _total(samples, "alliance_workers_live", family="vision") == 1
    assert _total(_samples(), "alliance_worker_info", worker="vision@metrics-box") == 0  # gone once it stopped
