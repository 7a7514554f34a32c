from __future__ import annotations

import uuid

from django.db import models

from partners.models import ApiKey, Partner


class DatasetTask(models.TextChoices):
    CLASSIFICATION = "classification", "Classification"
    GENERATION = "generation", "Generation"
    CHAT = "chat", "Chat"


class Dataset(models.Model):
    """A partner's training data, validated on upload and stored encrypted with that partner's key."""

    public_id = models.CharField(max_length=40, unique=True)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="datasets")
    task = models.CharField(max_length=16, choices=DatasetTask.choices)
    purpose = models.CharField(max_length=32, default="fine-tune")
    filename = models.CharField(max_length=255)
    format = models.CharField(max_length=8)
    bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    path = models.CharField(max_length=500, help_text="Encrypted file, relative to MEDIA_ROOT.")
    stats = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["partner", "-created_at"], name="dataset_partner_created")]

    def __str__(self) -> str:
        return f"{self.public_id} {self.filename}"


class DatasetTokenCount(models.Model):
    """The tokens of each row of a dataset with one base model's tokenizer, counted once at upload: what a tuning
    job on it is estimated and charged by. The rows are grouped as the validation split groups them (by label for
    classification, in first-seen order; one group otherwise), in file order within a group. Only lengths are kept,
    never content."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="token_counts")
    base_model = models.CharField(max_length=200)
    groups = models.JSONField(help_text="Per-row token counts, one list per split group.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "base_model"], name="dataset_token_count_per_model"),
        ]


class TuningStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class TuningJob(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="tuning_jobs")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    dataset = models.ForeignKey(Dataset, null=True, on_delete=models.SET_NULL, related_name="tuning_jobs")
    task = models.CharField(max_length=16, choices=DatasetTask.choices)
    base_model = models.CharField(max_length=200)
    method = models.CharField(max_length=32)
    hyperparameters = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=TuningStatus.choices, default=TuningStatus.QUEUED)
    progress = models.JSONField(default=dict, help_text="step, total_steps, epoch, loss, eta_seconds")
    result = models.JSONField(null=True, blank=True, help_text="trainable/total parameters, metrics")
    error = models.JSONField(null=True, blank=True)
    units = models.PositiveBigIntegerField(default=0)
    claim_token = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="Last sent to the broker.")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["partner", "-created_at", "-id"], name="tuning_partner_created")]

    def __str__(self) -> str:
        return f"{self.id} {self.method} {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status in (TuningStatus.SUCCEEDED, TuningStatus.FAILED, TuningStatus.CANCELED)


class TuningEventKind(models.TextChoices):
    MESSAGE = "message", "Message"
    METRICS = "metrics", "Metrics"


class TuningEvent(models.Model):
    """A tuning job's history: messages (created, training, finished, failed) and, written by the worker, one
    metrics row per training step (step, epoch, loss, learning rate): the loss curve every reader sees."""

    job = models.ForeignKey(TuningJob, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=8, choices=TuningEventKind.choices, default=TuningEventKind.MESSAGE)
    level = models.CharField(max_length=8, default="info")
    message = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)
    step = models.PositiveIntegerField(null=True, blank=True)
    epoch = models.FloatField(null=True, blank=True)
    loss = models.FloatField(null=True, blank=True)
    learning_rate = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["job", "kind", "step"], name="tuning_event_job_kind_step")]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "step"], condition=models.Q(kind="metrics"), name="tuning_event_one_point_per_step"
            )
        ]


class TunedModel(models.Model):
    """An adapter on a base model, usable as `model` in jobs by its owner only."""

    name = models.CharField(max_length=200, unique=True)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="tuned_models")
    tuning_job = models.OneToOneField(TuningJob, on_delete=models.CASCADE, related_name="tuned_model")
    task = models.CharField(max_length=16, choices=DatasetTask.choices)
    base_model = models.CharField(max_length=200)
    adapter_path = models.CharField(max_length=500, help_text="Relative to MEDIA_ROOT.")
    labels = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name
