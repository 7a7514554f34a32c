"""Quotas per partner and capability: monthly units consumed by one conditional UPDATE, and their months; and the
limits on what a partner keeps stored."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from alliance.errors import InvalidInput, LimitReached, TooLarge
from capabilities import QUOTA_KEYS
from partners.models import (
    Partner,
    Quota,
    QuotaPeriod,
)
from partners.services.audit import audit_record


def month_start(moment: dt.datetime | None = None) -> dt.date:
    moment = moment or timezone.now()
    return moment.astimezone(dt.UTC).date().replace(day=1)


def next_month_start(moment: dt.datetime | None = None) -> dt.datetime:
    first = month_start(moment)
    year, month = (first.year + 1, 1) if first.month == 12 else (first.year, first.month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC)


def tier_defaults(tier: str) -> dict[str, int]:
    """A tier's default quota of each capability: the platform's defaults times the tier's factor."""
    factor = settings.ALLIANCE_TIER_FACTORS.get(tier, 1)
    return {
        "monthly_units": settings.ALLIANCE_DEFAULT_MONTHLY_UNITS * factor,
        "rpm": settings.ALLIANCE_DEFAULT_RPM * factor,
    }


QUOTA_CACHE_SECONDS = 5.0
_quota_cache: dict[tuple[int, str], tuple[float, Quota]] = {}


def quota_for(*, partner: Partner, capability: str, cached: bool = False) -> Quota:
    """The partner's quota for a capability, created with the defaults on first use.

    `cached` allows a copy up to QUOTA_CACHE_SECONDS old (for the rpm and the headers on the hot path);
    consumption always checks the current limit in the database.
    """
    cache_key = (partner.pk, capability)
    if cached:
        hit = _quota_cache.get(cache_key)
        if hit is not None and time.monotonic() - hit[0] < QUOTA_CACHE_SECONDS:
            return hit[1]
    quota = Quota.objects.filter(partner=partner, capability=capability).first()
    if quota is None:
        quota, _ = Quota.objects.get_or_create(
            partner=partner,
            capability=capability,
            defaults=tier_defaults(partner.tier),
        )
    _quota_cache[cache_key] = (time.monotonic(), quota)
    return quota


@transaction.atomic
def quota_set(
    *,
    partner: Partner,
    capability: str,
    actor: str,
    monthly_units: int | None = None,
    rpm: int | None = None,
) -> Quota:
    if capability not in QUOTA_KEYS:
        raise InvalidInput(f"Unknown capability {capability!r}.", code="unknown_capability", param="capability")
    quota = quota_for(partner=partner, capability=capability)
    before = {"monthly_units": quota.monthly_units, "rpm": quota.rpm}
    if monthly_units is not None:
        quota.monthly_units = monthly_units
    if rpm is not None:
        quota.rpm = rpm
    quota.save(update_fields=["monthly_units", "rpm", "updated_at"])
    _quota_cache.pop((partner.pk, capability), None)
    audit_record(
        partner=partner,
        actor=actor,
        action="quota.set",
        target=capability,
        data={"before": before, "after": {"monthly_units": quota.monthly_units, "rpm": quota.rpm}},
    )
    return quota


@dataclass(frozen=True)
class UnitsState:
    limit: int
    used: int
    reset_seconds: float

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


def _consume_sql() -> str:
    periods, quotas = QuotaPeriod._meta.db_table, Quota._meta.db_table
    return (
        f"UPDATE {periods} SET used = used + %s "
        f"WHERE quota_id = (SELECT id FROM {quotas} WHERE partner_id = %s AND capability = %s) AND month = %s "
        f"AND used + %s <= (SELECT monthly_units FROM {quotas} WHERE partner_id = %s AND capability = %s) "
        "RETURNING used"
    )


def quota_consume_statement(*, quota: Quota, units: int, month: dt.date) -> tuple[str, list]:
    """quota_consume's conditional UPDATE as (SQL, parameters), for a caller that runs it within a larger statement
    (partners.services.usage.usage_charge_inserting); it answers `used` when the units fit, no row otherwise."""
    key = [quota.partner_id, quota.capability]
    return _consume_sql(), [units, *key, month, units, *key]


def quota_period_ensure(*, quota: Quota, month: dt.date) -> None:
    """The month's row of the quota (and the quota itself) exist, so a conditional UPDATE finds them."""
    current = quota_for(partner=quota.partner, capability=quota.capability)
    QuotaPeriod.objects.get_or_create(quota=current, month=month)


def quota_consume(*, quota: Quota, units: int, month: dt.date) -> int | None:
    """Adds units to this month's use in one conditional UPDATE against the current limit.

    The row and the limit are looked up by partner and capability inside the statement, so a cached
    Quota object never decides the outcome. Returns the new total, or None when the units do not fit.
    """
    sql, params = quota_consume_statement(quota=quota, units=units, month=month)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        if row is None:
            quota_period_ensure(quota=quota, month=month)
            cursor.execute(sql, params)
            row = cursor.fetchone()
    return None if row is None else int(row[0])


def quota_release(*, quota_id: int, units: int, month: dt.date) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {QuotaPeriod._meta.db_table} SET used = CASE WHEN used >= %s THEN used - %s ELSE 0 END "
            "WHERE quota_id = %s AND month = %s",
            [units, units, quota_id, month],
        )


@dataclass(frozen=True)
class StorageUse:
    """What a partner keeps stored (uploaded and generated files, datasets) against its storage limits."""

    bytes: int
    files: int
    max_bytes: int
    max_files: int

    @property
    def percent_bytes(self) -> float:
        return min(100.0, 100.0 * self.bytes / self.max_bytes) if self.max_bytes else 0.0

    @property
    def percent_files(self) -> float:
        return min(100.0, 100.0 * self.files / self.max_files) if self.max_files else 0.0


def storage_limits() -> tuple[int, int]:
    """(bytes, files) a partner may keep stored: ALLIANCE_STORAGE_MAX_BYTES and ALLIANCE_STORAGE_MAX_FILES."""
    return settings.ALLIANCE_STORAGE_MAX_BYTES, settings.ALLIANCE_STORAGE_MAX_FILES


def storage_check(*, use: StorageUse, adding_bytes: int) -> None:
    """Refuses one more stored item of `adding_bytes` past either limit: 413 for bytes, 429 for the count, both
    `storage_quota_exceeded`, naming the limit and the current use. The caller holds the partner's storage lock,
    so the use it counted cannot change before it stores."""
    if use.files + 1 > use.max_files:
        raise LimitReached(
            f"Storage quota reached: {use.files} of {use.max_files} files are stored. "
            "Delete files or datasets you no longer need, or ask the alliance operators for more.",
            code="storage_quota_exceeded",
        )
    if use.bytes + adding_bytes > use.max_bytes:
        raise TooLarge(
            f"Storage quota exceeded: this upload is {adding_bytes} bytes, {use.bytes} of {use.max_bytes} bytes "
            f"are stored ({max(0, use.max_bytes - use.bytes)} free). Delete files or datasets you no longer need, "
            "or ask the alliance operators for more.",
            code="storage_quota_exceeded",
        )


def partner_lock(*, partner_id: int) -> None:
    """Locks the partner's row until the surrounding transaction ends: the counts a limit is checked against (stored
    files, running tuning jobs) stay as counted until the new row is written. Must run inside a transaction."""
    list(Partner.objects.select_for_update().filter(pk=partner_id).values_list("pk", flat=True))
