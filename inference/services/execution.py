"""The worker side of a job: claim (with dynamic batching), heartbeat, run, finish, reap."""

from __future__ import annotations

import datetime as dt
import io
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Case, F, JSONField, Value, When
from django.utils import timezone

from capabilities import get_capability
from inference import dispatch, streams, worker
from inference.errors import JobInputError
from inference.images import file_path, store_file
from inference.models import FilePurpose, Job, JobStatus, StoredFile, TunedModel
from inference.registry import ModelNotAvailable, get_model_spec
from inference.services.fair_share import jobs_claim_fair
from inference.services.submission import job_enqueue, job_route_model
from inference.services.waiting import jobs_finished_announce
from inference.tuning_config import TUNED_PREFIX
from partners.services import usage_refund

logger = logging.getLogger(__name__)


def job_claim(job_id: str, token: uuid.UUID | None = None) -> tuple[Job, uuid.UUID] | None:
    """This job, queued -> running in one conditional UPDATE; None when another delivery got there first. (A delivery
    claims the fairest job of its model instead: job_claim_next.)"""
    token = token or uuid.uuid4()
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, claim_token=token, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    return Job.objects.get(pk=job_id), token


def max_batch_size(model: str) -> int:
    if model.startswith(TUNED_PREFIX):
        return max(1, settings.ALLIANCE_MAX_BATCH or 8)
    return max(1, settings.ALLIANCE_MAX_BATCH or get_model_spec(model).batch_size)


def job_claim_next(*, model: str, token: uuid.UUID, resend: Job, limit: int = 1) -> list[Job]:
    """The fairest queued jobs of `model` (inference.services.fair_share), up to `limit` of one capability,
    queued -> running under `token`, in one claim; [] when none of the model's jobs is queued any more (this
    delivery's token is spent). Fewer than `limit` when fewer are queued, or when the model's queued jobs are of
    several capabilities (then only the fairest: the caller fills the batch with jobs_claim_batch).

    When jobs are queued but every one belongs to a partner at its running cap, waits up to
    ALLIANCE_PARTNER_CAP_WAIT_SECONDS for a slot, then sends the token again (a message for `resend`'s model) and
    returns []: the queued jobs keep a message each."""
    deadline = time.monotonic() + settings.ALLIANCE_PARTNER_CAP_WAIT_SECONDS
    while True:
        claim = jobs_claim_fair(model=model, token=token, limit=limit)
        if claim.claimed:
            jobs = _claimed(token)
            if jobs:
                return jobs
            continue  # canceled between their claim and this read: the token claims others
        if not claim.waiting:
            return []
        if time.monotonic() >= deadline:
            logger.info("model %s: every queued job's partner is at its running cap; the delivery waits again", model)
            job_enqueue(resend)
            return []
        time.sleep(0.02)


def _claimed(token: uuid.UUID, exclude: list[uuid.UUID] | None = None) -> list[Job]:
    """The jobs still running under `token` (a canceled one drops out), oldest first."""
    jobs = Job.objects.filter(claim_token=token, status=JobStatus.RUNNING)
    if exclude:
        jobs = jobs.exclude(pk__in=exclude)
    return list(jobs.order_by("created_at", "id"))


def jobs_claim_batch(
    *, first: Job, token: uuid.UUID, limit: int, wait_seconds: float, have: list[Job] | None = None
) -> list[Job]:
    """Claims up to `limit` more queued jobs of the same model and capability under the same token, in fair order
    (inference.services.fair_share); answers them (not `first`, nor the jobs in `have`, claimed before).

    Waits at most `wait_seconds` for more to arrive. The conditional UPDATE makes a job claimed by another
    worker in the meantime simply drop out of this batch.
    """
    deadline = time.monotonic() + wait_seconds
    claimed = 0
    while claimed < limit:
        claim = jobs_claim_fair(model=first.model, capability=first.capability, token=token, limit=limit - claimed)
        claimed += claim.claimed
        if claim.claimed:
            continue
        if time.monotonic() >= deadline:
            break
        time.sleep(0.002)
    if not claimed:
        return []
    return _claimed(token, exclude=[first.pk, *(job.pk for job in have or ())])


