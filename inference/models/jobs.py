from __future__ import annotations

from django.db import models
from django.db.models import Q

from alliance.ids import uuid7
from partners.models import ApiKey, Partner


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


FINISHED_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


class Job(models.Model):
    """An inference job. The database is its source of truth; the broker carries only its id."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="jobs")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    capability = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    queue = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    input = models.JSONField()
    params = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    units = models.PositiveBigIntegerField(default=0)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    webhook_url = models.URLField(max_length=2000, blank=True)
    # Served first: a lower number runs before a higher one of the same model, whatever the partner (0: interactive,
    # the default; batch jobs take a higher number). Within a priority, partners share by tier weight
    # (inference.services.fair_share).
    priority = models.PositiveSmallIntegerField(default=0)
    # A job of a batch (inference.models.batches): the batch and the request's custom_id in its input file.
    batch = models.ForeignKey("inference.Batch", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    custom_id = models.CharField(max_length=512, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    claim_token = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="unique_job_idempotency_key",
            )
        ]
        indexes = [
            models.Index(fields=["partner", "-created_at", "-id"], name="job_partner_created"),
            models.Index(
                fields=["status", "heartbeat_at"],
                condition=Q(status__in=["queued", "running"]),
                name="job_active_heartbeat",
            ),
            models.Index(
                fields=["model", "partner", "priority", "created_at"],
                condition=Q(status="queued"),
                name="job_queued_fair",
            ),
            models.Index(fields=["model", "started_at"], name="job_started_by_model"),
            models.Index(fields=["claim_token"], condition=Q(status="running"), name="job_running_by_claim"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.capability} {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class WebhookDelivery(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="webhook_deliveries")
    attempt = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    delivered = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)


class FilePurpose(models.TextChoices):
    IMAGE = "image", "Image input"
    GENERATED = "generated", "Generated output"
    BATCH = "batch", "Batch input (JSONL)"
    BATCH_OUTPUT = "batch_output", "Batch output or errors (JSONL)"


PRODUCED_PURPOSES = (FilePurpose.GENERATED, FilePurpose.BATCH_OUTPUT)  # stored regardless of storage limits


class StoredFile(models.Model):
    """A file a partner uploaded or a job produced, stored under MEDIA_ROOT and served to its owner only."""

    public_id = models.CharField(max_length=40, unique=True)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="files")
    purpose = models.CharField(max_length=16, choices=FilePurpose.choices)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    path = models.CharField(max_length=500, help_text="Relative to MEDIA_ROOT.")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="files")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["partner", "-created_at"], name="file_partner_created")]

    def __str__(self) -> str:
        return f"{self.public_id} {self.filename}"


class JobStreamEvent(models.Model):
    """One event of a job's token channel when there is no Redis (inference.streams.DatabaseChannel): the id is the
    cursor a follower reads after. Rows older than ALLIANCE_STREAM_TTL_SECONDS are pruned by the reaper."""

    id = models.BigAutoField(primary_key=True)
    job_id = models.UUIDField(db_index=True)
    event = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
