"""Fair sharing of a model's workers between partners, decided where a worker claims jobs.

A job's broker message is a token to run one job of its model, not necessarily that job: the worker that receives it
claims the fairest queued job of the model, and fills its batch in the same order. The order is:

1. `priority`, lowest first (0: interactive jobs; batch jobs wait behind them);
2. within a priority, weighted fair queuing by partner: the partner with the least recent service on this model per
   unit of weight goes next, service being the jobs of the model started in the last ALLIANCE_FAIR_WINDOW_SECONDS
   or running now, and weight its tier's ALLIANCE_TIER_WEIGHTS. Each job handed out counts at once, so a batch of 8
   with two partners of weights 3 and 1 waiting, and no recent service, takes 6 and 2;
3. within a partner, the oldest first.

A partner with ALLIANCE_PARTNER_MAX_RUNNING jobs running (over every model) gets no more until one finishes.

Every job keeps exactly one run: the claim is one conditional UPDATE (queued -> running) of rows selected with
FOR UPDATE SKIP LOCKED on PostgreSQL (SQLite serialises writers; the condition alone holds there). No job loses its
token: every job sends one message, a delivery claims at least one job while any of its model's is queued and
claimable, and a delivery that finds only capped partners' jobs puts its message back (inference.services.execution).
"""

from __future__ import annotations

import datetime as dt
import heapq
import uuid
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from inference.models import Job, JobStatus


@dataclass(frozen=True)
class FairClaim:
    """What one fair claim did: the number of jobs it claimed, and whether any job of the model was queued at all
    (queued yet none claimed: every waiting partner is at its running cap, or another worker holds the rows)."""

    claimed: int
    waiting: bool


@dataclass
class _Partner:
    weight: float
    served: int  # jobs of the model started in the window or running, plus the ones handed out in this claim
    running: int  # jobs running now over every model, plus the ones handed out in this claim


def tier_weight(tier: str) -> int:
    return settings.ALLIANCE_TIER_WEIGHTS.get(tier, 1)


def fair_allocation(
    groups: dict[int, dict[int, int]], partners: dict[int, _Partner], limit: int, cap: int
) -> list[tuple[int, int, int]]:
    """Hands out `limit` slots: [(partner_id, priority, count)], by priority, then virtual finish time
    ((served + 1) / weight of the partner's next job), then partner id (a stable tie-break).

    groups: priority -> {partner_id: queued jobs at that priority}."""
    allocation: dict[tuple[int, int], int] = defaultdict(int)
    left = limit
    for priority in sorted(groups):
        if left <= 0:
            break
        waiting = groups[priority]
        heap = [((partners[p].served + 1) / partners[p].weight, p) for p in waiting]
        heapq.heapify(heap)
        while heap and left > 0:
            _, partner_id = heapq.heappop(heap)
            share = partners[partner_id]
            if cap and share.running >= cap:
                continue  # at its cap: none of its jobs, at any priority, until one finishes
            allocation[(partner_id, priority)] += 1
            share.served += 1
            share.running += 1
            left -= 1
            if allocation[(partner_id, priority)] < waiting[partner_id]:
                heapq.heappush(heap, ((share.served + 1) / share.weight, partner_id))
    return [(partner_id, priority, count) for (partner_id, priority), count in allocation.items()]


def jobs_claim_fair(*, model: str, token: uuid.UUID, limit: int, capability: str | None = None) -> FairClaim:
    """Claims up to `limit` queued jobs of `model` (and `capability`, when given) under `token`, in fair order.

    The jobs claimed are always of one capability (a batch runs one): without `capability`, up to `limit` when the
    model's queued jobs are all of one capability (a whole batch in one claim), else only the fairest job, whose
    capability the caller then fills its batch with."""
    queued = Job.objects.filter(status=JobStatus.QUEUED, model=model)
    if capability is not None:
        queued = queued.filter(capability=capability)
    groups: dict[int, dict[int, int]] = defaultdict(dict)
    tiers: dict[int, str] = {}
    capabilities: set[str] = set()
    for partner_id, tier, priority, kind, count in queued.values_list(
        "partner_id", "partner__tier", "priority", "capability"
    ).annotate(count=Count("pk")):
        groups[priority][partner_id] = groups[priority].get(partner_id, 0) + count
        tiers[partner_id] = tier
        capabilities.add(kind)
    if not groups:
        return FairClaim(claimed=0, waiting=False)
    if capability is None and len(capabilities) > 1:
        limit = 1
    elif capability is None:  # a job of another capability queued from now on stays out of this claim
        queued = queued.filter(capability=next(iter(capabilities)))
    now = timezone.now()
    since = now - dt.timedelta(seconds=settings.ALLIANCE_FAIR_WINDOW_SECONDS)
    running = Q(status=JobStatus.RUNNING)
    recent = Q(model=model) & (Q(started_at__gte=since) | running)  # a long job counts while it runs
    partners = {partner_id: _Partner(tier_weight(tier), 0, 0) for partner_id, tier in tiers.items()}
    for partner_id, served, running_now in (
        Job.objects.filter(recent | running, partner_id__in=tiers)
        .values_list("partner_id")
        .annotate(served=Count("pk", filter=recent), running=Count("pk", filter=running))
    ):
        partners[partner_id].served = served
        partners[partner_id].running = running_now
    allocation = fair_allocation(groups, partners, limit, settings.ALLIANCE_PARTNER_MAX_RUNNING)
    if not allocation:
        return FairClaim(claimed=0, waiting=True)
    with transaction.atomic():
        ids: list[uuid.UUID] = []
        for partner_id, priority, count in allocation:
            ids += (
                queued.filter(partner_id=partner_id, priority=priority)
                .order_by("created_at")
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:count]
            )
        claimed = Job.objects.filter(pk__in=ids, status=JobStatus.QUEUED).update(
            status=JobStatus.RUNNING, claim_token=token, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
        )
    return FairClaim(claimed=claimed, waiting=True)
