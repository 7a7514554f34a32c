"""Reads for partners, keys, quotas and usage."""

from __future__ import annotations

import datetime as dt

from django.db import connection
from django.db.models import Case, IntegerField, QuerySet, Sum, Value, When
from django.db.models.functions import TruncDate

from partners.models import ApiKey, AuditEvent, Partner, Quota, QuotaPeriod, UsageKind, UsageRecord


def partner_by_slug(slug: str) -> Partner:
    return Partner.objects.get(slug=slug)


def api_keys_of(*, partner: Partner) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(partner=partner)


def audit_events_of(*, partner: Partner) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(partner=partner)


def units_totals(*, partner: Partner, month: dt.date) -> tuple[int, int]:
    """(limit, used) summed over the partner's quotas for a month, in one query."""
    quotas, periods = Quota._meta.db_table, QuotaPeriod._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT COALESCE(SUM(monthly_units), 0) FROM {quotas} WHERE partner_id = %s), "
            f"(SELECT COALESCE(SUM(p.used), 0) FROM {periods} p JOIN {quotas} q ON q.id = p.quota_id "
            "WHERE q.partner_id = %s AND p.month = %s)",
            [partner.pk, partner.pk, month],
        )
        limit, used = cursor.fetchone()
    return int(limit), int(used)


def usage_by_day(
    *, partner: Partner, since: dt.datetime, until: dt.datetime, capability: str | None = None
) -> list[dict]:
    """Net units and job counts per capability and day (charges minus refunds)."""
    records = UsageRecord.objects.filter(partner=partner, created_at__gte=since, created_at__lt=until)
    if capability:
        records = records.filter(capability=capability)
    signed = Case(
        When(kind=UsageKind.REFUND, then=Value(-1)),
        default=Value(1),
        output_field=IntegerField(),
    )
    rows = (
        records.annotate(day=TruncDate("created_at"))
        .values("day", "capability")
        .annotate(
            charged=Sum(Case(When(kind=UsageKind.CHARGE, then="units"), default=Value(0))),
            refunded=Sum(Case(When(kind=UsageKind.REFUND, then="units"), default=Value(0))),
            jobs=Sum(signed),
        )
        .order_by("day", "capability")
    )
    return [
        {
            "date": row["day"].isoformat(),
            "capability": row["capability"],
            "units": int(row["charged"] or 0) - int(row["refunded"] or 0),
            "refunded_units": int(row["refunded"] or 0),
            "jobs": int(row["jobs"] or 0),
        }
        for row in rows
    ]
