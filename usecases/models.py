from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from partners.models import Partner, Sector


class UseCaseStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    IN_REVIEW = "in_review", _("In review")
    PUBLISHED = "published", _("Published")
    REJECTED = "rejected", _("Rejected")


class UseCase(models.Model):
    title = models.CharField(max_length=200, blank=True)  # English; a showcase has a title in one language at least
    slug = models.SlugField(max_length=200, unique=True)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="usecases")
    sector = models.CharField(max_length=32, choices=Sector.choices)
    capabilities = models.JSONField(default=list)
    summary = models.CharField(max_length=300, blank=True)
    story = models.TextField(blank=True)
    # The Korean texts; the English ones are title, summary and story. Either may be empty: see in_language().
    title_ko = models.CharField("title (Korean)", max_length=200, blank=True)
    summary_ko = models.CharField("summary (Korean)", max_length=300, blank=True)
    story_ko = models.TextField("story (Korean)", blank=True)
    results = models.TextField(blank=True, help_text="One result a line, e.g. a metric the partner measured.")
    example_input = models.JSONField(default=dict, blank=True)
    try_capability = models.CharField(
        max_length=64, blank=True, help_text="The capability 'Try it' opens; empty: the first that fits the example."
    )
    recipe = models.JSONField(
        default=dict, blank=True, help_text="Steps 'Try it' runs as real jobs (usecases.recipes); {} for none."
    )
    featured = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=UseCaseStatus.choices, default=UseCaseStatus.DRAFT)
    rejection_reason = models.TextField(blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-featured", "title"]

    def __str__(self) -> str:
        return self.title or self.title_ko

    @property
    def is_public(self) -> bool:
        return self.status == UseCaseStatus.PUBLISHED

    def in_language(self, field: str, language: str | None = None) -> str:
        """`field` (title, summary or story) in `language` (default: the request's), falling back to the other."""
        english, korean = getattr(self, field), getattr(self, f"{field}_ko")
        korean_first = (language or get_language() or "en").lower().startswith("ko")
        return (korean or english) if korean_first else (english or korean)

    @property
    def local_title(self) -> str:
        return self.in_language("title")

    @property
    def local_summary(self) -> str:
        return self.in_language("summary")

    @property
    def local_story(self) -> str:
        return self.in_language("story")

    @property
    def results_list(self) -> list[str]:
        return [line.strip() for line in self.results.splitlines() if line.strip()]


def usecase_image_path(instance: UseCaseImage, filename: str) -> str:
    return f"usecases/{instance.usecase_id}/{filename}"


class UseCaseImage(models.Model):
    usecase = models.ForeignKey(UseCase, on_delete=models.CASCADE, related_name="images")
    image = models.ImageField(upload_to=usecase_image_path)
    caption = models.CharField(max_length=200, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.caption or self.image.name


class RecipeRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class RecipeRun(models.Model):
    """One run of a showcase's recipe: its steps run as real jobs, one after another, on the partner's quota of
    whoever ran it. A recorded run is shown to every visitor of the showcase as one of its results."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    usecase = models.ForeignKey(UseCase, on_delete=models.CASCADE, related_name="runs")
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="recipe_runs")
    api_key = models.ForeignKey("partners.ApiKey", null=True, on_delete=models.SET_NULL, related_name="+")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recipe = models.JSONField(help_text="The recipe as it was when the run started.")
    inputs = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=RecipeRunStatus.choices, default=RecipeRunStatus.RUNNING)
    error = models.JSONField(null=True, blank=True)
    recorded = models.BooleanField(default=False, help_text="Shown on the showcase page as one of its results.")
    record_when_done = models.BooleanField(default=False, help_text="Becomes a recorded result once it succeeds.")
    images = models.JSONField(default=dict, blank=True, help_text="Step id -> the showcase image made of its output.")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["usecase", "recorded"])]

    def __str__(self) -> str:
        return f"{self.usecase.slug} run {self.pk}"


class RecipeRunStep(models.Model):
    run = models.ForeignKey(RecipeRun, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    step_id = models.CharField(max_length=32)
    job = models.OneToOneField("inference.Job", null=True, on_delete=models.SET_NULL, related_name="recipe_step")

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["run", "position"], name="recipe_step_once")]

    def __str__(self) -> str:
        return f"{self.run_id} step {self.position} ({self.step_id})"
