"""The portal's side of tuning: estimates for the start form, the live status JSON and its loss history.

Writes still go through inference.services.tuning; this module only shapes what the portal pages show.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.cache import cache

from alliance.api.errors import ApiError
from capabilities import CAPABILITIES
from inference import tuning_config
from inference.models import Dataset, TuningJob
from inference.representations import timestamp, tuning_job_representation
from inference.services import tuning

LOSS_HISTORY_SECONDS = 7 * 24 * 3600
LOSS_HISTORY_POINTS = 2_000


def tuning_body(*, dataset: Dataset, method: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The same body `POST /api/v1/tuning-jobs` takes, for a dataset chosen in the portal."""
    return {"dataset": dataset.public_id, "task": dataset.task, "method": method, "hyperparameters": hyperparameters}


def estimate_for(*, partner, body: dict[str, Any]) -> dict[str, Any]:
    """The pre-flight figures for a request, validated exactly as the API validates it (raises ApiError)."""
    clean, dataset = tuning.tuning_request_validated(partner=partner, body=body)
    figures = tuning.tuning_estimate(dataset=dataset, hyperparameters=clean["hyperparameters"])
    return {"dataset": dataset.public_id, **figures}


def _history_key(job: TuningJob) -> str:
    return f"portal:tuning-loss:{job.pk}"


def loss_history(job: TuningJob) -> list[list[float]]:
    """[step, loss] points seen so far: the worker writes only the latest progress, so each read appends it."""
    points: list[list[float]] = cache.get(_history_key(job)) or []
    progress = job.progress or {}
    step, loss = progress.get("step"), progress.get("loss")
    fresh = isinstance(step, int) and step > 0 and isinstance(loss, (int, float))
    if fresh and (not points or points[-1][0] < step):
        points = [*points, [step, loss]][-LOSS_HISTORY_POINTS:]
        cache.set(_history_key(job), points, LOSS_HISTORY_SECONDS)
    return points


def status_payload(job: TuningJob) -> dict[str, Any]:
    """What the detail page polls: the API's representation, plus the job's events and its loss history."""
    events = [
        {"level": e.level, "message": e.message, "data": e.data, "created_at": timestamp(e.created_at)}
        for e in job.events.all()
    ]
    return {**tuning_job_representation(job), "events": events, "loss_history": loss_history(job)}


def usage_snippet(*, model: str, task: str, api_url: str) -> str:
    """A curl command that runs the tuned model through the jobs API."""
    capability = tuning_config.TASK_CAPABILITY[task]
    if task == "classification":
        example: dict[str, Any] = {"text": "Replace this with a text to classify."}
    else:
        example = CAPABILITIES[capability].example_input
    body = json.dumps({"capability": capability, "model": model, "input": example}, ensure_ascii=False, indent=2)
    body = body.replace("'", "'\\''")
    return (
        f"curl -X POST '{api_url}?wait=30' \\\n"
        '  -H "Authorization: Bearer $ALLIANCE_API_KEY" \\\n'
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}'"
    )


def api_error_problems(exc: ApiError) -> list[dict[str, Any]]:
    """Every problem of a refused file, with its line number when it has one (and no "line N: " prefix)."""
    problems = []
    for detail in exc.details or [{"line": None, "message": exc.message}]:
        line, message = detail.get("line"), str(detail.get("message", ""))
        prefix = f"line {line}: "
        problems.append({"line": line, "message": message.removeprefix(prefix) if line else message})
    return problems
