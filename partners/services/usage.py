"""The usage ledger: one charge per job in the job's own transaction, at most one refund (all of the charge, or
the part a job did not use: a tuning run canceled midway keeps the charge for the tokens it trained)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone

from alliance.bulk import insert_rows, rows_statement
from alliance.errors import LimitReached
from partners.models import (
    ApiKey,
    Quota,
    UsageKind,
    UsageRecord,
)
from partners.services.quotas import (
    UnitsState,
    month_start,
    next_month_start,
    quota_consume,
    quota_consume_statement,
    quota_period_ensure,
    quota_release,
)


def _charge_row(quota: Quota, api_key: ApiKey | None, job_id: UUID, units: int, month: dt.date) -> dict[str, Any]:
    """The ledger's charge row of one job, by attribute name (alliance.bulk.insert_rows)."""
    return {
        "partner_id": quota.partner_id,
        "api_key_id": api_key.pk if api_key else None,
        "capability": quota.capability,
        "job_id": job_id,
        "kind": UsageKind.CHARGE,
        "units": units,
        "month": month,
    }


def _charged(quota: Quota, used: int | None, what: str, units: int, now: dt.datetime | None) -> UnitsState:
    """The quota's state after a charge of `units` (`used`: the month's new total), or LimitReached when the charge
    did not fit (`used` None), with the seconds until the month resets."""
    reset_seconds = (next_month_start(now) - (now or timezone.now())).total_seconds()
    if used is None:
        raise LimitReached(
            f"Monthly quota for {quota.capability} exhausted: {what} {units} units "
            f"and the limit is {quota.monthly_units}.",
            code="quota_exceeded",
            retry_after=reset_seconds,
        )
    return UnitsState(limit=quota.monthly_units, used=used, reset_seconds=reset_seconds)


def usage_charge(
    *, quota: Quota, api_key: ApiKey | None, job_id: UUID, units: int, now: dt.datetime | None = None
) -> UnitsState:
    """Charges a job once. Must run inside the transaction that creates the job."""
    month = month_start(now)
    state = _charged(quota, quota_consume(quota=quota, units=units, month=month), "this job needs", units, now)
    UsageRecord(**_charge_row(quota, api_key, job_id, units, month)).save(force_insert=True)
    return state


def usage_charge_inserting(
    *,
    quota: Quota,
    api_key: ApiKey | None,
    job_id: UUID,
    units: int,
    insert: tuple[str, list],
    now: dt.datetime | None = None,
) -> UnitsState:
    """usage_charge and the INSERT of what is charged (`insert`: an INSERT ... SELECT statement, as
    alliance.bulk.insert_statement makes it, and its parameters) in ONE statement, so the whole submission is one
    round trip and, outside a transaction, commits on its own: the quota's conditional UPDATE, then the insert and
    the ledger's charge row only when the UPDATE took the units. A failure of any part (an Idempotency-Key already
    used) fails all of it. PostgreSQL only (data-modifying WITH); nothing is written when the units do not fit."""
    month = month_start(now)
    consume_sql, consume_params = quota_consume_statement(quota=quota, units=units, month=month)
    charge_sql, charge_params = rows_statement(UsageRecord, [_charge_row(quota, api_key, job_id, units, month)])
    insert_sql, insert_params = insert
    sql = (
        f"WITH charged AS ({consume_sql}), "
        f"inserted AS ({insert_sql} WHERE EXISTS (SELECT 1 FROM charged) RETURNING 1), "
        f"ledger AS ({charge_sql} WHERE EXISTS (SELECT 1 FROM inserted)) "
        "SELECT used FROM charged"
    )
    params = [*consume_params, *insert_params, *charge_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        if row is None:  # the month's first charge (no row to update yet), or the units do not fit
            quota_period_ensure(quota=quota, month=month)
            cursor.execute(sql, params)
            row = cursor.fetchone()
    return _charged(quota, None if row is None else int(row[0]), "this job needs", units, now)


@transaction.atomic
def usage_refund(*, job_id: UUID) -> bool:
    """Refunds a job's charge once; a second call, or a job never charged, changes nothing."""
    return usage_settle(job_id=job_id, used_units=0) is not None


@transaction.atomic
def usage_settle(*, job_id: UUID, used_units: int) -> int | None:
    """Keeps the charge for the units a job used (at most what was charged) and refunds the rest, once.

    Answers the units refunded now (0 when the job used all it was charged), or None when nothing changed: the
    job was never charged, or was refunded before. The refund is one ledger row (unique per job), so two callers
    cannot both refund; callers settle only from the conditional UPDATE that ended the job."""
    charge = UsageRecord.objects.filter(job_id=job_id, kind=UsageKind.CHARGE).first()
    if charge is None or UsageRecord.objects.filter(job_id=job_id, kind=UsageKind.REFUND).exists():
        return None
    refund = charge.units - min(max(0, used_units), charge.units)
    if refund == 0:
        return 0
    _, created = UsageRecord.objects.get_or_create(
        job_id=job_id,
        kind=UsageKind.REFUND,
        defaults={
            "partner_id": charge.partner_id,
            "api_key_id": charge.api_key_id,
            "capability": charge.capability,
            "units": refund,
            "month": charge.month,
        },
    )
    if not created:
        return None
    quota = Quota.objects.filter(partner_id=charge.partner_id, capability=charge.capability).first()
    if quota is not None:
        quota_release(quota_id=quota.pk, units=refund, month=charge.month)
    return refund


def usage_charge_many(
    *, quota: Quota, api_key: ApiKey | None, charges: list[tuple[UUID, int]], now: dt.datetime | None = None
) -> UnitsState:
    """Charges many jobs of one capability at once (a batch): one conditional UPDATE of the quota for their sum and
    one INSERT of their ledger rows, so each job is charged exactly once. All or none: past the remaining quota it
    raises LimitReached and charges nothing. Must run inside the transaction that creates the jobs."""
    month = month_start(now)
    units = sum(job_units for _, job_units in charges)
    used = quota_consume(quota=quota, units=units, month=month)
    state = _charged(quota, used, f"these {len(charges)} jobs need", units, now)
    insert_rows(UsageRecord, [_charge_row(quota, api_key, job_id, job_units, month) for job_id, job_units in charges])
    return state


@transaction.atomic
def usage_refund_many(*, job_ids: list[UUID]) -> int:
    """Refunds in full the charges of jobs that never ran (a batch's queued jobs when it is cancelled or expires):
    one INSERT of their refund rows and one quota release per capability and month. The caller refunds only the jobs
    its own conditional UPDATE moved out of `queued`, so none of them can be refunded twice (the ledger's unique
    (job, kind) would refuse it and roll the whole refund back). Answers the units refunded."""
    charges = list(
        UsageRecord.objects.filter(job_id__in=job_ids, kind=UsageKind.CHARGE).values(
            "job_id", "partner_id", "api_key_id", "capability", "units", "month"
        )
    )
    UsageRecord.objects.bulk_create(UsageRecord(**charge, kind=UsageKind.REFUND) for charge in charges)
    released: dict[tuple[int, str, dt.date], int] = {}
    for charge in charges:
        group = (charge["partner_id"], charge["capability"], charge["month"])
        released[group] = released.get(group, 0) + charge["units"]
    for (partner_id, capability, month), units in released.items():
        quota = Quota.objects.filter(partner_id=partner_id, capability=capability).first()
        if quota is not None and units:
            quota_release(quota_id=quota.pk, units=units, month=month)
    return sum(released.values())
