"""The fair order of claims between partners (inference.services.fair_share), on the claim's own code path: priority
first, then the partner with the least recent service per tier weight, a per-partner cap on running jobs; a
delivery is a token for its model, so the delivered job need not be the one that runs."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from alliance.celery import app
from inference import dispatch, services
from inference.models import Job
from inference.services.fair_share import jobs_claim_fair
from tests.factories import KEYWORD_TEXT, client_for, keyword_job, make_key, make_partner

pytestmark = pytest.mark.django_db


def _partner_api(name: str, tier: str = "standard"):
    partner = make_partner(name, tier=tier)
    return partner, client_for(make_key(partner)[1])


def _submit(api, count: int, **extra: object) -> list[str]:
    ids = []
    for i in range(count):
        response = api.post("/api/v1/jobs", keyword_job(f"{KEYWORD_TEXT} ({i})", **extra), format="json")
        assert response.status_code == 202, response.json()
        ids.append(response.json()["id"])
    return ids


def _claim_order(model: str, count: int) -> list[int]:
    """The partners of the next `count` jobs claimed one at a time."""
    order = []
    for _ in range(count):
        token = uuid.uuid4()
        assert jobs_claim_fair(model=model, token=token, limit=1).claimed == 1
        order.append(Job.objects.get(claim_token=token).partner_id)
    return order


def test_a_second_partner_is_served_next_though_the_first_submitted_a_flood():
    a, api_a = _partner_api("Flood Co")
    b, api_b = _partner_api("Neighbour Co")
    flood = _submit(api_a, 12)
    model = Job.objects.get(pk=flood[0]).model
    _claim_order(model, 4)  # A was served while it was alone
    neighbour = _submit(api_b, 3)
    # B has had no service in the window, A four jobs: B's three go first.
    assert _claim_order(model, 3) == [b.pk] * 3
    assert Job.objects.filter(pk__in=neighbour, status="running").count() == 3
    assert _claim_order(model, 2) == [a.pk] * 2
    # First in, first out within a partner.
    running_a = list(Job.objects.filter(partner=a, status="running").values_list("pk", flat=True))
    assert sorted(str(pk) for pk in running_a) == sorted(flood[:6])


def test_equal_tiers_alternate_and_weights_set_the_share_of_a_batch():
    a, api_a = _partner_api("Standard Co")
    b, api_b = _partner_api("Founding Co", tier="founding")
    c, api_c = _partner_api("Other Standard Co")
    ids = _submit(api_a, 10) + _submit(api_b, 10)
    model = Job.objects.get(pk=ids[0]).model
    token = uuid.uuid4()
    assert jobs_claim_fair(model=model, token=token, limit=8).claimed == 8
    shares = sorted(Job.objects.filter(claim_token=token).values_list("partner_id", flat=True))
    assert shares.count(b.pk) == 6 and shares.count(a.pk) == 2  # weights 3 : 1

    Job.objects.filter(partner__in=[a, b]).update(status="canceled")
    _submit(api_c, 6)
    _submit(api_a, 6)
    order = _claim_order(model, 4)  # A was served 2 in the window, C none: C twice, then they alternate
    assert order[:2] == [c.pk, c.pk] and sorted(order[2:]) == sorted([a.pk, c.pk])


def test_priority_comes_before_fairness():
    a, api_a = _partner_api("Interactive Co")
    b, api_b = _partner_api("Batch Co")
    batch_jobs = _submit(api_b, 4)
    Job.objects.filter(pk__in=batch_jobs).update(priority=1)
    model = Job.objects.get(pk=batch_jobs[0]).model
    _submit(api_a, 3)
    # A (priority 0) goes first although it is newer; then B's lower-priority jobs.
    assert _claim_order(model, 5) == [a.pk] * 3 + [b.pk] * 2


def test_a_partner_at_its_running_cap_gets_no_more_and_others_still_do(settings):
    settings.ALLIANCE_PARTNER_MAX_RUNNING = 2
    a, api_a = _partner_api("Capped Co")
    b, api_b = _partner_api("Uncapped Co")
    ids = _submit(api_a, 6)
    model = Job.objects.get(pk=ids[0]).model
    token = uuid.uuid4()
    assert jobs_claim_fair(model=model, token=token, limit=8).claimed == 2
    blocked = jobs_claim_fair(model=model, token=uuid.uuid4(), limit=8)
    assert blocked.claimed == 0 and blocked.waiting
    _submit(api_b, 3)
    token_b = uuid.uuid4()
    assert jobs_claim_fair(model=model, token=token_b, limit=8).claimed == 2
    assert set(Job.objects.filter(claim_token=token_b).values_list("partner_id", flat=True)) == {b.pk}
    # A finishing one job frees one slot.
    job = Job.objects.filter(claim_token=token).first()
    assert services.job_succeed(job=job, token=token, output={"keywords": []})
    assert jobs_claim_fair(model=model, token=uuid.uuid4(), limit=8).claimed == 1  # one of A's; B is at its cap
    assert Job.objects.filter(partner=a, status="running").count() == 2


def test_a_delivery_runs_the_fairest_job_and_a_spent_token_runs_another(settings):
    settings.ALLIANCE_MAX_BATCH = 1
    settings.ALLIANCE_FAIR_WINDOW_SECONDS = 3600  # the first run loads the model: its start stays in the window
    _, api_a = _partner_api("First Co")
    _, api_b = _partner_api("Second Co")
    ids_a = _submit(api_a, 3)
    assert [str(job.pk) for job in services.job_execute(ids_a[0])] == [ids_a[0]]
    ids_b = _submit(api_b, 1)
    # The message of A's second job runs B's job (A was served, B not); A's second job waits for the next token.
    assert [str(job.pk) for job in services.job_execute(ids_a[1])] == ids_b
    assert Job.objects.get(pk=ids_a[1]).status == "queued"
    # B's message finds B's job done and runs A's next job: every queued job keeps a token.
    assert [str(job.pk) for job in services.job_execute(ids_b[0])] == [ids_a[1]]
    assert [str(job.pk) for job in services.job_execute(ids_a[2])] == [ids_a[2]]
    assert services.job_execute(ids_a[0]) == []
    jobs = Job.objects.filter(pk__in=ids_a + ids_b)
    assert all(job.status == "succeeded" and job.attempts == 1 for job in jobs)


def test_service_counts_the_recent_window_and_the_jobs_still_running(settings):
    settings.ALLIANCE_FAIR_WINDOW_SECONDS = 30
    a, api_a = _partner_api("Earlier Co")
    b, api_b = _partner_api("Recent Co")
    old = _submit(api_a, 2)
    model = Job.objects.get(pk=old[0]).model
    _claim_order(model, 2)
    long_ago = timezone.now() - dt.timedelta(minutes=10)
    Job.objects.filter(pk__in=old).update(status="succeeded", started_at=long_ago, finished_at=long_ago)
    _submit(api_b, 1)
    _claim_order(model, 1)
    Job.objects.filter(partner=b).update(status="succeeded")
    _submit(api_a, 2)
    _submit(api_b, 2)
    # A's two jobs ran ten minutes ago, outside the window; B's one just now: A goes next.
    assert _claim_order(model, 1) == [a.pk]
    # A job started long ago that still runs counts: A's running one against none of B's (its one ran long ago), so B
    # goes next (without the running job A would win the tie on its lower id).
    Job.objects.filter(partner=a, status="running").update(started_at=long_ago)
    Job.objects.filter(partner=b, status="succeeded").update(started_at=long_ago)
    assert _claim_order(model, 1) == [b.pk]


def _messages_waiting(queue: str) -> int:
    with app.connection_for_read() as conn:  # declared as a worker declares it: idempotent, counts what waits
        return conn.default_channel.queue_declare(queue=queue).message_count


def test_a_delivery_that_finds_only_capped_partners_puts_its_token_back(settings):
    settings.ALLIANCE_PARTNER_MAX_RUNNING = 1
    settings.ALLIANCE_PARTNER_CAP_WAIT_SECONDS = 0.1
    _, api = _partner_api("Capped Co")
    ids = _submit(api, 2)
    job = Job.objects.get(pk=ids[0])
    assert jobs_claim_fair(model=job.model, token=uuid.uuid4(), limit=1).claimed == 1
    queue = dispatch.model_queue(job.queue, job.model)
    before = _messages_waiting(queue)
    assert services.job_execute(ids[1]) == []
    assert Job.objects.get(pk=ids[1]).status == "queued"
    assert _messages_waiting(queue) == before + 1
