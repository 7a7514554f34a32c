"""The portal's side of tuning: estimates for the start form, the live status JSON and its loss history.

Writes still go through inference.services.tuning_jobs; this module only shapes what the portal pages show.
"""

from __future__ import annotations

import json
from typing import Any

from alliance.errors import DomainError
from capabilities import CAPABILITIES
from inference import selectors, tuning_config
from inference.models import Dataset, TuningEventKind, TuningJob
from inference.representations import timestamp, tuning_job_representation
from inference.services import tuning_jobs

LOSS_HISTORY_POINTS = 2_000


def tuning_body(*, dataset: Dataset, method: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The same body `POST /api/v1/tuning-jobs` takes, for a dataset chosen in the portal."""
    return {"dataset": dataset.public_id, "task": dataset.task, "method": method, "hyperparameters": hyperparameters}


def estimate_for(*, partner, body: dict[str, Any]) -> dict[str, Any]:
    """The pre-flight figures for a request, validated exactly as the API validates it (raises a DomainError)."""
    dataset, figures = tuning_jobs.tuning_request_estimate(partner=partner, body=body)
    return {"dataset": dataset.public_id, **figures}


def status_payload(job: TuningJob) -> dict[str, Any]:
    """What the detail page polls: the API's representation, plus the job's messages and its loss history, both
    as the worker wrote them to the database."""
    events = [
        {"level": e.level, "message": e.message, "data": e.data, "created_at": timestamp(e.created_at)}
        for e in selectors.tuning_events_of(job=job, kind=TuningEventKind.MESSAGE)
    ]
    curve = selectors.tuning_loss_curve(job=job, max_points=LOSS_HISTORY_POINTS)
    return {**tuning_job_representation(job), "events": events, "loss_history": curve}


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


def api_error_problems(exc: DomainError) -> list[dict[str, Any]]:
    """Every problem of a refused file, with its line number when it has one (and no "line N: " prefix)."""
    problems = []
    for detail in exc.details or [{"line": None, "message": exc.message}]:
        line, message = detail.get("line"), str(detail.get("message", ""))
        prefix = f"line {line}: "
        problems.append({"line": line, "message": message.removeprefix(prefix) if line else message})
    return problems
