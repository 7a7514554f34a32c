"""The operator's view in a real browser (headless Chromium): an operator signs in to the admin, opens the
overview, sees the queues, a live worker and a stuck job, and requeues it with the button. The screenshot is the
README's (ALLIANCE_SCREENSHOTS=1 refreshes docs/screenshots)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from inference.models import Job
from monitoring import heartbeats
from partners.models import AuditEvent
from tests.factories import make_partner
from tests.web.test_browser import browser, page, shots  # noqa: F401 - the browser fixtures

PASSWORD = "operator-password-0123456789"


def _jobs() -> Job:
    stale = timezone.now() - dt.timedelta(seconds=settings.ALLIANCE_JOB_STALE_SECONDS + 90)
    rows = [
        ("woori-bank", "Woori Bank", "finance", "dialogue", "smollm2-135m-instruct", "llm", "succeeded", 5),
        ("woori-bank", "Woori Bank", "finance", "summarization", "smollm2-135m-instruct", "llm", "queued", 2),
        ("lg-chem", "LG Chem", "manufacturing", "keyword_extraction", "all-MiniLM-L6-v2", "embeddings", "succeeded", 9),
        ("lg-chem", "LG Chem", "manufacturing", "image_captioning", "captioner", "vision", "failed", 1),
    ]
    partners = {}
    for slug, name, sector, capability, model, queue, status, count in rows:
        partner = partners.get(slug) or partners.setdefault(slug, make_partner(name, sector=sector))
        for _ in range(count):
            Job.objects.create(
                partner=partner,
                capability=capability,
                model=model,
                queue=queue,
                status=status,
                input={},
                units=12 if status == "succeeded" else 0,
                error={"code": "model_error", "message": "m"} if status == "failed" else None,
            )
    return Job.objects.create(
        partner=partners["lg-chem"],
        capability="keyword_extraction",
        model="all-MiniLM-L6-v2",
        queue="embeddings",
        status="running",
        input={},
        attempts=2,
        started_at=stale,
        heartbeat_at=stale,
    )


def test_an_operator_requeues_a_stuck_job_from_the_overview(transactional_db, page, shots):  # noqa: F811
    get_user_model().objects.create_user("operator", password=PASSWORD, is_staff=True, is_superuser=True)
    stuck = _jobs()
    beats = [
        heartbeats.WorkerBeat(
            hostname="embeddings@gpu-a",
            pid=11,
            queues=["default", "embeddings", "webhooks"],
            models=["all-MiniLM-L6-v2"],
        ),
        heartbeats.WorkerBeat(
            hostname="llm@gpu-b", pid=12, queues=["llm"], models=["all-MiniLM-L6-v2", "smollm2-135m-instruct"]
        ),
    ]
    for beat in beats:
        beat.beat()
    try:
        page.goto("/admin/monitoring/operatoroverview/")
        page.get_by_label("Username").fill("operator")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.get_by_role("heading", name="Live workers").wait_for()
        assert page.get_by_role("cell", name="llm@gpu-b").is_visible()
        shots(page, "operator-overview")
        page.get_by_role("row").filter(has_text=str(stuck.pk)).get_by_role("button", name="Requeue").click()
        page.get_by_text(f"Job {stuck.pk} requeued on embeddings.").wait_for()
    finally:
        for beat in beats:
            beat.stop()
    stuck.refresh_from_db()
    assert stuck.status == "queued"
    assert AuditEvent.objects.filter(action="job.requeued", target=str(stuck.pk), actor="user:operator").exists()