class JobHeartbeat:
    """Refreshes heartbeat_at of a claimed batch while it runs, so the reaper can tell slow from dead."""

    def __init__(self, token: uuid.UUID) -> None:
        self._token = token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{token}", daemon=True)

    def __enter__(self) -> JobHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(settings.ALLIANCE_JOB_HEARTBEAT_SECONDS):
                try:
                    Job.objects.filter(claim_token=self._token, status=JobStatus.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError:
                    logger.warning("heartbeat of batch %s missed; retrying", self._token, exc_info=True)
        finally:
            connection.close()


def job_execute(job_id: str) -> list[Job]:
    """Runs one delivery: the delivered message is a token to run one job of its job's model, so it claims the
    fairest queued job of that model (inference.services.fair_share), which need not be the delivered one, and
    batches whatever of its kind is queued with it in the same order. A delivery that finds nothing of its model
    queued does nothing.

    At the task's soft time limit (ALLIANCE_TASK_TIME_LIMITS of the job's family) every job of the batch still
    running fails with code "time_limit" and is refunded."""
    delivered = Job.objects.filter(pk=job_id).only("pk", "model", "partner_id", "queue", "status").first()
    if delivered is None or _rerouted(delivered):
        return []
    size = max_batch_size(delivered.model)
    batch = job_claim_next(model=delivered.model, token=uuid.uuid4(), resend=delivered, limit=size)
    if not batch:
        logger.debug("job %s: nothing of model %s claimable; delivery ignored", job_id, delivered.model)
        return []
    first = batch[0]
    token = first.claim_token
    try:
        if len(batch) < size:  # not full: what arrives within the batch wait joins it
            batch += jobs_claim_batch(
                first=first,
                token=token,
                limit=size - len(batch),
                wait_seconds=settings.ALLIANCE_BATCH_WAIT_MS / 1000,
                have=batch,
            )
        logger.info("claimed batch %s: %d %s job(s) on %s", token, len(batch), first.capability, first.model)
        if first.capability in streams.STREAMING_CAPABILITIES:
            streams.publish_status({job.pk: job.attempts for job in batch}, JobStatus.RUNNING)
        with JobHeartbeat(token):
            _run(batch, token)
    except SoftTimeLimitExceeded:
        jobs_time_out(token=token, queue=first.queue)
    return batch


def _rerouted(delivered: Job) -> bool:
    """A worker restricted by ALLIANCE_WORKER_MODELS that got a delivery for a model it does not host through its
    family's queue (a message sent before model queues, or by hand) leaves the jobs queued and sends the token on to
    the model's queue, where a worker that hosts the model takes it."""
    if not settings.ALLIANCE_WORKER_MODELS:
        return False
    route = job_route_model(delivered)
    if worker.hosts(route):
        return False
    if Job.objects.filter(status=JobStatus.QUEUED, model=delivered.model).exists():
        logger.info("job %s: model %s is not hosted here; sent on to its model's queue", delivered.pk, route)
        job_enqueue(delivered)
    return True


def jobs_time_out(*, token: uuid.UUID, queue: str) -> int:
    """Fails (and refunds) the jobs of a batch that are still running when its task reached the soft time limit."""
    soft, _ = dispatch.time_limits(dispatch.RUN_JOB, queue)
    message = f"The job ran past the time limit of {soft:g} s of its model family ({queue}); it is not charged."
    failed = 0
    for job in Job.objects.filter(claim_token=token, status=JobStatus.RUNNING):
        failed += job_fail(job=job, token=token, code="time_limit", message=message)
    logger.warning("batch %s: %d job(s) failed at the soft time limit of %s s", token, failed, soft)
    return failed


def _run(batch: list[Job], token: uuid.UUID, *, stream: bool = True) -> None:
    """Runs a batch; an LLM batch of a streaming capability publishes each job's text as it is generated. After a
    failed batch its jobs run one by one without streaming (what was streamed is not sent twice; the final `job`
    event of a follower carries the stored output)."""
    publisher = None
    if stream and batch[0].capability in streams.STREAMING_CAPABILITIES:
        publisher = streams.TokenPublisher([str(job.pk) for job in batch])
    try:
        inputs = [_worker_input(job) for job in batch]
        outputs = _run_model(
            batch[0], inputs, [job.params for job in batch], publisher.delta if publisher is not None else None
        )
        if publisher is not None:
            publisher.flush()
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:  # noqa: BLE001 - isolate the job that failed, fail only that one
        if len(batch) > 1:
            logger.warning(
                "batch of %d %s jobs failed (%s); running them one by one",
                len(batch),
                batch[0].capability,
                type(exc).__name__,
            )
            for job in batch:
                _run([job], token, stream=publisher is None)
            return
        _fail_for(batch[0], token, exc)
        return
    encoded: list[tuple[Job, dict[str, Any]]] = []
    for job, output in zip(batch, outputs, strict=True):
        try:
            encoded.append((job, _encoded_output(output)))
        except Exception as exc:  # noqa: BLE001 - an output that cannot be encoded fails its job, not the batch
            _fail_for(job, token, exc)
    for job, exc in jobs_succeed(results=encoded, token=token).failures:
        _fail_for(job, token, exc)


def _run_model(
    first: Job, inputs: list[dict[str, Any]], params: list[dict[str, Any]], on_delta: Any = None
) -> list[dict[str, Any]]:
    """A registry model, or a partner's adapter swapped into its shared base model for this batch; either streams
    its text through on_delta when given."""
    from inference.backends import run_batch, run_tuned_batch

    if not first.model.startswith(TUNED_PREFIX):
        return run_batch(first.capability, first.model, inputs, params, on_delta)
    tuned = TunedModel.objects.filter(name=first.model, partner_id=first.partner_id).first()
    if tuned is None:
        raise JobInputError(f"The tuned model {first.model} no longer exists.")
    return run_tuned_batch(
        task=tuned.task,
        base_model=tuned.base_model,
        adapter_dir=Path(settings.MEDIA_ROOT) / tuned.adapter_path,
        adapter_id=tuned.name,
        inputs=inputs,
        params=params,
        on_delta=on_delta,
    )


def _fail_for(job: Job, token: uuid.UUID, exc: BaseException) -> None:
    if isinstance(exc, JobInputError):
        job_fail(job=job, token=token, code="invalid_input", message=str(exc))
    elif isinstance(exc, ModelNotAvailable):
        job_fail(job=job, token=token, code="model_unavailable", message=str(exc))
    elif isinstance(exc, SoftTimeLimitExceeded):
        job_fail(job=job, token=token, code="time_limit", message="The job ran past its time limit.")
    elif isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        job_fail(job=job, token=token, code="out_of_memory", message="The model ran out of memory on this input.")
    else:
        logger.error("job %s: model failed", job.pk, exc_info=exc)
        job_fail(job=job, token=token, code="model_error", message=f"The model failed: {type(exc).__name__}.")


def _worker_input(job: Job) -> dict[str, Any]:
    """The job's input with uploaded image ids replaced by RGB images."""
    fields = get_capability(job.capability).image_fields
    if not fields:
        return job.input
    from PIL import Image

    data = dict(job.input)
    for field in fields:
        stored = StoredFile.objects.filter(partner_id=job.partner_id, public_id=data[field]).first()
        if stored is None or not file_path(stored).exists():
            raise JobInputError(f"The image {data[field]} is no longer available.")
        with Image.open(file_path(stored)) as image:
            data[field] = image.convert("RGB")
    return data


@dataclass(frozen=True)
class EncodedImage:
    """A generated image as PNG bytes, to be stored as the job's file only when the job succeeds."""

    data: bytes
    width: int
    height: int


def _encoded_output(output: dict[str, Any]) -> dict[str, Any]:
    """The output with each generated PIL image (the output's own and each choice's) encoded as PNG, outside any
    transaction: the CPU work is done before the job's row is locked."""
    encoded = dict(output)
    image = output.get("image")
    if image is not None and not isinstance(image, dict):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        encoded["image"] = EncodedImage(buffer.getvalue(), image.width, image.height)
    if isinstance(output.get("choices"), list):
        encoded["choices"] = [  # the first choice's image is the output's own: encoded once
            {**choice, "image": encoded["image"]}
            if image is not None and choice.get("image") is image
            else _encoded_output(choice)
            for choice in output["choices"]
        ]
    return encoded


def _stored_output(job: Job, output: dict[str, Any], written: list[Path]) -> dict[str, Any]:
    """Generated images go to MEDIA_ROOT; the output names them by URL, served to the job's owner only. Called inside
    the job's success transaction: a job canceled meanwhile stores nothing. Paths written go to `written`."""
    stored_output = dict(output)
    image = output.get("image")
    if isinstance(image, EncodedImage):
        stored = store_file(
            partner=job.partner,
            data=image.data,
            filename=f"{job.pk}.png",
            content_type="image/png",
            purpose=FilePurpose.GENERATED,
            width=image.width,
            height=image.height,
            job=job,
        )
        written.append(file_path(stored))
        stored_output["image"] = {
            "url": f"/api/v1/files/{stored.public_id}/content",
            "file_id": stored.public_id,
            "width": image.width,
            "height": image.height,
        }
    if isinstance(output.get("choices"), list):  # the first choice's image is the output's own: stored once
        stored_output["choices"] = [
            {**choice, "image": stored_output["image"]}
            if image is not None and choice.get("image") is image
            else _stored_output(job, choice, written)
            for choice in output["choices"]
        ]
    return stored_output


@dataclass
class Finished:
    succeeded: int
    failures: list[tuple[Job, Exception]]


@transaction.atomic
def job_succeed(*, job: Job, token: uuid.UUID, output: dict[str, Any]) -> bool:
    return jobs_succeed(results=[(job, output)], token=token).succeeded == 1


def jobs_succeed(*, results: list[tuple[Job, dict[str, Any]]], token: uuid.UUID) -> Finished:
    """Records a batch's outputs in one transaction (one commit for the batch, not one per job).

    The rows still running under this claim are locked first; a job canceled or reaped meanwhile keeps its state and
    gets no file. Outputs without files are written by one UPDATE for all of them; outputs with generated images (and
    all of them, should that UPDATE fail) are stored one job at a time, each in its own savepoint. A job whose output
    cannot be stored (e.g. the media volume is full, a value the database refuses) is returned among the failures,
    for the caller to fail; its files are removed, as are all files written when the transaction does not commit.
    The batch's stream ends and its announcement go out once, after the commit.
    """
    now = timezone.now()
    written: list[Path] = []
    finished = Finished(succeeded=0, failures=[])
    succeeded: list[uuid.UUID] = []
    try:
        with transaction.atomic():
            running = set(
                Job.objects.select_for_update()
                .filter(pk__in=[job.pk for job, _ in results], status=JobStatus.RUNNING, claim_token=token)
                .values_list("pk", flat=True)
            )
            for job in (job for job, _ in results if job.pk not in running):
                logger.info("job %s is no longer running (canceled or reaped): its output is dropped", job.pk)
            results = [(job, output) for job, output in results if job.pk in running]
            hooked = [job for job, _ in results if job.webhook_url]
            plain = [(job, output) for job, output in results if not _has_files(output)]
            if plain and _store_plain(plain, now):
                succeeded += [job.pk for job, _ in plain]
                results = [(job, output) for job, output in results if _has_files(output)]
            for job, output in results:
                mark = len(written)
                try:
                    with transaction.atomic():
                        stored = _stored_output(job, output, written)
                        Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, output=stored, finished_at=now)
                except Exception as exc:
                    if isinstance(exc, SoftTimeLimitExceeded):
                        raise
                    _remove(written[mark:])
                    del written[mark:]
                    finished.failures.append((job, exc))
                    continue
                succeeded.append(job.pk)
            finished.succeeded = len(succeeded)
            streams.publish_ends_on_commit(succeeded, JobStatus.SUCCEEDED)
            done = set(succeeded)
            for job in hooked:
                if job.pk in done:
                    transaction.on_commit(lambda job_id=job.pk: _enqueue_webhook(job_id))
            jobs_finished_announce(succeeded)  # after the commit: requests waiting on them wake
    except BaseException:
        _remove(written)
        raise
    return finished


