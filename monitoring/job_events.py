"""What a job's life writes to the metrics and the event log: its submission (web), its delivery to a worker and
the end of its batch (worker). Identifiers, counts and durations only: never the job's input or output."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cache as once
from typing import Any

from django.core.cache import BaseCache, caches

from monitoring import logs, metrics

logger = logging.getLogger(__name__)

LLM_FAMILY = "llm"
_REQUEST_KEY = "monitoring:job-request:{}"
_REQUEST_TTL = 6 * 3600  # a job still queued after this has its own lines without the id


@once
def _request_cache() -> BaseCache:
    """One cache client for the process. `django.core.cache.cache` is per request context (each async view's
    request gets its own), so with Redis it opened a new connection for every submission: five round trips more."""
    return caches.create_connection("default")


def _labels(capability: str, model: str, tier: str) -> tuple[str, str, str]:
    return capability, model, tier


def job_submitted(job: Any) -> None:
    """A job row was committed: count it, log it, and remember its request id for the worker that batches it."""
    partner = job.partner
    metrics.JOBS_SUBMITTED.labels(*_labels(job.capability, job.model, partner.tier)).inc()
    request_id = logs.request_id_var.get()
    if request_id:
        try:
            _request_cache().set(_REQUEST_KEY.format(job.pk), request_id, _REQUEST_TTL)
        except Exception:  # the id still rides in the task's header for the job delivered first
            logger.warning("could not remember the request id of job %s", job.pk, exc_info=True)
    logs.event(
        "job.queued",
        job_id=str(job.pk),
        partner=partner.slug,
        tier=partner.tier,
        capability=job.capability,
        model=job.model,
        family=job.queue,
        units=job.units,
    )


def batch_submitted(batch: Any, models: Mapping[str, int]) -> None:
    """A batch's jobs were committed (`models`: how many of them each model runs): counted as submitted jobs, logged as
    one line (not one a job)."""
    partner = batch.partner
    for model, count in models.items():
        metrics.JOBS_SUBMITTED.labels(*_labels(batch.capability, model, partner.tier)).inc(count)
    logs.event(
        "batch.queued",
        batch_id=batch.public_id,
        partner=partner.slug,
        tier=partner.tier,
        capability=batch.capability,
        jobs=sum(models.values()),
        units=batch.units,
    )


def request_ids(job_ids: list[str]) -> dict[str, str]:
    try:
        found = _request_cache().get_many([_REQUEST_KEY.format(job_id) for job_id in job_ids])
    except Exception:
        logger.warning("could not read the request ids of a batch", exc_info=True)
        return {}
    return {key.rsplit(":", 1)[1]: value for key, value in found.items()}


def _output_text(capability: str, output: dict[str, Any] | None) -> str | None:
    if not isinstance(output, dict):
        return None
    if capability == "dialogue":
        message = output.get("message")
        return message.get("content") if isinstance(message, dict) else None
    for key in ("text", "summary", "answer"):
        if isinstance(output.get(key), str):
            return output[key]
    return None


def _output_tokens(model: str, text: str) -> int | None:
    from inference.tokens import token_counter

    try:
        counter = token_counter(model)
    except Exception:  # noqa: BLE001 - a tuned model or a model without a tokenizer here: no token figures
        return None
    return None if counter is None else counter.tokenizer.count(text, add_special_tokens=False)


def batch_finished(job_ids: list[str], *, delivered_request_id: str | None, delivered_job_id: str | None) -> None:
    """The batch a delivery ran: one line and the metrics per job, from the rows the worker wrote."""
    from inference.models import FINISHED_STATUSES, Job

    if not job_ids:
        return
    jobs = list(Job.objects.filter(pk__in=job_ids).select_related("partner").defer("input", "params"))
    ids = request_ids([str(job.pk) for job in jobs])
    if delivered_job_id and delivered_request_id:
        ids.setdefault(delivered_job_id, delivered_request_id)
    size = len(jobs)
    for job in jobs:
        labels = _labels(job.capability, job.model, job.partner.tier)
        fields: dict[str, Any] = {
            "job_id": str(job.pk),
            "partner": job.partner.slug,
            "tier": job.partner.tier,
            "capability": job.capability,
            "model": job.model,
            "family": job.queue,
            "status": job.status,
            "batch_size": size,
            "attempts": job.attempts,
            "units": job.units,
            "request_id": ids.get(str(job.pk)),
        }
        if job.started_at:
            wait = (job.started_at - job.created_at).total_seconds()
            metrics.JOB_QUEUE_WAIT.labels(job.queue).observe(max(0.0, wait))
            fields["queue_wait_ms"] = round(wait * 1000, 1)
        if job.status not in FINISHED_STATUSES:
            logs.event("job.unfinished", **fields)  # canceled mid-run and requeued, or reaped: the reaper logs it
            continue
        metrics.JOBS_FINISHED.labels(*labels, job.status).inc()
        if job.status == "failed":
            code = (job.error or {}).get("code", "unknown")
            metrics.JOBS_FAILED.labels(*labels, code).inc()
            fields["error_code"] = code
        run_seconds = None
        if job.started_at and job.finished_at:
            run_seconds = (job.finished_at - job.started_at).total_seconds()
            metrics.JOB_RUN.labels(job.queue, job.capability).observe(max(0.0, run_seconds))
            fields["run_ms"] = round(run_seconds * 1000, 1)
        if job.queue == LLM_FAMILY and job.status == "succeeded" and run_seconds:
            text = _output_text(job.capability, job.output)
            tokens = _output_tokens(job.model, text) if text else None
            if tokens is not None:
                metrics.LLM_TOKENS.labels(job.model).inc(tokens)
                metrics.LLM_TOKENS_PER_SECOND.labels(job.model).observe(tokens / run_seconds)
                fields["output_tokens"] = tokens
                fields["tokens_per_second"] = round(tokens / run_seconds, 2)
        logs.event(f"job.{job.status}", **fields)
    if jobs:
        metrics.BATCH_SIZE.labels(jobs[0].queue, jobs[0].capability).observe(size)
