"""The worker's per-job metrics and log lines, from the rows a batch wrote: tokens per second for language-model
jobs (counted with the model's own tokenizer), failures by code, and the request id of each job of a batch."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from django.core.cache import cache
from django.utils import timezone

from alliance.celery import app
from inference.models import Job
from monitoring import job_events, logs, metrics
from tests.factories import make_partner
from tests.services import skip_or_fail_without_services


@pytest.fixture
def events(db, caplog):
    skip_or_fail_without_services()
    caplog.set_level(logging.INFO, logger="alliance.events")
    return caplog


def _lines(caplog) -> list[dict]:
    formatter = logs.JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "alliance.events"]


def test_a_language_model_batch_reports_tokens_per_second_and_failures(events, prepared_llm):
    partner = make_partner("Korea University Medical Center", sector="medical", tier="founding")
    started = timezone.now() - dt.timedelta(seconds=2)
    common = {"partner": partner, "capability": "text_generation", "model": prepared_llm, "queue": "llm"}
    text = "The alliance trains adapters on each partner's own documents."
    ok = Job.objects.create(
        **common,
        status="succeeded",
        input={"prompt": "secret prompt"},
        output={"text": text},
        units=9,
        started_at=started,
        finished_at=started + dt.timedelta(seconds=2),
    )
    bad = Job.objects.create(
        **common,
        status="failed",
        input={"prompt": "secret prompt"},
        error={"code": "out_of_memory", "message": "m"},
        started_at=started,
        finished_at=started + dt.timedelta(seconds=1),
    )
    cache.set(f"monitoring:job-request:{bad.pk}", "req-from-the-web-0002", 60)
    tokens_before = metrics.LLM_TOKENS.labels(prepared_llm)._value.get()
    failed_before = metrics.JOBS_FAILED.labels(
        "text_generation", prepared_llm, "founding", "out_of_memory"
    )._value.get()

    job_events.batch_finished(
        [str(ok.pk), str(bad.pk)], delivered_request_id="req-from-the-web-0001", delivered_job_id=str(ok.pk)
    )

    from inference.tokens import token_counter

    expected = token_counter(prepared_llm).tokenizer.count(text, add_special_tokens=False)
    assert expected > 5
    assert metrics.LLM_TOKENS.labels(prepared_llm)._value.get() == tokens_before + expected
    assert metrics.JOBS_FAILED.labels("text_generation", prepared_llm, "founding", "out_of_memory")._value.get() == (
        failed_before + 1
    )
    lines = {line["job_id"]: line for line in _lines(events) if line["event"].startswith("job.")}
    assert lines[str(ok.pk)]["event"] == "job.succeeded"
    assert lines[str(ok.pk)]["request_id"] == "req-from-the-web-0001"
    assert lines[str(ok.pk)]["tokens_per_second"] == pytest.approx(expected / 2, rel=0.01)
    assert lines[str(ok.pk)]["batch_size"] == 2 and lines[str(ok.pk)]["partner"] == partner.slug
    assert lines[str(bad.pk)]["event"] == "job.failed" and lines[str(bad.pk)]["error_code"] == "out_of_memory"
    assert lines[str(bad.pk)]["request_id"] == "req-from-the-web-0002"  # a batch companion's own request
    assert "secret prompt" not in json.dumps(list(lines.values())) and text not in json.dumps(list(lines.values()))


def test_the_reapers_actions_are_counted_and_logged(events, settings):
    from inference.tasks import reap_stale_jobs

    settings.ALLIANCE_JOB_MAX_ATTEMPTS = 3
    stale = timezone.now() - dt.timedelta(seconds=settings.ALLIANCE_JOB_STALE_SECONDS + 30)
    job = Job.objects.create(
        partner=make_partner("LG CNS"),
        capability="keyword_extraction",
        model="all-MiniLM-L6-v2",
        queue="embeddings",
        status="running",
        input={},
        attempts=1,
        started_at=stale,
        heartbeat_at=stale,
    )
    before = metrics.JOBS_REAPED.labels("requeued")._value.get()
    reap_stale_jobs.apply()  # a real task run: Celery's task signals fire as on a worker
    job.refresh_from_db()
    assert job.status == "queued"
    assert metrics.JOBS_REAPED.labels("requeued")._value.get() == before + 1
    assert any(line["event"] == "jobs.reaped" and line["requeued"] == 1 for line in _lines(events))
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("embeddings")  # the resent message: no later test's worker gets it


def test_a_pool_process_reports_the_batch_it_runs_while_it_runs(events):
    from celery.signals import task_prerun

    from inference.tasks import run_job
    from monitoring import heartbeats

    job = Job.objects.create(
        partner=make_partner("Google"),
        capability="summarization",
        model="smollm2-135m-instruct",
        queue="llm",
        status="succeeded",
        input={},  # already finished: the delivery is a no-op, the hooks still run
    )
    seen: list[list[dict]] = []

    def during(**_):
        seen.append([r for r in heartbeats.store().live() if r["kind"] == heartbeats.BATCH])

    task_prerun.connect(during, weak=False)  # after the operations hook: sees what it wrote
    try:
        run_job.apply(args=[str(job.pk)], hostname="llm@pool-test")
    finally:
        task_prerun.disconnect(during)
    mine = [r for r in seen[0] if r["job_id"] == str(job.pk)]
    assert mine and mine[0]["capability"] == "summarization" and mine[0]["queue"] == "llm"
    assert not [r for r in heartbeats.store().live() if r.get("job_id") == str(job.pk)]  # gone when it ends
    assert any(line["event"] == "job.delivered" and line["job_id"] == str(job.pk) for line in _lines(events))
