"""Writes for partners, memberships, API keys, quotas, usage and the audit log."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from alliance.errors import Conflict, InvalidInput, LimitReached
from capabilities import CAPABILITY_NAMES, QUOTA_KEYS
from partners import keys
from partners.models import (
    ApiKey,
    ApiKeyCredential,
    AuditEvent,
    Membership,
    Partner,
    Quota,
    QuotaPeriod,
    Role,
    UsageKind,
    UsageRecord,
)

# ---------------------------------------------------------------- audit


def actor_for(*, user: AbstractBaseUser | None = None, api_key: ApiKey | None = None) -> str:
    if user is not None:
        return f"user:{user.get_username()}"
    if api_key is not None:
        return f"key:{api_key.public_id}"
    return "system"


def audit_record(
    *, partner: Partner | None, actor: str, action: str, target: str = "", data: dict | None = None
) -> AuditEvent:
    return AuditEvent.objects.create(partner=partner, actor=actor, action=action, target=target, data=data or {})


# ---------------------------------------------------------------- partners and members


@transaction.atomic
def partner_create(
    *,
    name: str,
    sector: str,
    tier: str = "standard",
    founding_member: bool = False,
    country: str = "",
    website: str = "",
    description: str = "",
    actor: str = "system",
) -> Partner:
    partner = Partner.objects.create(
        name=name,
        slug=slugify(name),
        sector=sector,
        tier=tier,
        founding_member=founding_member,
        country=country,
        website=website,
        description=description,
    )
    audit_record(partner=partner, actor=actor, action="partner.created", target=partner.slug)
    return partner


@transaction.atomic
def partner_set_active(*, partner: Partner, is_active: bool, actor: str) -> Partner:
    partner.is_active = is_active
    partner.save(update_fields=["is_active"])
    audit_record(partner=partner, actor=actor, action="partner.activated" if is_active else "partner.deactivated")
    return partner


@transaction.atomic
def membership_add(*, partner: Partner, user: AbstractBaseUser, role: str, actor: str) -> Membership:
    membership = Membership.objects.create(partner=partner, user=user, role=Role(role))
    audit_record(
        partner=partner, actor=actor, action="membership.added", target=user.get_username(), data={"role": role}
    )
    return membership


@transaction.atomic
def membership_set_role(*, membership: Membership, role: str, actor: str) -> Membership:
    previous = membership.role
    membership.role = Role(role)
    membership.save(update_fields=["role"])
    audit_record(
        partner=membership.partner,
        actor=actor,
        action="membership.role_changed",
        target=membership.user.get_username(),
        data={"from": previous, "to": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: str) -> None:
    audit_record(
        partner=membership.partner,
        actor=actor,
        action="membership.removed",
        target=membership.user.get_username(),
        data={"role": membership.role},
    )
    membership.delete()


# ---------------------------------------------------------------- API keys


def _validate_scopes(scopes: Iterable[str]) -> list[str]:
    cleaned = sorted({scope.strip() for scope in scopes if scope.strip()})
    unknown = [scope for scope in cleaned if scope not in CAPABILITY_NAMES]
    if unknown:
        raise InvalidInput(
            f"Unknown capability in scopes: {', '.join(unknown)}. Known: {', '.join(CAPABILITY_NAMES)}.",
            code="unknown_capability",
            param="scopes",
        )
    return cleaned


@transaction.atomic
def api_key_issue(
    *,
    partner: Partner,
    name: str,
    actor: str,
    scopes: Iterable[str] = (),
    expires_at: dt.datetime | None = None,
    created_by: AbstractBaseUser | None = None,
) -> tuple[ApiKey, str]:
    """Creates a key and returns it with its raw value, which is never stored and cannot be shown again."""
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("The expiry must lie in the future.", code="invalid_expiry", param="expires_at")
    api_key = ApiKey.objects.create(
        public_id=keys.generate_public_id(),
        partner=partner,
        name=name,
        scopes=_validate_scopes(scopes),
        expires_at=expires_at,
        created_by=created_by,
    )
    material = keys.generate_key_material()
    ApiKeyCredential.objects.create(api_key=api_key, prefix=material.prefix, hashed_secret=material.hashed_secret)
    audit_record(
        partner=partner,
        actor=actor,
        action="api_key.issued",
        target=api_key.public_id,
        data={"name": name, "scopes": api_key.scopes, "expires_at": expires_at.isoformat() if expires_at else None},
    )
    return api_key, material.raw


@transaction.atomic
def api_key_rotate(*, api_key: ApiKey, actor: str, grace_seconds: int = 24 * 3600) -> str:
    """A new secret under the same key id; the current ones stay valid for the grace period."""
    if api_key.revoked_at is not None:
        raise Conflict("A revoked key cannot be rotated.", code="key_revoked")
    grace_end = timezone.now() + dt.timedelta(seconds=max(0, grace_seconds))
    api_key.credentials.filter(valid_until__isnull=True).update(valid_until=grace_end)
    api_key.credentials.filter(valid_until__gt=grace_end).update(valid_until=grace_end)
    material = keys.generate_key_material()
    ApiKeyCredential.objects.create(api_key=api_key, prefix=material.prefix, hashed_secret=material.hashed_secret)
    audit_record(
        partner=api_key.partner,
        actor=actor,
        action="api_key.rotated",
        target=api_key.public_id,
        data={"grace_seconds": grace_seconds},
    )
    return material.raw


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: str) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(partner=api_key.partner, actor=actor, action="api_key.revoked", target=api_key.public_id)
    return api_key


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The key behind a raw value, or None; records last use at most once a minute."""
    material = keys.parse_raw_key(raw_key)
    if material is None:
        keys.hash_secret(raw_key)  # same work as a real check, so a malformed key answers no faster
        return None
    credential = ApiKeyCredential.objects.select_related("api_key__partner").filter(prefix=material.prefix).first()
    if credential is None:
        keys.hash_secret(material.secret)
        return None
    if not keys.secret_matches(material.secret, credential.hashed_secret):
        return None
    now = timezone.now()
    api_key = credential.api_key
    if (
        (credential.valid_until is not None and credential.valid_until <= now)
        or api_key.revoked_at is not None
        or (api_key.expires_at is not None and api_key.expires_at <= now)
        or not api_key.partner.is_active
    ):
        return None
    resolution = dt.timedelta(seconds=settings.ALLIANCE_API_KEY_LAST_USED_RESOLUTION_SECONDS)
    if api_key.last_used_at is None or api_key.last_used_at <= now - resolution:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


