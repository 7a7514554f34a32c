"""Batches: many jobs of one capability accepted in one transaction; cancelled, expired and finished as a whole.

Accepting a batch of N requests validates every request first (nothing is written while any is invalid), then, in
ONE transaction: one INSERT of the batch, one INSERT of its N jobs, one conditional UPDATE of the capability's quota
for the sum of their units and one INSERT of their N charges in the usage ledger. Past the remaining quota the whole
batch is refused (LimitReached) and nothing is written. Once the transaction commits, one message asks a worker to
send the jobs' messages (batch_jobs_enqueue), so the request pays one broker round trip, not N.

Batch jobs carry `Job.batch`; where Job has a `priority` field (0 interactive, higher runs later) they get
BATCH_PRIORITY, so the worker's claim serves interactive jobs first. The claim itself is not changed here.

A batch finishes when its last job does. Its output file (the succeeded requests) and error file (failed, cancelled
or expired ones) are built by the first read that finds no job of the batch queued or running (batch_refresh), under
a row lock, so they are built once; the worker's hot path is untouched, and each API renders the lines in its own
shape. The periodic reaper expires batches past their completion window even when nobody reads them
(batches_expire), so their unrun jobs give their units back.

Cancelling (or expiring) a batch cancels its queued jobs and refunds them in full, as cancelling a queued job does;
jobs already running finish, keep their charge and their results go to the output file (OpenAI's `cancelling`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.dispatch import Signal
from django.utils import timezone
from rest_framework import serializers

from alliance.bulk import insert_rows
from alliance.celery import app
from alliance.errors import Conflict, DomainError, Forbidden, InvalidInput, invalid_input_from
from alliance.ids import uuid7
from capabilities import Capability
from inference import dispatch, tokens
from inference.images import FILE_ID_PREFIX, file_path, store_file
from inference.models import (
    ACTIVE_BATCH_STATUSES,
    Batch,
    BatchApi,
    BatchStatus,
    FilePurpose,
    Job,
    JobStatus,
    StoredFile,
)
from inference.services.submission import (
    capability_for_submission,
    embedder_only_check,
    job_route_model,
    model_choice,
)
from inference.services.waiting import jobs_finished_announce
from partners.models import ApiKey
from partners.services import quota_for, usage_charge_many, usage_refund_many

logger = logging.getLogger(__name__)

BATCH_PRIORITY = 1  # Job.priority of batch jobs where that field exists (0 is interactive; higher runs later)
COMPLETION_WINDOWS = {"24h": dt.timedelta(hours=24)}
MAX_LINE_ERRORS = 100  # line errors reported of an invalid input file
_JOB_FIELDS = {f.name for f in Job._meta.get_fields()}

# Sent when a batch's jobs are inserted (in its transaction; Job's post_save is not sent for them): sender Batch,
# kwargs `batch` and `models` (a Counter of its jobs by model). The operations hooks (monitoring.signals) count and
# log them once it commits.
batch_accepted = Signal()


@dataclass
class BatchRequest:
    """One request of a batch, as its API read it from the input file (line numbers from 1)."""

    line: int
    custom_id: str
    data: Any
    params: Any = None
    model: Any = None


@dataclass
class LineError:
    line: int
    code: str
    message: str
    param: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "param": self.param, "line": self.line}


class BatchInvalid(InvalidInput):
    """The input file has invalid lines: nothing was accepted. `errors` are line-numbered."""

    def __init__(self, errors: list[LineError]) -> None:
        first = errors[0]
        more = f" (and {len(errors) - 1} more line errors)" if len(errors) > 1 else ""
        super().__init__(
            f"Line {first.line}: {first.message}{more}",
            code="invalid_batch",
            param="input_file",
            details=[error.as_dict() for error in errors[:MAX_LINE_ERRORS]],
        )
        self.errors = errors


@dataclass
class _Prepared:
    request: BatchRequest
    model: str
    queue: str
    data: dict[str, Any]
    params: dict[str, Any]
    units: int


@dataclass
class BatchCounts:
    total: int
    completed: int
    failed: int
    active: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- accepting


def _capability_for(api_key: ApiKey, name: str) -> Capability:
    capability = capability_for_submission(name)
    if not api_key.allows(capability.name):
        raise Forbidden(
            f"This API key lacks the scope this operation needs: `{capability.name}`.",
            code="insufficient_scope",
            param="capability",
            details=[{"required_scopes": [capability.name]}],
        )
    return capability


class _Validator:
    """A capability's input or params serializer, instantiated once for all the requests of a batch (a DRF
    serializer deep-copies its fields per instance: ~1 ms each); each value is checked as job_submit checks it."""

    def __init__(self, serializer_class: type[serializers.Serializer], param: str) -> None:
        self.serializer = serializer_class()
        self.param = param

    def __call__(self, value: Any) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise InvalidInput(f"`{self.param}` must be a JSON object.", code="invalid_type", param=self.param)
        try:
            return dict(self.serializer.run_validation(value))
        except serializers.ValidationError as exc:
            raise invalid_input_from(exc.detail, self.param) from None


class _Preparer:
    """The checks job_submit makes of one job, without writing anything (raising the same domain errors); what does
    not change from request to request (the serializers, the model lookup) is done once per batch."""

    def __init__(self, api_key: ApiKey, capability: Capability) -> None:
        self.api_key = api_key
        self.capability = capability
        self.inputs = _Validator(capability.input_serializer, "input")
        self.params = _Validator(capability.params_serializer, "params")
        self.models: dict[Any, Any] = {}

    def model(self, requested: Any, data: Any) -> Any:
        if requested in (None, ""):  # the default for this input, as a single submission chooses it
            requested = self.capability.default_for(data)
        key = requested if isinstance(requested, str) else repr(requested)
        if key not in self.models:
            try:
                self.models[key] = model_choice(self.api_key.partner, self.capability, requested)
            except DomainError as exc:
                self.models[key] = exc
        choice = self.models[key]
        if isinstance(choice, DomainError):
            raise choice
        return choice

    def __call__(self, request: BatchRequest) -> _Prepared:
        capability = self.capability
        choice = self.model(request.model, request.data)
        data = self.inputs(request.data)
        for name in capability.required_with_base_model if not choice.tuned else ():
            if not data.get(name):
                raise InvalidInput(f"input.{name} is required with the base model {choice.name}.", code="required")
        for name in capability.image_fields:
            if not str(data[name]).startswith(FILE_ID_PREFIX):
                raise InvalidInput(
                    f"In a batch, input.{name} must be an uploaded image's file id.", code="invalid_image", param=name
                )
        params = self.params(request.params)
        embedder_only_check(capability, choice, params)
        tokens.context_check(model=choice.base, capability=capability.name, data=data, params=params)
        return _Prepared(
            request=request,
            model=choice.name,
            queue=choice.queue,
            data=data,
            params=params,
            units=capability.cost(data, params),
        )


def _prepare_all(
    api_key: ApiKey, capability: Capability, requests: list[BatchRequest], errors: list[LineError]
) -> list[_Prepared]:
    """Every request checked; any error (the reader's `errors` of lines it could not read, and these) refuses all."""
    if not requests and not errors:
        raise BatchInvalid([LineError(line=0, code="empty_file", message="The input file has no requests.")])
    if len(requests) > settings.ALLIANCE_BATCH_MAX_REQUESTS:
        raise BatchInvalid(
            [
                LineError(
                    line=settings.ALLIANCE_BATCH_MAX_REQUESTS + 1,
                    code="too_many_requests",
                    message=f"A batch holds at most {settings.ALLIANCE_BATCH_MAX_REQUESTS} requests; "
                    f"this one has {len(requests)}.",
                )
            ]
        )
    errors = list(errors)
    prepare = _Preparer(api_key, capability)
    prepared: list[_Prepared] = []
    seen: set[str] = set()
    images: dict[str, list[int]] = {}
    for request in requests:
        if request.custom_id in seen:
            errors.append(
                LineError(request.line, "duplicate_custom_id", f"custom_id {request.custom_id!r} is used twice.")
            )
            continue
        seen.add(request.custom_id)
        try:
            item = prepare(request)
        except DomainError as exc:  # invalid input, a model not found, an input too large
            errors.append(LineError(request.line, exc.code, exc.message, exc.param))
            continue
        for name in capability.image_fields:
            images.setdefault(item.data[name], []).append(request.line)
        prepared.append(item)
    if images:
        known = set(
            StoredFile.objects.filter(
                partner=api_key.partner, public_id__in=list(images), purpose=FilePurpose.IMAGE
            ).values_list("public_id", flat=True)
        )
        for file_id in sorted(set(images) - known):
            errors += [LineError(line, "file_not_found", f"No image file {file_id!r}.") for line in images[file_id]]
    if errors:
        raise BatchInvalid(sorted(errors, key=lambda error: error.line))
    return prepared


def batch_create(
    *,
    api_key: ApiKey,
    api: str,
    capability: str,
    endpoint: str,
    requests: list[BatchRequest],
    line_errors: list[LineError] | None = None,
    input_file: StoredFile | None = None,
    completion_window: str = "24h",
    metadata: dict[str, str] | None = None,
) -> Batch:
    """Accepts a batch whole or not at all: BatchInvalid (nothing written) when any request is invalid (or any line
    its API could not read into a request: `line_errors`), LimitReached
    when their units exceed the remaining quota; else one transaction creates the batch, its jobs and their charges."""
    chosen = _capability_for(api_key, capability)
    window = COMPLETION_WINDOWS.get(completion_window)
    if window is None:
        raise InvalidInput(
            f"`completion_window` must be one of: {', '.join(COMPLETION_WINDOWS)}.",
            code="invalid_value",
            param="completion_window",
        )
    prepared = _prepare_all(api_key, chosen, requests, line_errors or [])
    quota = quota_for(partner=api_key.partner, capability=chosen.name)
    now = timezone.now()
    priority = {"priority": BATCH_PRIORITY} if "priority" in _JOB_FIELDS else {}
    with transaction.atomic():
        batch = Batch.objects.create(
            partner_id=api_key.partner_id,
            api_key=api_key,
            api=api,
            capability=chosen.name,
            endpoint=endpoint,
            completion_window=completion_window,
            status=BatchStatus.IN_PROGRESS,
            input_file=input_file,
            metadata=metadata,
            total=len(prepared),
            units=sum(item.units for item in prepared),
            in_progress_at=now,
            expires_at=now + window,
        )
        rows = [
            {
                "id": uuid7(),
                "partner_id": api_key.partner_id,
                "api_key_id": api_key.pk,
                "capability": chosen.name,
                "model": item.model,
                "queue": item.queue,
                "input": item.data,
                "params": item.params,
                "units": item.units,
                "batch_id": batch.pk,
                "custom_id": item.request.custom_id,
                "enqueued_at": now,
                **priority,
            }
            for item in prepared
        ]
        insert_rows(Job, rows)
        usage_charge_many(quota=quota, api_key=api_key, charges=[(row["id"], row["units"]) for row in rows], now=now)
        batch_accepted.send(sender=Batch, batch=batch, models=Counter(item.model for item in prepared))
        transaction.on_commit(lambda: _batch_enqueue_send(batch))
    return batch


def _batch_enqueue_send(batch: Batch) -> None:
    """One message for the whole batch: a worker (the `default` queue, as the reaper's) sends its jobs' messages, so
    accepting N jobs costs the request one broker round trip, not N. If it is lost, the reaper re-sends the queued
    jobs after ALLIANCE_JOB_REENQUEUE_SECONDS."""
    try:
        dispatch.send(dispatch.ENQUEUE_BATCH, str(batch.pk))
    except Exception:
        logger.warning("enqueue of batch %s failed; the reaper will send its jobs", batch.pk, exc_info=True)


def batch_jobs_enqueue(batch_id: str) -> int:
    """Sends a message for each queued job of the batch (the worker side of _batch_enqueue_send)."""
    jobs = list(
        Job.objects.filter(batch_id=batch_id, status=JobStatus.QUEUED).only("pk", "model", "queue", "partner_id")
    )
    jobs_enqueue(jobs)
    return len(jobs)


def batch_create_failed(
    *,
    api_key: ApiKey,
    api: str,
    capability: str,
    endpoint: str,
    errors: list[LineError],
    input_file: StoredFile | None = None,
    completion_window: str = "24h",
    metadata: dict[str, str] | None = None,
) -> Batch:
    """Records a batch whose input file failed validation (OpenAI's `validating -> failed`, with its line errors):
    no job, no charge."""
    now = timezone.now()
    return Batch.objects.create(
        partner_id=api_key.partner_id,
        api_key=api_key,
        api=api,
        capability=capability,
        endpoint=endpoint,
        completion_window=completion_window,
        status=BatchStatus.FAILED,
        input_file=input_file,
        metadata=metadata,
        errors=[error.as_dict() for error in errors[:MAX_LINE_ERRORS]],
        failed_at=now,
    )


def jobs_enqueue(jobs: list[Job]) -> None:
    """One message per job on its model's queue, all through one producer connection (dispatch.send's route and
    limits). A failed send leaves its job queued for the reaper, which sends it again."""
    routes: dict[str, str | None] = {}
    try:
        with app.producer_or_acquire() as producer:
            for job in jobs:
                if job.model not in routes:
                    routes[job.model] = job_route_model(job)
                soft, hard = dispatch.time_limits(dispatch.RUN_JOB, job.queue)
                route = routes[job.model]
                app.send_task(
                    dispatch.RUN_JOB,
                    args=[str(job.pk)],
                    queue=dispatch.model_queue(job.queue, route) if route else job.queue,
                    retry=False,
                    soft_time_limit=soft,
                    time_limit=hard,
                    producer=producer,
                )
    except Exception:
        logger.warning("enqueue of a batch's %d jobs failed; the reaper will send them again", len(jobs), exc_info=True)


# ---------------------------------------------------------------- cancelling, expiring


def _jobs_cancel_queued(batch: Batch, now: dt.datetime) -> list[Any]:
    """queued -> canceled for the batch's jobs in one conditional UPDATE; the ids it moved, refunded in full."""
    table = Job._meta.db_table
    prep = {name: Job._meta.get_field(name) for name in ("id", "finished_at", "batch")}
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET status = %s, finished_at = %s, claim_token = NULL "
            "WHERE batch_id = %s AND status = %s RETURNING id",
            [
                JobStatus.CANCELED,
                prep["finished_at"].get_db_prep_value(now, connection),
                prep["batch"].get_db_prep_value(batch.pk, connection),
                JobStatus.QUEUED,
            ],
        )
        ids = [prep["id"].to_python(row[0]) for row in cursor.fetchall()]
    if ids:
        usage_refund_many(job_ids=ids)
        jobs_finished_announce(ids)
    return ids


