"""Writes of the job lifecycle: submit, claim, finish, cancel, reap, and webhook delivery."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import serializers

from alliance.api.errors import ApiError
from inference import webhooks
from inference.capabilities import CAPABILITY_NAMES, Capability, CapabilityUnavailable, get_capability
from inference.errors import JobInputError
from inference.models import Job, JobStatus, WebhookDelivery
from inference.registry import ModelNotAvailable, get_model_spec
from inference.representations import job_representation
from partners.models import ApiKey, Quota
from partners.services import UnitsState, usage_charge, usage_refund

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    job: Job
    created: bool
    units: UnitsState | None


# ---------------------------------------------------------------- submission


def capability_for_submission(name: Any) -> Capability:
    if not isinstance(name, str) or not name:
        raise ApiError("`capability` is required and must be a string.", code="required", param="capability")
    try:
        return get_capability(name)
    except CapabilityUnavailable:
        known = name in CAPABILITY_NAMES
        raise ApiError(
            f"Capability {name!r} is not served by this platform yet."
            if known
            else f"Unknown capability {name!r}; expected one of: {', '.join(CAPABILITY_NAMES)}.",
            code="capability_unavailable" if known else "unknown_capability",
            param="capability",
        ) from None


def _validated(serializer_class: type[serializers.Serializer], data: Any, param: str) -> dict[str, Any]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ApiError(f"`{param}` must be a JSON object.", code="invalid_type", param=param)
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        field, messages = next(iter(serializer.errors.items()))
        message = messages[0] if isinstance(messages, list) else messages
        code = getattr(message, "code", "invalid")
        raise ApiError(f"{param}.{field}: {message}", code=str(code), param=f"{param}.{field}")
    return dict(serializer.validated_data)


def _fingerprint(capability: str, model: str, data: dict, params: dict, webhook_url: str) -> str:
    payload = json.dumps([capability, model, data, params, webhook_url], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _model_for(capability: Capability, requested: Any) -> str:
    if requested in (None, ""):
        return capability.default_model
    if not isinstance(requested, str):
        raise ApiError("`model` must be a string.", code="invalid_type", param="model")
    try:
        spec = get_model_spec(requested)
    except ModelNotAvailable:
        raise ApiError(
            f"No model {requested!r} is available to you.", code="model_not_found", status_code=404, param="model"
        ) from None
    if capability.name not in spec.capabilities:
        raise ApiError(f"Model {requested!r} does not serve {capability.name}.", code="model_mismatch", param="model")
    return requested


def _existing_for_key(api_key: ApiKey, idempotency_key: str, fingerprint: str) -> Job | None:
    job = Job.objects.filter(partner_id=api_key.partner_id, idempotency_key=idempotency_key).first()
    if job is not None and job.request_fingerprint != fingerprint:
        raise ApiError(
            "This Idempotency-Key was used with a different request.",
            code="idempotency_key_reused",
            status_code=409,
        )
    return job


def job_submit(
    *,
    api_key: ApiKey,
    quota: Quota,
    capability: Capability,
    data: Any,
    params: Any = None,
    model: Any = None,
    idempotency_key: str | None = None,
    webhook_url: Any = None,
) -> Submission:
    """Validates, charges and stores a job in one transaction, and enqueues it once that commits."""
    if not api_key.allows(capability.name):
        raise ApiError(
            f"This API key is not scoped for {capability.name}.",
            code="scope_denied",
            status_code=403,
            param="capability",
        )
    model_name = _model_for(capability, model)
    clean_input = _validated(capability.input_serializer, data, "input")
    clean_params = _validated(capability.params_serializer, params, "params")
    webhook = _webhook_url(webhook_url)
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
        raise ApiError("Idempotency-Key must be 1 to 255 characters.", code="invalid_idempotency_key")
    fingerprint = _fingerprint(capability.name, model_name, clean_input, clean_params, webhook)
    if idempotency_key:
        existing = _existing_for_key(api_key, idempotency_key, fingerprint)
        if existing is not None:
            return Submission(job=existing, created=False, units=None)
    units = capability.cost(clean_input, clean_params)
    queue = get_model_spec(model_name).queue
    try:
        with transaction.atomic():
            now = timezone.now()
            job = Job.objects.create(
                partner_id=api_key.partner_id,
                api_key=api_key,
                capability=capability.name,
                model=model_name,
                queue=queue,
                input=clean_input,
                params=clean_params,
                units=units,
                idempotency_key=idempotency_key or None,
                request_fingerprint=fingerprint,
                webhook_url=webhook,
                enqueued_at=now,
            )
            units_state = usage_charge(quota=quota, api_key=api_key, job_id=job.id, units=units, now=now)
            transaction.on_commit(lambda: job_enqueue(job))
    except IntegrityError:
        if not idempotency_key:
            raise
        existing = _existing_for_key(api_key, idempotency_key, fingerprint)
        if existing is None:
            raise
        return Submission(job=existing, created=False, units=None)
    return Submission(job=job, created=True, units=units_state)


def _webhook_url(url: Any) -> str:
    if url in (None, ""):
        return ""
    if not isinstance(url, str) or len(url) > 2000:
        raise ApiError("`webhook_url` must be a URL string.", code="invalid_type", param="webhook_url")
    try:
        webhooks.check_webhook_url(url)
    except webhooks.UnsafeWebhookUrl as exc:
        raise ApiError(str(exc), code="unsafe_webhook_url", param="webhook_url") from None
    return url


def job_enqueue(job: Job) -> None:
    """Sends the job id to its family's queue. A failed send leaves the job queued for the reaper."""
    from inference.tasks import run_job

    try:
        run_job.apply_async(args=[str(job.pk)], queue=job.queue, retry=False)
    except Exception:
        logger.warning("enqueue of job %s failed; the reaper will send it again", job.pk, exc_info=True)


