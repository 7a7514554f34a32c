from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from partners.models import Sector
from usecases.selectors import published_usecases


def gallery(request: HttpRequest) -> HttpResponse:
    sector = request.GET.get("sector") or None
    return render(
        request,
        "usecases/gallery.html",
        {"usecases": published_usecases(sector=sector), "sectors": Sector.choices, "sector": sector},
    )


def usecase_detail(request: HttpRequest, slug: str) -> HttpResponse:
    usecase = get_object_or_404(published_usecases(), slug=slug)
    return render(request, "usecases/detail.html", {"usecase": usecase})