@transaction.atomic
def batch_cancel(*, batch: Batch) -> Batch:
    """in_progress -> cancelling: its queued jobs are cancelled and refunded; running ones finish and keep their
    charge. The batch is `cancelled` once none runs (batch_refresh). A finished batch answers Conflict."""
    locked = Batch.objects.select_for_update().get(pk=batch.pk)
    if locked.status != BatchStatus.IN_PROGRESS:
        if locked.status == BatchStatus.CANCELLING:
            return locked
        raise Conflict(f"The batch is already {locked.status}.", code="batch_finished")
    now = timezone.now()
    _jobs_cancel_queued(locked, now)
    locked.status, locked.cancelling_at = BatchStatus.CANCELLING, now
    locked.save(update_fields=["status", "cancelling_at"])
    return locked


@transaction.atomic
def batch_expire(*, batch: Batch, now: dt.datetime | None = None) -> bool:
    """A batch still in progress past its completion window: its queued jobs are cancelled and refunded (as on
    cancel), and it is `expired` once none runs. False when it was not in progress any more."""
    now = now or timezone.now()
    locked = Batch.objects.select_for_update().filter(pk=batch.pk, status=BatchStatus.IN_PROGRESS).first()
    if locked is None:
        return False
    _jobs_cancel_queued(locked, now)
    locked.status, locked.cancelling_at, locked.expired_at = BatchStatus.CANCELLING, now, now
    locked.save(update_fields=["status", "cancelling_at", "expired_at"])
    return True


