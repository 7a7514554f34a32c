from __future__ import annotations

from django.db import models

from partners.models import Partner, Sector


class UseCaseStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    PUBLISHED = "published", "Published"
    REJECTED = "rejected", "Rejected"


class UseCase(models.Model):
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="usecases")
    sector = models.CharField(max_length=32, choices=Sector.choices)
    capabilities = models.JSONField(default=list)
    summary = models.CharField(max_length=300)
    story = models.TextField(blank=True)
    example_input = models.JSONField(default=dict, blank=True)
    featured = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=UseCaseStatus.choices, default=UseCaseStatus.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-featured", "title"]

    def __str__(self) -> str:
        return self.title