def job_wait(*, job: Job, timeout: float) -> Job:
    deadline = time.monotonic() + min(max(timeout, 0.0), settings.JOB_MAX_WAIT_SECONDS)
    delay = 0.01
    while not job.is_finished and time.monotonic() < deadline:
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.25)
        job.refresh_from_db()
    return job


@transaction.atomic
def job_cancel(*, job: Job) -> Job:
    updated = Job.objects.filter(pk=job.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        status=JobStatus.CANCELED, finished_at=timezone.now(), claim_token=None
    )
    job.refresh_from_db()
    if not updated:
        raise ApiError(f"The job is already {job.status}.", code="job_finished", status_code=409)
    usage_refund(job_id=job.pk)
    return job


# ---------------------------------------------------------------- execution (worker side)


def job_claim(job_id: str) -> tuple[Job, uuid.UUID] | None:
    """queued -> running in one conditional UPDATE; None when another delivery got there first."""
    token = uuid.uuid4()
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, claim_token=token, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    return Job.objects.get(pk=job_id), token


class JobHeartbeat:
    """Refreshes heartbeat_at while a job runs, so the reaper can tell a slow job from a dead worker."""

    def __init__(self, job_id: uuid.UUID, token: uuid.UUID) -> None:
        self._job_id = job_id
        self._token = token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> JobHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(settings.JOB_HEARTBEAT_SECONDS):
                Job.objects.filter(pk=self._job_id, claim_token=self._token, status=JobStatus.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
        finally:
            connection.close()


def job_execute(job_id: str) -> Job | None:
    """Runs one delivery of a job: a duplicate delivery, or one for a finished job, does nothing."""
    claimed = job_claim(job_id)
    if claimed is None:
        logger.info("job %s: not queued any more; delivery ignored", job_id)
        return None
    job, token = claimed
    from inference.backends import run_job_model

    with JobHeartbeat(job.pk, token):
        try:
            output = run_job_model(job.capability, job.model, job.input, job.params)
        except JobInputError as exc:
            job_fail(job=job, token=token, code="invalid_input", message=str(exc))
        except ModelNotAvailable as exc:
            job_fail(job=job, token=token, code="model_unavailable", message=str(exc))
        except MemoryError:
            job_fail(job=job, token=token, code="out_of_memory", message="The model ran out of memory on this input.")
        except Exception as exc:
            logger.exception("job %s: model failed", job.pk)
            job_fail(job=job, token=token, code="model_error", message=f"The model failed: {type(exc).__name__}.")
        else:
            job_succeed(job=job, token=token, output=output)
    job.refresh_from_db()
    return job


@transaction.atomic
def job_succeed(*, job: Job, token: uuid.UUID, output: dict[str, Any]) -> bool:
    finished = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, claim_token=token).update(
        status=JobStatus.SUCCEEDED, output=output, finished_at=timezone.now()
    )
    if finished and job.webhook_url:
        transaction.on_commit(lambda: _enqueue_webhook(job.pk))
    return bool(finished)