def batches_expire(now: dt.datetime | None = None) -> int:
    """The reaper's sweep: expires the batches past their completion window."""
    now = now or timezone.now()
    due = Batch.objects.filter(status=BatchStatus.IN_PROGRESS, expires_at__lte=now).only("pk")[:100]
    return sum(batch_expire(batch=batch, now=now) for batch in due)


# ---------------------------------------------------------------- finishing


def batch_counts(batch: Batch) -> BatchCounts:
    """The live request counts: succeeded jobs are completed, failed ones failed (cancelled ones neither)."""
    if batch.status not in ACTIVE_BATCH_STATUSES:
        return BatchCounts(total=batch.total, completed=batch.completed, failed=batch.failed)
    rows = Job.objects.filter(batch=batch).values("status").annotate(n=Count("id")).order_by()
    by_status = {row["status"]: row["n"] for row in rows}
    return BatchCounts(
        total=batch.total,
        completed=by_status.get(JobStatus.SUCCEEDED, 0),
        failed=by_status.get(JobStatus.FAILED, 0),
        active=by_status.get(JobStatus.QUEUED, 0) + by_status.get(JobStatus.RUNNING, 0),
        by_status=by_status,
    )


Render = Callable[[Batch, Job], dict[str, Any]]


def batch_refresh(*, batch: Batch, render: Render) -> Batch:
    """Brings a batch up to date when it is read: expires it past its window, and finishes it once none of its jobs
    is queued or running, writing its output and error files (render(batch, job) is one line of either, in the
    shape of the API that accepted it). The row lock makes one reader build the files; the others see them."""
    if batch.status not in (BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING):
        return batch
    if batch.status == BatchStatus.IN_PROGRESS and batch.expires_at and batch.expires_at <= timezone.now():
        batch_expire(batch=batch)
        batch.refresh_from_db()
    if batch_counts(batch).active:
        return batch
    with transaction.atomic():
        locked = (
            Batch.objects.select_for_update()
            .filter(pk=batch.pk, status__in=[BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING])
            .first()
        )
        if locked is None or batch_counts(locked).active:
            batch.refresh_from_db()
            return batch
        _finish(locked, render)
    return locked


