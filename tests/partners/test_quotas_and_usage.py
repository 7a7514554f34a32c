from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from inference.models import Job
from partners.models import QuotaPeriod, UsageRecord
from partners.services import month_start, quota_set, usage_refund
from tests.factories import KEYWORD_TEXT, keyword_job

pytestmark = pytest.mark.django_db

UNITS = -(-len(KEYWORD_TEXT) // 4)


def test_each_job_is_charged_once_and_headers_report_the_units(api, partner):
    quota_set(partner=partner, capability="keyword_extraction", monthly_units=UNITS * 3, rpm=100, actor="test")
    response = api.post("/api/v1/jobs", keyword_job(), format="json")
    assert response.status_code == 202
    assert response.json()["usage"] == {"units": UNITS}
    assert response["x-ratelimit-limit-units"] == str(UNITS * 3)
    assert response["x-ratelimit-remaining-units"] == str(UNITS * 2)
    assert response["x-ratelimit-limit-requests"] == "100"
    assert response["x-ratelimit-remaining-requests"] == "99"
    assert response["x-ratelimit-reset-requests"].endswith("s")
    assert UsageRecord.objects.filter(partner=partner, kind="charge").count() == 1
    assert QuotaPeriod.objects.get(quota__partner=partner).used == UNITS


def test_over_quota_answers_429_with_retry_after_and_stores_nothing(api, partner):
    quota_set(partner=partner, capability="keyword_extraction", monthly_units=UNITS + 1, rpm=100, actor="test")
    assert api.post("/api/v1/jobs", keyword_job(), format="json").status_code == 202
    response = api.post("/api/v1/jobs", keyword_job(), format="json")
    assert response.status_code == 429
    assert response.json()["error"] == {
        "type": "rate_limit_error",
        "code": "quota_exceeded",
        "message": response.json()["error"]["message"],
        "param": None,
    }
    assert "exhausted" in response.json()["error"]["message"]
    assert int(response["Retry-After"]) > 0
    assert Job.objects.filter(partner=partner).count() == 1
    assert UsageRecord.objects.filter(partner=partner).count() == 1
    assert QuotaPeriod.objects.get(quota__partner=partner).used == UNITS


def test_requests_per_minute_per_key(api, partner):
    quota_set(partner=partner, capability="keyword_extraction", rpm=2, actor="test")
    codes = [api.post("/api/v1/jobs", keyword_job(), format="json").status_code for _ in range(3)]
    assert codes == [202, 202, 429]
    response = api.post("/api/v1/jobs", keyword_job(), format="json")
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert response["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(response["Retry-After"]) <= 61
    assert Job.objects.filter(partner=partner).count() == 2


def test_every_api_answer_carries_the_ratelimit_headers(api):
    for url in ("/api/v1/jobs", "/api/v1/usage", "/api/v1/me", "/api/v1/capabilities"):
        response = api.get(url)
        assert response.status_code == 200, url
        for name in ("requests", "units"):
            for part in ("limit", "remaining", "reset"):
                assert response[f"x-ratelimit-{part}-{name}"], (url, part, name)


def test_bad_input_is_never_charged(api, partner):
    response = api.post("/api/v1/jobs", {"capability": "keyword_extraction", "input": {"text": ""}}, format="json")
    assert response.status_code == 400
    assert not UsageRecord.objects.exists()
    assert not QuotaPeriod.objects.filter(used__gt=0).exists()


def test_refund_happens_once(api, partner):
    job_id = api.post("/api/v1/jobs", keyword_job(), format="json").json()["id"]
    assert usage_refund(job_id=job_id) is True
    assert usage_refund(job_id=job_id) is False
    assert QuotaPeriod.objects.get(quota__partner=partner).used == 0
    assert UsageRecord.objects.filter(job_id=job_id, kind="refund").count() == 1


def test_usage_reports_net_units_per_capability_and_day(api, partner):
    first = api.post("/api/v1/jobs", keyword_job(), format="json").json()["id"]
    api.post("/api/v1/jobs", keyword_job("A second text about tuning adapters."), format="json")
    usage_refund(job_id=first)
    yesterday = timezone.now() - dt.timedelta(days=1)
    UsageRecord.objects.create(
        partner=partner,
        capability="summarization",
        job_id="00000000-0000-0000-0000-000000000001",
        kind="charge",
        units=7,
        month=month_start(yesterday),
    )
    UsageRecord.objects.filter(capability="summarization").update(created_at=yesterday)
    start = (yesterday.date() - dt.timedelta(days=1)).isoformat()
    body = api.get(f"/api/v1/usage?start={start}").json()
    by_capability = {(row["date"], row["capability"]): row for row in body["data"]}
    today_row = by_capability[(timezone.now().date().isoformat(), "keyword_extraction")]
    assert today_row["units"] == -(-len("A second text about tuning adapters.") // 4)
    assert today_row["refunded_units"] == UNITS
    assert today_row["jobs"] == 1
    assert by_capability[(yesterday.date().isoformat(), "summarization")]["units"] == 7
    assert body["total_units"] == today_row["units"] + 7
    only = api.get(f"/api/v1/usage?start={start}&capability=summarization").json()
    assert [row["capability"] for row in only["data"]] == ["summarization"]


def test_usage_of_another_partner_is_not_visible(api, other_partner):
    from tests.factories import client_for, make_key

    _, raw = make_key(other_partner)
    client_for(raw).post("/api/v1/jobs", keyword_job(), format="json")
    assert api.get("/api/v1/usage").json()["data"] == []


def test_usage_range_is_validated(api):
    response = api.get("/api/v1/usage?start=2026-05-01&end=2026-04-01")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "end"
    response = api.get("/api/v1/usage?start=yesterday")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "start"