@transaction.atomic
def job_fail(*, job: Job, token: uuid.UUID | None, code: str, message: str) -> bool:
    """Fails a job and refunds its charge: a failed job costs the partner nothing."""
    jobs = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING)
    if token is not None:
        jobs = jobs.filter(claim_token=token)
    finished = jobs.update(
        status=JobStatus.FAILED, error={"code": code, "message": message}, finished_at=timezone.now()
    )
    if finished:
        usage_refund(job_id=job.pk)
        if job.webhook_url:
            transaction.on_commit(lambda: _enqueue_webhook(job.pk))
    return bool(finished)


def jobs_reap(now: dt.datetime | None = None) -> dict[str, int]:
    """Requeues jobs whose worker stopped heart-beating, and re-sends queued jobs the broker may have lost."""
    now = now or timezone.now()
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    stale_before = now - dt.timedelta(seconds=settings.JOB_STALE_SECONDS)
    for job in Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale_before)[:500]:
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            if job_fail(
                job=job,
                token=job.claim_token,
                code="worker_lost",
                message=f"The job's worker stopped {job.attempts} times; giving up.",
            ):
                counts["failed"] += 1
            continue
        requeued = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, claim_token=job.claim_token).update(
            status=JobStatus.QUEUED, claim_token=None, heartbeat_at=None, enqueued_at=now
        )
        if requeued:
            counts["requeued"] += 1
            job_enqueue(job)
    resend_before = now - dt.timedelta(seconds=settings.JOB_REENQUEUE_SECONDS)
    for job in Job.objects.filter(status=JobStatus.QUEUED, enqueued_at__lt=resend_before)[:500]:
        if Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED, enqueued_at=job.enqueued_at).update(enqueued_at=now):
            counts["resent"] += 1
            job_enqueue(job)
    return counts


# ---------------------------------------------------------------- webhooks


def _enqueue_webhook(job_id: uuid.UUID) -> None:
    from inference.tasks import deliver_webhook

    try:
        deliver_webhook.apply_async(args=[str(job_id)], retry=False)
    except Exception:
        logger.warning("could not enqueue the webhook of job %s", job_id, exc_info=True)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def webhook_deliver(*, job_id: str, attempt: int) -> bool:
    """POSTs the finished job, signed, to its webhook URL. True when delivered (2xx) or nothing to do."""
    job = Job.objects.select_related("partner").filter(pk=job_id).first()
    if job is None or not job.webhook_url:
        return True
    body = json.dumps({"type": f"job.{job.status}", "data": job_representation(job)}).encode()
    delivery = WebhookDelivery(job=job, attempt=attempt)
    try:
        webhooks.check_webhook_url(job.webhook_url)
        request = urllib.request.Request(
            job.webhook_url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "alliance-webhooks/1",
                "X-Alliance-Job": str(job.pk),
                "X-Alliance-Signature": webhooks.signature_header(webhooks.signing_secret(job.partner), body),
            },
        )
        opener = urllib.request.build_opener(_NoRedirect)
        with opener.open(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            delivery.status_code = response.status
            delivery.delivered = 200 <= response.status < 300
    except urllib.error.HTTPError as exc:
        delivery.status_code = exc.code
        delivery.error = f"HTTP {exc.code}"
    except (webhooks.UnsafeWebhookUrl, OSError) as exc:
        delivery.error = str(exc)[:500]
    delivery.save()
    return delivery.delivered
