"""Writes of the job lifecycle. Submission runs in the web process; execution and webhooks in workers."""

from inference.services.execution import (
    job_claim,
    job_execute,
    job_fail,
    job_succeed,
    jobs_claim_batch,
    jobs_reap,
    jobs_succeed,
)
from inference.services.submission import (
    Submission,
    capability_for_submission,
    job_cancel,
    job_enqueue,
    job_request_submit,
    job_submit,
    model_check,
)
from inference.services.webhook_delivery import webhook_deliver

__all__ = [
    "Submission",
    "capability_for_submission",
    "job_cancel",
    "job_claim",
    "job_enqueue",
    "job_execute",
    "job_fail",
    "job_request_submit",
    "job_submit",
    "job_succeed",
    "jobs_claim_batch",
    "jobs_reap",
    "jobs_succeed",
    "model_check",
    "webhook_deliver",
]
