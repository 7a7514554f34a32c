"""The public partner directory, read-only: GET /api/v1/partners and /api/v1/partners/<slug>. No key is needed: only
the public fields of the partners the operators list are shown. Each address is limited a minute."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from alliance.api.errors import ApiError
from alliance.errors import LimitReached, NotFound
from partners import ratelimit
from partners.models import Partner, Sector
from partners.selectors import directory_partner, directory_partners
from usecases.selectors import published_usecases

QUERY_PARAMETERS = {"sector"}
PUBLIC = "Scope: none; no key needed (public fields only, limited per address)."


class ShowcaseDoc(serializers.Serializer):
    slug = serializers.CharField()
    title = serializers.CharField()
    summary = serializers.CharField()


class PartnerDoc(serializers.Serializer):
    object = serializers.CharField(default="partner")
    slug = serializers.CharField()
    name = serializers.CharField()
    sector = serializers.ChoiceField(choices=Sector.choices)
    tier = serializers.CharField()
    founding_member = serializers.BooleanField()
    country = serializers.CharField(allow_blank=True)
    website = serializers.CharField(allow_blank=True)
    description = serializers.CharField(allow_blank=True)
    joined = serializers.DateField()
    showcases = ShowcaseDoc(many=True)


class PartnerListDoc(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = PartnerDoc(many=True)


def partner_data(partner: Partner) -> dict[str, Any]:
    return {
        "object": "partner",
        "slug": partner.slug,
        "name": partner.name,
        "sector": partner.sector,
        "tier": partner.tier,
        "founding_member": partner.founding_member,
        "country": partner.country,
        "website": partner.website,
        "description": partner.description,
        "joined": partner.created_at.date().isoformat(),
        "showcases": [
            {"slug": usecase.slug, "title": usecase.title, "summary": usecase.summary}
            for usecase in published_usecases(partner=partner.slug).order_by("title")
        ],
    }


class PublicApiView(APIView):
    """No key, no session: anyone may read; requests are counted per address."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        limit = settings.ALLIANCE_PUBLIC_REQUESTS_PER_MINUTE
        window = ratelimit.hit(f"public:{request.META.get('REMOTE_ADDR', 'unknown')}", limit)
        if not window.allowed:
            raise LimitReached(
                f"Rate limit of {limit} requests per minute reached for your address.",
                code="rate_limit_exceeded",
                retry_after=window.reset_seconds,
            )
        unknown = sorted(set(request.query_params) - self.query_parameters)
        if unknown:
            raise ApiError(f"Unknown query parameter {unknown[0]!r}.", code="unknown_parameter", param=unknown[0])

    query_parameters: set[str] = set()


@extend_schema_view(
    get=extend_schema(
        auth=[],
        responses={200: PartnerListDoc},
        parameters=[OpenApiParameter("sector", str, enum=Sector.values, description="Only this sector's partners.")],
        description="The alliance's listed partners and their public profiles, by sector then name.\n\n" + PUBLIC,
        extensions={"x-required-scopes": []},
    )
)
class PartnerDirectoryApi(PublicApiView):
    query_parameters = QUERY_PARAMETERS

    def get(self, request: Request) -> Response:
        sector = request.query_params.get("sector")
        if sector is not None and sector not in Sector.values:
            raise ApiError(f"Unknown sector {sector!r}.", code="invalid_sector", param="sector")
        partners = directory_partners(sector=sector)
        return Response({"object": "list", "data": [partner_data(partner) for partner in partners]})


@extend_schema_view(
    get=extend_schema(
        auth=[],
        responses={200: PartnerDoc},
        description="A listed partner's public profile.\n\n" + PUBLIC,
        extensions={"x-required-scopes": []},
    )
)
class PartnerDirectoryDetailApi(PublicApiView):
    def get(self, request: Request, slug: str) -> Response:
        partner = directory_partner(slug=slug)
        if partner is None:
            raise NotFound("No such partner in the directory.", code="not_found")
        return Response(partner_data(partner))
