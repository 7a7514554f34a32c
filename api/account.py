"""Partner-facing API: who am I, and usage per capability and day."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from alliance.api.errors import ApiError
from api.base import ANY_KEY, PartnerApiView
from capabilities import QUOTA_KEYS
from inference.webhook_security import signing_secret
from partners import scopes
from partners.models import Quota
from partners.selectors import usage_by_day
from partners.services import month_start

MAX_USAGE_DAYS = 366


class UsageQuerySerializer(serializers.Serializer):
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False, help_text="Exclusive.")
    capability = serializers.ChoiceField(choices=QUOTA_KEYS, required=False)


class UsageApi(PartnerApiView):
    required_scopes = {"GET": scopes.USAGE_READ}

    def get(self, request: Request) -> Response:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        today = timezone.now().date()
        start: dt.date = query.validated_data.get("start", month_start())
        end: dt.date = query.validated_data.get("end", today + dt.timedelta(days=1))
        if end <= start:
            raise ApiError("`end` must come after `start`.", code="invalid_range", param="end")
        if (end - start).days > MAX_USAGE_DAYS:
            raise ApiError(f"At most {MAX_USAGE_DAYS} days at once.", code="invalid_range", param="start")
        days = usage_by_day(
            partner=self.partner,
            since=dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC),
            until=dt.datetime.combine(end, dt.time.min, tzinfo=dt.UTC),
            capability=query.validated_data.get("capability"),
        )
        quotas = [
            {
                "capability": quota.capability,
                "monthly_units": quota.monthly_units,
                "rpm": quota.rpm,
                "used_this_month": next((p.used for p in quota.periods.all() if p.month == month_start()), 0),
            }
            for quota in Quota.objects.filter(partner=self.partner).prefetch_related("periods").order_by("capability")
        ]
        return Response(
            {
                "object": "usage",
                "start": start.isoformat(),
                "end": end.isoformat(),
                "data": days,
                "total_units": sum(day["units"] for day in days),
                "quotas": quotas,
            }
        )


class MeApi(PartnerApiView):
    """The key and its partner; the webhook signing secret only to a key with the `admin` scope."""

    required_scopes = {"GET": ANY_KEY}

    def get(self, request: Request) -> Response:
        partner, key = self.partner, self.api_key
        me: dict[str, Any] = {
            "partner": {"slug": partner.slug, "name": partner.name, "sector": partner.sector, "tier": partner.tier},
            "key": {
                "id": key.public_id,
                "name": key.name,
                "scopes": key.scopes,
                "expires_at": key.expires_at,
                "created_at": key.created_at,
            },
        }
        if not self.has_scope(scopes.ADMIN):
            return Response(me)
        response = Response({**me, "webhook_signing_secret": signing_secret(partner)})
        response["Cache-Control"] = "no-store"
        return response
