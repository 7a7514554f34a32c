"""Quotas under concurrent requests to several web processes on PostgreSQL and Redis."""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from inference.models import Job
from partners.models import QuotaPeriod, UsageRecord
from partners.services import quota_set
from tests.factories import keyword_job, make_key, make_partner
from tests.integration.processes import start_web

pytestmark = pytest.mark.services

TEXT_OF_10_UNITS = "a forty character text for quota tests.."


def _submit(port: int, raw_key: str) -> tuple[int, dict, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps(keyword_job(TEXT_OF_10_UNITS))
    conn.request(
        "POST", "/api/v1/jobs", body, {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"}
    )
    response = conn.getresponse()
    payload = json.loads(response.read())
    headers = {name.lower(): value for name, value in response.getheaders()}
    conn.close()
    return response.status, payload, headers


def _away_from_a_minute_boundary() -> None:
    if time.time() % 60 > 55:
        time.sleep(61 - time.time() % 60)


@pytest.fixture
def web(live_services, tmp_path):
    server, port = start_web(tmp_path, workers=3)
    yield port
    server.stop()


def test_accepted_units_never_exceed_the_monthly_quota(web):
    assert len(TEXT_OF_10_UNITS) == 40
    partner = make_partner("Hanyang University Hospital", sector="medical")
    _, raw = make_key(partner)
    quota_set(partner=partner, capability="keyword_extraction", monthly_units=100, rpm=10_000, actor="test")
    with ThreadPoolExecutor(max_workers=24) as pool:
        results = list(pool.map(lambda _: _submit(web, raw), range(40)))
    accepted = [r for r in results if r[0] == 202]
    refused = [r for r in results if r[0] == 429]
    assert len(accepted) == 10 and len(refused) == 30, [r[0] for r in results]
    assert all(r[1]["error"]["code"] == "quota_exceeded" and int(r[2]["retry-after"]) > 0 for r in refused)
    assert QuotaPeriod.objects.get(quota__partner=partner).used == 100
    assert UsageRecord.objects.filter(partner=partner).count() == 10
    assert Job.objects.filter(partner=partner).count() == 10


def test_requests_per_minute_hold_across_web_processes(web):
    partner = make_partner("EBS", sector="education")
    _, raw = make_key(partner)
    quota_set(partner=partner, capability="keyword_extraction", rpm=5, actor="test")
    _away_from_a_minute_boundary()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: _submit(web, raw), range(20)))
    codes = sorted(r[0] for r in results)
    assert codes == [202] * 5 + [429] * 15
    assert {r[1]["error"]["code"] for r in results if r[0] == 429} == {"rate_limit_exceeded"}
    assert Job.objects.filter(partner=partner).count() == 5