def _has_files(output: dict[str, Any]) -> bool:
    """Whether storing the output writes files (a generated image, its own or a choice's)."""
    if isinstance(output.get("image"), EncodedImage):
        return True
    choices = output.get("choices")
    return isinstance(choices, list) and any(isinstance(choice, dict) and _has_files(choice) for choice in choices)


def _store_plain(results: list[tuple[Job, dict[str, Any]]], now: dt.datetime) -> bool:
    """Outputs that write no file, stored by one UPDATE in a savepoint; False (nothing stored) when it fails, and the
    caller stores them one by one, so that only a job whose output the database refuses fails."""
    outputs = Case(*(When(pk=job.pk, then=Value(output, output_field=JSONField())) for job, output in results))
    try:
        with transaction.atomic():
            Job.objects.filter(pk__in=[job.pk for job, _ in results]).update(
                status=JobStatus.SUCCEEDED, output=outputs, finished_at=now
            )
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        logger.warning("one UPDATE of %d outputs failed; storing them one by one", len(results), exc_info=True)
        return False
    return True


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


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
        streams.publish_end_on_commit(job.pk, JobStatus.FAILED)
        jobs_finished_announce([job.pk])
        if job.webhook_url:
            transaction.on_commit(lambda: _enqueue_webhook(job.pk))
    return bool(finished)


