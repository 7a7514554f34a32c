from __future__ import annotations

from django.db.models import QuerySet

from usecases.models import UseCase, UseCaseStatus


def published_usecases(*, sector: str | None = None) -> QuerySet[UseCase]:
    usecases = UseCase.objects.filter(status=UseCaseStatus.PUBLISHED).select_related("partner")
    if sector:
        usecases = usecases.filter(sector=sector)
    return usecases