# ---------------------------------------------------------------- quotas and usage


def month_start(moment: dt.datetime | None = None) -> dt.date:
    moment = moment or timezone.now()
    return moment.astimezone(dt.UTC).date().replace(day=1)


def next_month_start(moment: dt.datetime | None = None) -> dt.datetime:
    first = month_start(moment)
    year, month = (first.year + 1, 1) if first.month == 12 else (first.year, first.month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC)


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
            defaults={"monthly_units": settings.ALLIANCE_DEFAULT_MONTHLY_UNITS, "rpm": settings.ALLIANCE_DEFAULT_RPM},
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


def quota_consume(*, quota: Quota, units: int, month: dt.date) -> int | None:
    """Adds units to this month's use in one conditional UPDATE against the current limit.

    The row and the limit are looked up by partner and capability inside the statement, so a cached
    Quota object never decides the outcome. Returns the new total, or None when the units do not fit.
    """
    key = [quota.partner_id, quota.capability]
    params = [units, *key, month, units, *key]
    with connection.cursor() as cursor:
        cursor.execute(_consume_sql(), params)
        row = cursor.fetchone()
        if row is None:
            current = quota_for(partner=quota.partner, capability=quota.capability)
            QuotaPeriod.objects.get_or_create(quota=current, month=month)
            cursor.execute(_consume_sql(), params)
            row = cursor.fetchone()
    return None if row is None else int(row[0])


def quota_release(*, quota_id: int, units: int, month: dt.date) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {QuotaPeriod._meta.db_table} SET used = CASE WHEN used >= %s THEN used - %s ELSE 0 END "
            "WHERE quota_id = %s AND month = %s",
            [units, units, quota_id, month],
        )


def usage_charge(
    *, quota: Quota, api_key: ApiKey | None, job_id: UUID, units: int, now: dt.datetime | None = None
) -> UnitsState:
    """Charges a job once. Must run inside the transaction that creates the job."""
    month = month_start(now)
    used = quota_consume(quota=quota, units=units, month=month)
    reset_seconds = (next_month_start(now) - (now or timezone.now())).total_seconds()
    if used is None:
        raise LimitReached(
            f"Monthly quota for {quota.capability} exhausted: this job needs {units} units "
            f"and the limit is {quota.monthly_units}.",
            code="quota_exceeded",
            retry_after=reset_seconds,
        )
    UsageRecord.objects.create(
        partner_id=quota.partner_id,
        api_key=api_key,
        capability=quota.capability,
        job_id=job_id,
        kind=UsageKind.CHARGE,
        units=units,
        month=month,
    )
    return UnitsState(limit=quota.monthly_units, used=used, reset_seconds=reset_seconds)


@transaction.atomic
def usage_refund(*, job_id: UUID) -> bool:
    """Refunds a job's charge once; a second call, or a job never charged, changes nothing."""
    charge = UsageRecord.objects.filter(job_id=job_id, kind=UsageKind.CHARGE).first()
    if charge is None:
        return False
    _, created = UsageRecord.objects.get_or_create(
        job_id=job_id,
        kind=UsageKind.REFUND,
        defaults={
            "partner_id": charge.partner_id,
            "api_key_id": charge.api_key_id,
            "capability": charge.capability,
            "units": charge.units,
            "month": charge.month,
        },
    )
    if created:
        quota = Quota.objects.filter(partner_id=charge.partner_id, capability=charge.capability).first()
        if quota is not None:
            quota_release(quota_id=quota.pk, units=charge.units, month=charge.month)
    return created
