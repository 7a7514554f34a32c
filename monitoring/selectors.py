"""Reads for the operators: queue statistics per family, the last day per partner and capability, and the jobs
that look stuck or were retried."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q, QuerySet, Sum
from django.utils import timezone

from inference.models import Job, JobStatus, TuningJob
from inference.models.tuning import TuningStatus

# Failures an operator may fix and retry (a worker died, a model was missing, out of memory, too slow); not bad input.
WORKER_FAILURES = ["worker_lost", "time_limit", "model_unavailable", "out_of_memory", "model_error"]


@dataclass
class FamilyQueue:
    family: str
    queued: int
    oldest_age_seconds: float
    running: int


def queue_stats(now: dt.datetime | None = None) -> list[FamilyQueue]:
    """Per family (every ALLIANCE_QUEUES entry, tuning jobs on `tuning`): jobs queued, the oldest one's age in seconds
    (0 when none) and jobs running, from the jobs tables."""
    now = now or timezone.now()
    queued: dict[str, dict[str, Any]] = {
        row["queue"]: row
        for row in Job.objects.filter(status=JobStatus.QUEUED)
        .values("queue")
        .annotate(n=Count("id"), oldest=Min("created_at"))
        .order_by()
    }
    tuning = TuningJob.objects.filter(status=TuningStatus.QUEUED).aggregate(n=Count("id"), oldest=Min("created_at"))
    if tuning["n"]:
        row = queued.setdefault("tuning", {"n": 0, "oldest": tuning["oldest"]})
        row["n"] += tuning["n"]
        row["oldest"] = min(row["oldest"], tuning["oldest"])
    running = dict(
        Job.objects.filter(status=JobStatus.RUNNING).values("queue").annotate(n=Count("id")).values_list("queue", "n")
    )
    running["tuning"] = running.get("tuning", 0) + TuningJob.objects.filter(status=TuningStatus.RUNNING).count()
    families = list(settings.ALLIANCE_QUEUES) + sorted((set(queued) | set(running)) - set(settings.ALLIANCE_QUEUES))
    return [
        FamilyQueue(
            family=family,
            queued=queued[family]["n"] if family in queued else 0,
            oldest_age_seconds=(now - queued[family]["oldest"]).total_seconds() if family in queued else 0.0,
            running=running.get(family, 0),
        )
        for family in families
    ]


def usage_last_day(now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Per partner and capability over the last 24 hours: jobs submitted, units charged (succeeded jobs; a failed
    job is refunded), failures and jobs still open."""
    since = (now or timezone.now()) - dt.timedelta(hours=24)
    return list(
        Job.objects.filter(created_at__gte=since)
        .values("partner__name", "partner__slug", "partner__tier", "capability")
        .annotate(
            jobs=Count("id"),
            units=Sum("units", filter=Q(status=JobStatus.SUCCEEDED), default=0),
            failures=Count("id", filter=Q(status=JobStatus.FAILED)),
            open=Count("id", filter=Q(status__in=[JobStatus.QUEUED, JobStatus.RUNNING])),
        )
        .order_by("partner__name", "capability")
    )


def stuck_before(now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """(a running job's heartbeat older than this is stale, a queued job older than this is waiting too long)."""
    now = now or timezone.now()
    return (
        now - dt.timedelta(seconds=settings.ALLIANCE_JOB_STALE_SECONDS),
        now - dt.timedelta(seconds=settings.ALLIANCE_JOB_REENQUEUE_SECONDS),
    )


def jobs_needing_attention(now: dt.datetime | None = None, limit: int = 50) -> QuerySet[Job]:
    """Running jobs whose heartbeat is stale, queued jobs waiting past the resend interval, and jobs of the last day
    that were retried (more than one attempt) or failed for a worker's sake, newest first."""
    now = now or timezone.now()
    stale, waiting = stuck_before(now)
    since = now - dt.timedelta(hours=24)
    return (
        Job.objects.filter(
            Q(status=JobStatus.RUNNING, heartbeat_at__lt=stale)
            | Q(status=JobStatus.QUEUED, created_at__lt=waiting)
            | Q(attempts__gt=1, created_at__gte=since)
            | Q(status=JobStatus.FAILED, created_at__gte=since, error__code__in=WORKER_FAILURES)
        )
        .select_related("partner")
        .defer("input", "params", "output")
        .order_by("-created_at")[:limit]
    )