def _finish(batch: Batch, render: Render) -> None:
    now = timezone.now()
    output: list[str] = []
    errors: list[str] = []
    completed = failed = 0
    for job in Job.objects.filter(batch=batch).order_by("created_at", "id").iterator(chunk_size=500):
        line = json.dumps(render(batch, job), separators=(",", ":"), ensure_ascii=False)
        if job.status == JobStatus.SUCCEEDED:
            completed += 1
            output.append(line)
        else:
            failed += job.status == JobStatus.FAILED
            errors.append(line)
    batch.output_file = _store_lines(batch, output, "output")
    batch.error_file = _store_lines(batch, errors, "errors")
    batch.completed, batch.failed, batch.finalizing_at = completed, failed, now
    if batch.expired_at is not None:
        batch.status = BatchStatus.EXPIRED
    elif batch.status == BatchStatus.CANCELLING:
        batch.status, batch.cancelled_at = BatchStatus.CANCELLED, now
    else:
        batch.status, batch.completed_at = BatchStatus.COMPLETED, now
    batch.save()


def _store_lines(batch: Batch, lines: list[str], kind: str) -> StoredFile | None:
    if not lines:
        return None
    stored = store_file(
        partner=batch.partner,
        data=("\n".join(lines) + "\n").encode(),
        filename=f"{batch.public_id}_{kind}.jsonl",
        content_type="application/jsonl",
        purpose=FilePurpose.BATCH_OUTPUT,
    )
    return stored


def batch_input_read(stored: StoredFile) -> bytes:
    """The bytes of an uploaded batch input file."""
    if stored.purpose != FilePurpose.BATCH:
        raise InvalidInput(
            f"File {stored.public_id} was uploaded with purpose {stored.purpose!r}, not 'batch'.",
            code="invalid_file_purpose",
            param="input_file_id",
        )
    return file_path(stored).read_bytes()


__all__ = [
    "BATCH_PRIORITY",
    "BatchApi",
    "BatchCounts",
    "BatchInvalid",
    "BatchRequest",
    "LineError",
    "batch_cancel",
    "batch_counts",
    "batch_create",
    "batch_create_failed",
    "batch_expire",
    "batch_input_read",
    "batch_jobs_enqueue",
    "batch_refresh",
    "batches_expire",
    "jobs_enqueue",
]
