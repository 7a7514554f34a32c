"""The public JSON shape of a job (a plain function: a ModelSerializer costs ~1 ms a call on the hot path)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from inference.models import Job


def timestamp(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def job_representation(job: Job) -> dict[str, Any]:
    return {
        "id": str(job.pk),
        "object": "job",
        "capability": job.capability,
        "model": job.model,
        "status": job.status,
        "input": job.input,
        "params": job.params,
        "output": job.output,
        "error": job.error,
        "usage": {"units": job.units},
        "webhook_url": job.webhook_url,
        "attempts": job.attempts,
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
    }
