"""The public directory of the alliance's partners (those the operators list), by sector, and each one's profile."""

from __future__ import annotations

from itertools import groupby

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from partners.models import Sector
from partners.selectors import directory_partner, directory_partners
from usecases.selectors import published_usecases


def directory(request: HttpRequest) -> HttpResponse:
    sector = request.GET.get("sector") or None
    if sector is not None and sector not in Sector.values:
        sector = None
    partners = directory_partners(sector=sector)
    sectors = [(Sector(key).label, list(group)) for key, group in groupby(partners, key=lambda p: p.sector)]
    return render(
        request, "directory/directory.html", {"sectors": sectors, "chosen": sector, "choices": Sector.choices}
    )


def partner_profile(request: HttpRequest, slug: str) -> HttpResponse:
    partner = directory_partner(slug=slug)
    if partner is None:
        raise Http404("No such partner in the directory.")
    showcases = published_usecases(partner=partner.slug)
    return render(request, "directory/profile.html", {"partner": partner, "showcases": showcases})
