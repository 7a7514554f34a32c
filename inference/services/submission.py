"""The web side of a job: validate, charge, store and enqueue; cancel. Waiting: inference.services.waiting."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from django.db import IntegrityError, connection, transaction
from django.db.models.signals import post_save
from django.utils import timezone
from rest_framework import serializers

from alliance.bulk import insert_statement
from alliance.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge, invalid_input_from
from capabilities import CAPABILITY_NAMES, Capability, CapabilityUnavailable, get_capability
from inference import dispatch, streams, tokens, tuning_config, webhook_security
from inference.images import FILE_ID_PREFIX, ImageRejected, decode_base64_image, file_path, store_image
from inference.models import FilePurpose, Job, JobStatus, StoredFile, TunedModel
from inference.registry import ModelNotAvailable, get_model_spec
from inference.services.waiting import job_wait_slot as job_wait_slot  # moved there; kept for its importers
from inference.services.waiting import jobs_finished_announce
from partners import ratelimit
from partners.models import ApiKey, Partner, Quota
from partners.services import UnitsState, quota_for, usage_charge, usage_charge_inserting, usage_refund

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    job: Job
    created: bool
    units: UnitsState | None
    window: ratelimit.WindowState | None = None  # the capability's request window, for x-ratelimit-* headers


# ---------------------------------------------------------------- submission


def capability_for_submission(name: Any) -> Capability:
    if not isinstance(name, str) or not name:
        raise InvalidInput("`capability` is required and must be a string.", code="required", param="capability")
    try:
        return get_capability(name)
    except CapabilityUnavailable:
        known = name in CAPABILITY_NAMES
        raise InvalidInput(
            f"Capability {name!r} is not served by this platform yet."
            if known
            else f"Unknown capability {name!r}; expected one of: {', '.join(CAPABILITY_NAMES)}.",
            code="capability_unavailable" if known else "unknown_capability",
            param="capability",
        ) from None


class JobFields(TypedDict, total=False):
    """What a client sends with a job besides its capability; job_submit validates each."""

    data: Any
    params: Any
    model: Any
    idempotency_key: str | None
    webhook_url: Any


def job_request_submit(*, api_key: ApiKey, capability: Any, **fields: Unpack[JobFields]) -> Submission:
    """A job as every client submits it (the API, /v1, the playground): the capability by name, its quota and
    requests per minute for this key, then job_submit."""
    chosen = capability_for_submission(capability)
    quota = quota_for(partner=api_key.partner, capability=chosen.name, cached=True)
    window = ratelimit.admit(key_id=api_key.public_id, bucket=chosen.name, limit=quota.rpm, what=chosen.name)
    submission = job_submit(api_key=api_key, quota=quota, capability=chosen, **fields)
    return Submission(job=submission.job, created=submission.created, units=submission.units, window=window)


def _validated(serializer_class: type[serializers.Serializer], data: Any, param: str) -> dict[str, Any]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInput(f"`{param}` must be a JSON object.", code="invalid_type", param=param)
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise invalid_input_from(serializer.errors, param)
    return dict(serializer.validated_data)


def _fingerprint(capability: str, model: str, data: dict, params: dict, webhook_url: str) -> str:
    payload = json.dumps([capability, model, data, params, webhook_url], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class ModelChoice:
    name: str
    queue: str
    tuned: bool
    base: str  # the registry model whose tokenizer and context window apply (a tuned model's base)
    backend: str = ""  # a registry model's backend; "" for a tuned model


def model_choice(partner: Partner, capability: Capability, requested: Any, data: Any = None) -> ModelChoice:
    """The registry model or the partner's own tuned model; another partner's tuned model is not found. Without a
    requested model, the capability's default for this input (Capability.default_for: a Korean text to classify
    gets the bilingual language model)."""
    if requested in (None, ""):
        requested = capability.default_for(data)
    if not isinstance(requested, str):
        raise InvalidInput("`model` must be a string.", code="invalid_type", param="model")
    not_found = NotFound(f"No model {requested!r} is available to you.", code="model_not_found", param="model")
    if requested.startswith(tuning_config.TUNED_PREFIX):
        tuned = TunedModel.objects.filter(partner=partner, name=requested).first()
        if tuned is None:
            raise not_found
        serves = tuning_config.TASK_CAPABILITY[tuned.task]
        if serves != capability.name:
            raise InvalidInput(
                f"Model {requested!r} was tuned for {serves}, not {capability.name}.",
                code="model_mismatch",
                param="model",
            )
        return ModelChoice(
            name=requested, queue=get_model_spec(tuned.base_model).queue, tuned=True, base=tuned.base_model
        )
    try:
        spec = get_model_spec(requested)
    except ModelNotAvailable:
        raise not_found from None
    if capability.name not in spec.capabilities:
        raise InvalidInput(
            f"Model {requested!r} does not serve {capability.name}.", code="model_mismatch", param="model"
        )
    return ModelChoice(name=requested, queue=spec.queue, tuned=False, base=requested, backend=spec.backend)


def model_check(*, partner: Partner, capability: str, model: Any) -> str:
    """The model name a job of this partner would run on (the capability's default when none is given): a registry
    model that serves the capability or the partner's own tuned model for it. NotFound (another partner's tuned
    model, an unknown name) / InvalidInput (a model for another capability), param `model`."""
    return model_choice(partner, capability_for_submission(capability), model).name


def embedder_only_check(capability: Capability, choice: ModelChoice, params: dict[str, Any]) -> None:
    """A param only the sentence-embedder path reads (zero-shot multi_label, hypothesis_template), set to other than
    its default for a language model, is refused rather than ignored: the language model scores the labels against
    each other (one label), and asks for the label itself rather than a hypothesis."""
    if choice.tuned or choice.backend in ("", "sentence_transformers"):
        return
    fields = capability.params_serializer().fields
    named = [name for name in capability.embedder_only_params if params.get(name) != fields[name].default]
    if named:
        raise InvalidInput(
            f"params.{named[0]} is not supported by the language model {choice.name}; it classifies into one label "
            f"(omit {', '.join(named)}, or use {capability.default_model}).",
            code="unsupported_parameter",
            param=f"params.{named[0]}",
        )


def _existing_for_key(api_key: ApiKey, idempotency_key: str, fingerprint: str) -> Job | None:
    job = Job.objects.filter(partner_id=api_key.partner_id, idempotency_key=idempotency_key).first()
    if job is not None and job.request_fingerprint != fingerprint:
        raise Conflict(
            "This Idempotency-Key was used with a different request.",
            code="idempotency_key_reused",
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
        raise Forbidden(
            f"This API key lacks the scope this operation needs: `{capability.name}`.",
            code="insufficient_scope",
            param="capability",
            details=[{"required_scopes": [capability.name]}],
        )
    choice = model_choice(api_key.partner, capability, model, data)
    model_name = choice.name
    clean_input = _validated(capability.input_serializer, data, "input")
    for field in capability.required_with_base_model if not choice.tuned else ():
        if not clean_input.get(field):
            raise InvalidInput(
                f"input.{field} is required with the base model {model_name}; a tuned model knows its own.",
                code="required",
                param=f"input.{field}",
            )
    clean_params = _validated(capability.params_serializer, params, "params")
    embedder_only_check(capability, choice, clean_params)
    tokens.context_check(model=choice.base, capability=capability.name, data=clean_input, params=clean_params)
    webhook = _webhook_url(webhook_url)
    if idempotency_key is not None and not (0 < len(idempotency_key) <= 255):
        raise InvalidInput("Idempotency-Key must be 1 to 255 characters.", code="invalid_idempotency_key")
    fingerprint = _fingerprint(capability.name, model_name, clean_input, clean_params, webhook)
    if idempotency_key:
        existing = _existing_for_key(api_key, idempotency_key, fingerprint)
        if existing is not None:
            return Submission(job=existing, created=False, units=None)
    units = capability.cost(clean_input, clean_params)
    queue = choice.queue
    new_files: list[StoredFile] = []
    one_statement = connection.vendor == "postgresql" and not capability.image_fields
    try:
        # One statement outside a transaction commits on its own; inside a caller's transaction, or with the image
        # files stored first, a transaction (a savepoint) keeps it all or nothing as before.
        with nullcontext() if one_statement and not connection.in_atomic_block else transaction.atomic():
            for field in capability.image_fields:
                clean_input[field], stored = _image_reference(api_key.partner, clean_input[field], f"input.{field}")
                new_files += [stored] if stored else []
            now = timezone.now()
            job = Job(
                partner=api_key.partner,  # the object, so what reads job.partner after the commit asks no query
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
            units_state = _job_insert_charged(job, quota=quota, api_key=api_key, now=now, one_statement=one_statement)
            transaction.on_commit(lambda: job_enqueue(job))
    except IntegrityError:
        _remove_files(new_files)
        if not idempotency_key:
            raise
        existing = _existing_for_key(api_key, idempotency_key, fingerprint)
        if existing is None:
            raise
        return Submission(job=existing, created=False, units=None)
    except Exception:
        _remove_files(new_files)
        raise
    return Submission(job=job, created=True, units=units_state)


def _job_insert_charged(
    job: Job, *, quota: Quota, api_key: ApiKey, now: dt.datetime, one_statement: bool
) -> UnitsState:
    """Inserts the job and charges it: on PostgreSQL the quota's conditional UPDATE, the job's INSERT and its
    ledger row in one statement (usage_charge_inserting); elsewhere the same three in the caller's transaction. Job's
    post_save is sent as Model.save sends it (the operations hooks count submitted jobs by it)."""
    if not one_statement:
        job.save(force_insert=True)
        return usage_charge(quota=quota, api_key=api_key, job_id=job.id, units=job.units, now=now)
    units_state = usage_charge_inserting(
        quota=quota, api_key=api_key, job_id=job.id, units=job.units, insert=insert_statement([job]), now=now
    )
    job._state.adding, job._state.db = False, connection.alias
    post_save.send(sender=Job, instance=job, created=True, update_fields=None, raw=False, using=connection.alias)
    return units_state


def _image_reference(partner: Partner, value: str, param: str) -> tuple[str, StoredFile | None]:
    """An uploaded file id of this partner, or base64 data checked and stored now: (file id, new file)."""
    if value.startswith(FILE_ID_PREFIX):
        if not StoredFile.objects.filter(partner=partner, public_id=value, purpose=FilePurpose.IMAGE).exists():
            raise NotFound(f"No image file {value!r}.", code="file_not_found", param=param)
        return value, None
    try:
        checked = decode_base64_image(value)
    except ImageRejected as exc:
        refusal = TooLarge if exc.code == "image_too_large" else InvalidInput
        raise refusal(str(exc), code=exc.code, param=param) from None
    stored = store_image(partner=partner, image=checked)
    return stored.public_id, stored


def _remove_files(files: list[StoredFile]) -> None:
    for stored in files:
        file_path(stored).unlink(missing_ok=True)


def _webhook_url(url: Any) -> str:
    if url in (None, ""):
        return ""
    if not isinstance(url, str) or len(url) > 2000:
        raise InvalidInput("`webhook_url` must be a URL string.", code="invalid_type", param="webhook_url")
    try:
        webhook_security.check_webhook_url(url)
    except webhook_security.UnsafeWebhookUrl as exc:
        raise InvalidInput(str(exc), code="unsafe_webhook_url", param="webhook_url") from None
    return url


def job_route_model(job: Job) -> str | None:
    """The registry model whose workers run the job: its model, or a tuned model's base (its adapter is swapped into
    the base model); None for a tuned model deleted meanwhile (any worker of the family then fails the job)."""
    if not job.model.startswith(tuning_config.TUNED_PREFIX):
        return job.model
    base = TunedModel.objects.filter(partner_id=job.partner_id, name=job.model).values_list("base_model", flat=True)
    return base.first()


def job_enqueue(job: Job) -> None:
    """Sends the job id to the queue of its model within its family (dispatch.model_queue): only a worker that hosts
    the model takes it. A failed send leaves the job queued for the reaper."""
    try:
        dispatch.send(dispatch.RUN_JOB, str(job.pk), queue=job.queue, model=job_route_model(job))
    except Exception:
        logger.warning("enqueue of job %s failed; the reaper will send it again", job.pk, exc_info=True)


@transaction.atomic
def job_cancel(*, job: Job) -> Job:
    """Cancels a queued job, refunded in full, or a running one, which keeps its charge: its worker has spent the
    work, and whatever it produces is not stored (inference.services.execution.jobs_succeed)."""
    now = timezone.now()
    queued = Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
        status=JobStatus.CANCELED, finished_at=now, claim_token=None
    )
    running = 0
    if not queued:
        running = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
            status=JobStatus.CANCELED, finished_at=now, claim_token=None
        )
    job.refresh_from_db()
    if not (queued or running):
        raise Conflict(f"The job is already {job.status}.", code="job_finished")
    streams.publish_end_on_commit(job.pk, JobStatus.CANCELED)
    if queued:
        usage_refund(job_id=job.pk)
    jobs_finished_announce([job.pk])
    return job
