"""Reads for partners, keys, quotas and usage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.conf import settings
from django.db import connection
from django.db.models import Case, IntegerField, Q, QuerySet, Sum, Value, When
from django.db.models.functions import TruncDate

from partners.models import (
    ApiKey,
    AuditEvent,
    Invitation,
    Membership,
    Partner,
    Quota,
    QuotaPeriod,
    Role,
    UsageKind,
    UsageRecord,
    invitation_token_hash,
)


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


# ---------------------------------------------------------------- portal reads


def memberships_of_user(*, user) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user, partner__is_active=True)
        .select_related("partner")
        .order_by("partner__name")
    )


def members_of(*, partner: Partner) -> QuerySet[Membership]:
    return Membership.objects.filter(partner=partner).select_related("user").order_by("user__username")


def owners_count(*, partner: Partner) -> int:
    return Membership.objects.filter(partner=partner, role=Role.OWNER).count()


def active_api_keys_of(*, partner: Partner, now: dt.datetime) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(partner=partner, revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


def api_key_named(*, partner: Partner, name: str, now: dt.datetime) -> ApiKey | None:
    """The newest usable key of that name (the playground's per-member key, for one)."""
    return active_api_keys_of(partner=partner, now=now).filter(name=name).order_by("-created_at").first()


def quota_usage(*, partner: Partner, month: dt.date, capabilities: Sequence[str]) -> list[dict]:
    """Each capability's monthly quota and this month's use; a capability without a quota row shows the defaults."""
    quotas = {quota.capability: quota for quota in Quota.objects.filter(partner=partner)}
    used = dict(
        QuotaPeriod.objects.filter(quota__partner=partner, month=month).values_list("quota__capability", "used")
    )
    rows = []
    factor = settings.ALLIANCE_TIER_FACTORS.get(partner.tier, 1)
    for name in capabilities:
        quota = quotas.get(name)
        limit = quota.monthly_units if quota else settings.ALLIANCE_DEFAULT_MONTHLY_UNITS * factor
        units = int(used.get(name, 0))
        rows.append(
            {
                "capability": name,
                "monthly_units": limit,
                "rpm": quota.rpm if quota else settings.ALLIANCE_DEFAULT_RPM * factor,
                "is_default": quota is None,
                "used": units,
                "remaining": max(0, limit - units),
                "percent": min(100.0, 100.0 * units / limit) if limit else 100.0,
            }
        )
    return rows


# ---------------------------------------------------------------- invitations


def pending_invitations_of(*, partner: Partner, now: dt.datetime) -> QuerySet[Invitation]:
    """Invitations that can still be accepted, newest first."""
    return (
        Invitation.objects.filter(
            partner=partner, accepted_at=None, declined_at=None, revoked_at=None, expires_at__gt=now
        )
        .select_related("invited_by")
        .order_by("-created_at", "-id")
    )


def invitation_by_token(raw: str) -> Invitation | None:
    """The invitation whose link carries this token, in whatever state; None for an unknown token."""
    if not raw or len(raw) > 128:
        return None
    invitations = Invitation.objects.select_related("partner", "invited_by")
    return invitations.filter(token_hash=invitation_token_hash(raw)).first()


def directory_partners(*, sector: str | None = None) -> QuerySet[Partner]:
    """The public directory: active partners the operators chose to list (Partner.listed), by sector then name."""
    partners = Partner.objects.filter(listed=True, is_active=True).order_by("sector", "name")
    return partners.filter(sector=sector) if sector else partners


def directory_partner(*, slug: str) -> Partner | None:
    return directory_partners().filter(slug=slug).first()
