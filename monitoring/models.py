from __future__ import annotations

from django.db import models


class Heartbeat(models.Model):
    """A worker's heartbeat (or one of its processes' current batch) when there is no Redis to hold it: a row that
    counts while `expires_at` is ahead. With Redis the same records are keys with a time to live."""

    name = models.CharField(max_length=255, primary_key=True)
    kind = models.CharField(max_length=16)
    data = models.JSONField(default=dict)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class OperatorOverview(Heartbeat):
    """The admin's operator's view (a page, not a table of its own)."""

    class Meta:
        proxy = True
        verbose_name = "operator's overview"
        verbose_name_plural = "operator's overview"
