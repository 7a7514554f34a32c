from __future__ import annotations

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
