"""Writes an operator makes from the operator's view."""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.utils import timezone

from alliance.errors import Conflict, NotFound
from inference import dispatch
from inference.models import Job, JobStatus
from monitoring import logs
from monitoring.selectors import WORKER_FAILURES, stuck_before
from partners.services import audit_record

logger = logging.getLogger(__name__)


def requeueable(job: Job) -> bool:
    stale, waiting = stuck_before()
    return (
        (job.status == JobStatus.RUNNING and job.heartbeat_at is not None and job.heartbeat_at < stale)
        or (job.status == JobStatus.QUEUED and job.created_at < waiting)
        or (job.status == JobStatus.FAILED and (job.error or {}).get("code") in WORKER_FAILURES)
    )


@transaction.atomic
def job_requeue(*, job_id: uuid.UUID | str, actor: str) -> Job:
    """Puts a stuck or failed job back in its queue and sends it again, audited as `job.requeued`.

    Allowed: a running job whose heartbeat is stale (its worker is gone; a late answer from it is dropped because
    its claim no longer matches), a queued job waiting past the resend interval, a job failed for a worker's sake
    (WORKER_FAILURES: its charge was refunded, so the run it gets now is free). Anything else: Conflict."""
    job = Job.objects.select_for_update().select_related("partner").filter(pk=job_id).first()
    if job is None:
        raise NotFound("No such job.", code="job_not_found")
    if not requeueable(job):
        raise Conflict(
            f"Job {job.pk} is {job.status} and not stuck: only a running job with a stale heartbeat, a queued job "
            "waiting past the resend interval or a job failed by a worker can be requeued.",
            code="job_not_stuck",
        )
    previous = {"status": job.status, "attempts": job.attempts, "error_code": (job.error or {}).get("code")}
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.QUEUED,
        claim_token=None,
        heartbeat_at=None,
        started_at=None,
        finished_at=None,
        error=None,
        output=None,
        enqueued_at=now,
    )
    audit_record(partner=job.partner, actor=actor, action="job.requeued", target=str(job.pk), data=previous)
    logs.event(
        "job.requeued",
        job_id=str(job.pk),
        partner=job.partner.slug,
        capability=job.capability,
        model=job.model,
        family=job.queue,
        previous_status=previous["status"],
        actor=actor,
    )
    transaction.on_commit(lambda: _send(job))
    job.refresh_from_db()
    return job


def _send(job: Job) -> None:
    try:
        dispatch.send(dispatch.RUN_JOB, str(job.pk), queue=job.queue)
    except Exception:  # the job is queued in the database; the reaper resends it
        logger.warning("could not send requeued job %s; the reaper will", job.pk, exc_info=True)
