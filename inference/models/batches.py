"""A batch: many jobs of one capability accepted in one transaction, run at a lower priority than interactive jobs,
with its results gathered into an output file (and an error file) once the last of its jobs finishes."""

from __future__ import annotations

from django.db import models

from alliance.ids import uuid7
from partners.models import ApiKey, Partner

BATCH_ID_PREFIX = "batch_"


class BatchStatus(models.TextChoices):
    VALIDATING = "validating", "Validating"
    FAILED = "failed", "Failed"
    IN_PROGRESS = "in_progress", "In progress"
    FINALIZING = "finalizing", "Finalizing"
    COMPLETED = "completed", "Completed"
    EXPIRED = "expired", "Expired"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_BATCH_STATUSES = (
    BatchStatus.VALIDATING,
    BatchStatus.IN_PROGRESS,
    BatchStatus.FINALIZING,
    BatchStatus.CANCELLING,
)


class BatchApi(models.TextChoices):
    """Which API accepted the batch: it decides the shape of its input lines and of its output file's lines."""

    OPENAI = "openai", "OpenAI-compatible (/v1/batches)"
    NATIVE = "native", "Native (/api/v1/batches)"


class Batch(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="batches")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="batches")
    api = models.CharField(max_length=8, choices=BatchApi.choices)
    capability = models.CharField(max_length=64)
    endpoint = models.CharField(max_length=64, help_text="The url of every request line, e.g. /v1/chat/completions.")
    completion_window = models.CharField(max_length=8, default="24h")
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.VALIDATING)
    input_file = models.ForeignKey(
        "inference.StoredFile", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    output_file = models.ForeignKey(
        "inference.StoredFile", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error_file = models.ForeignKey(
        "inference.StoredFile", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    errors = models.JSONField(null=True, blank=True, help_text="Line errors of a batch that failed validation.")
    metadata = models.JSONField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0, help_text="Set when the batch finishes; live counts are read.")
    failed = models.PositiveIntegerField(default=0, help_text="Set when the batch finishes; live counts are read.")
    units = models.PositiveBigIntegerField(default=0, help_text="Charged when accepted (refunds are per job).")
    created_at = models.DateTimeField(auto_now_add=True)
    in_progress_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["partner", "-created_at", "-id"], name="batch_partner_created"),
            models.Index(fields=["expires_at"], condition=models.Q(status="in_progress"), name="batch_open_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.capability} {self.status}"

    @property
    def public_id(self) -> str:
        return f"{BATCH_ID_PREFIX}{self.pk.hex}"