def _enqueue_webhook(job_id: uuid.UUID) -> None:
    try:
        dispatch.send(dispatch.DELIVER_WEBHOOK, str(job_id))
    except Exception:
        logger.warning("could not enqueue the webhook of job %s", job_id, exc_info=True)


def jobs_reap(now: dt.datetime | None = None) -> dict[str, int]:
    """Requeues jobs whose worker stopped heart-beating, and re-sends queued jobs the broker may have lost."""
    now = now or timezone.now()
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    stale_before = now - dt.timedelta(seconds=settings.ALLIANCE_JOB_STALE_SECONDS)
    for job in Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale_before)[:500]:
        if job.attempts >= settings.ALLIANCE_JOB_MAX_ATTEMPTS:
            message = f"The job's worker stopped {job.attempts} times; giving up."
            if job_fail(job=job, token=job.claim_token, code="worker_lost", message=message):
                counts["failed"] += 1
            continue
        requeued = Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING, claim_token=job.claim_token).update(
            status=JobStatus.QUEUED, claim_token=None, heartbeat_at=None, enqueued_at=now
        )
        if requeued:
            counts["requeued"] += 1
            job_enqueue(job)
    resend_before = now - dt.timedelta(seconds=settings.ALLIANCE_JOB_REENQUEUE_SECONDS)
    for job in Job.objects.filter(status=JobStatus.QUEUED, enqueued_at__lt=resend_before)[:500]:
        if Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED, enqueued_at=job.enqueued_at).update(enqueued_at=now):
            counts["resent"] += 1
            job_enqueue(job)
    return counts
