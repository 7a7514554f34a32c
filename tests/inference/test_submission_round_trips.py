"""A submission is one statement on PostgreSQL: the quota's conditional UPDATE, the job's INSERT and its ledger row
together (partners.services.usage.usage_charge_inserting), with the key authenticated from the process's copy."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inference.models import Job
from inference.representations import timestamp
from partners.models import QuotaPeriod, UsageRecord
from partners.services import quota_set
from tests.factories import client_for, keyword_job, make_key, make_partner
from tests.services import skip_or_fail_without_services

pytestmark = pytest.mark.services


@pytest.fixture(autouse=True)
def _postgresql() -> None:
    skip_or_fail_without_services()  # the one statement is PostgreSQL's


TEXT_OF_10_UNITS = "a forty character text for quota tests.."


def test_a_submission_is_one_sql_statement(transactional_db):
    partner = make_partner("Woori Bank", sector="finance")
    _, raw = make_key(partner)
    api = client_for(raw)
    assert api.post("/api/v1/jobs", keyword_job(), format="json").status_code == 202  # the month's row, the copy
    with CaptureQueriesContext(connection) as queries:
        response = api.post("/api/v1/jobs", keyword_job(), format="json")
    assert response.status_code == 202
    assert len(queries.captured_queries) == 1, [query["sql"][:120] for query in queries.captured_queries]
    assert queries.captured_queries[0]["sql"].startswith("WITH charged AS (UPDATE")
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == "queued" and job.api_key.partner == partner
    assert timestamp(job.created_at) == response.json()["created_at"]  # the row holds what the answer shows
    charges = UsageRecord.objects.filter(job_id=job.pk)
    assert [(c.kind, c.units, c.api_key_id) for c in charges] == [("charge", job.units, job.api_key_id)]
    assert QuotaPeriod.objects.get(quota__partner=partner).used == 2 * job.units


def test_past_the_quota_the_statement_writes_nothing(transactional_db):
    partner = make_partner("EBS", sector="education")
    _, raw = make_key(partner)
    quota_set(partner=partner, capability="keyword_extraction", monthly_units=25, actor="test")
    api = client_for(raw)
    codes = [api.post("/api/v1/jobs", keyword_job(TEXT_OF_10_UNITS), format="json").status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    assert Job.objects.filter(partner=partner).count() == 2
    assert UsageRecord.objects.filter(partner=partner).count() == 2
    assert QuotaPeriod.objects.get(quota__partner=partner).used == 20


def test_a_reused_idempotency_key_charges_once_and_answers_the_first_job(transactional_db):
    partner = make_partner("LG Chem", sector="manufacturing")
    _, raw = make_key(partner)
    api = client_for(raw)
    first = api.post("/api/v1/jobs", keyword_job(), format="json", HTTP_IDEMPOTENCY_KEY="order-7").json()
    again = api.post("/api/v1/jobs", keyword_job(), format="json", HTTP_IDEMPOTENCY_KEY="order-7").json()
    assert again["id"] == first["id"]
    assert UsageRecord.objects.filter(partner=partner).count() == 1
    assert QuotaPeriod.objects.get(quota__partner=partner).used == first["usage"]["units"]
