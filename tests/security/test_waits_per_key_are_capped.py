"""A key holds at most ALLIANCE_API_KEY_MAX_WAITING requests waiting on jobs (`?wait` on POST /api/v1/jobs and the
synchronous /v1 calls), counted in Redis across web processes: real concurrent requests to the web server. A refused
request answers 429 `too_many_waiting` at once and leaves no job; every slot is given back however the wait ends.
The embedded mode (no Redis) counts in the process."""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import override_settings

from alliance.errors import LimitReached
from inference.models import Job
from partners import ratelimit
from tests.factories import keyword_job, make_key, make_partner
from tests.integration.processes import start_web
from tests.services import skip_or_fail_without_services

pytestmark = pytest.mark.services

WAIT_SECONDS = 5


@pytest.fixture
def web(transactional_db, tmp_path):
    skip_or_fail_without_services()
    server, port = start_web(
        tmp_path, workers=2, ALLIANCE_API_KEY_MAX_WAITING="2", ALLIANCE_JOB_MAX_WAIT_SECONDS=str(WAIT_SECONDS)
    )
    warm_up(port)
    yield port
    server.stop()


def warm_up(port: int) -> None:
    """Every worker process loads the site once before the timed requests."""

    def get(_: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/api/v1/capabilities")
        conn.getresponse().read()
        conn.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(get, range(16)))


def post(port: int, raw_key: str, path: str, body: dict) -> tuple[int, dict, float]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {raw_key}", "Content-Type": "application/json"}
    conn.request("POST", path, json.dumps(body), headers)
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    return response.status, payload, time.monotonic() - started


def test_waiting_requests_past_the_cap_are_refused_at_once_across_web_processes(web):
    partner = make_partner("LG Electronics", sector="manufacturing")
    key, raw = make_key(partner)
    # No worker runs: every job stays queued, so each waiting request holds its slot for the whole wait.
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: post(web, raw, f"/api/v1/jobs?wait={WAIT_SECONDS}", keyword_job()), range(6)))
    waited = [r for r in results if r[0] == 202]
    refused = [r for r in results if r[0] == 429]
    assert len(waited) == 2 and len(refused) == 4, [r[0] for r in results]
    assert all(r[2] >= WAIT_SECONDS - 0.5 for r in waited)
    assert {r[1]["error"]["code"] for r in refused} == {"too_many_waiting"}
    assert all(r[2] < WAIT_SECONDS - 1 for r in refused), [round(r[2], 2) for r in results]
    assert "2 requests waiting" in refused[0][1]["error"]["message"]
    assert Job.objects.filter(partner=partner).count() == 2  # a refused request left no job and no charge
    assert ratelimit.waiting_count(key.public_id) == 0  # every slot was given back

    # A request without `wait` takes no slot; a key's cap does not hold another key.
    assert post(web, raw, "/api/v1/jobs", keyword_job())[0] == 202
    _, other_raw = make_key(partner)
    with ThreadPoolExecutor(max_workers=3) as pool:
        mixed = list(
            pool.map(lambda raw_key: post(web, raw_key, "/api/v1/jobs?wait=2", keyword_job())[0], [raw, raw, other_raw])
        )
    assert sorted(mixed) == [202, 202, 202]


def test_synchronous_v1_calls_share_the_cap_and_give_their_slot_back_on_timeout(web):
    partner = make_partner("LG CNS", sector="it")
    key, raw = make_key(partner)
    body = {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "Hello"}]}
    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(lambda _: post(web, raw, "/v1/chat/completions", body), range(5)))
    codes = sorted(r[0] for r in results)
    assert codes == [429, 429, 429, 504, 504], codes  # two waited out the limit (no worker), three were refused
    assert {r[1]["error"]["code"] for r in results if r[0] == 429} == {"too_many_waiting"}
    assert ratelimit.waiting_count(key.public_id) == 0
    assert post(web, raw, f"/api/v1/jobs?wait={WAIT_SECONDS}", keyword_job())[0] == 202  # slots free again


def test_the_embedded_mode_counts_waits_in_the_process_and_frees_a_slot_when_the_wait_fails():
    with override_settings(REDIS_URL=""):
        ratelimit._waits.cache_clear()
        try:
            entered, release = threading.Barrier(3), threading.Event()

            def hold() -> None:
                with ratelimit.waiting(key_id="k1", limit=2, hold_seconds=30):
                    entered.wait()
                    release.wait()

            holders = [threading.Thread(target=hold) for _ in range(2)]
            for thread in holders:
                thread.start()
            entered.wait()
            assert ratelimit.waiting_count("k1") == 2
            with pytest.raises(LimitReached) as refused, ratelimit.waiting(key_id="k1", limit=2, hold_seconds=30):
                pass
            assert refused.value.code == "too_many_waiting"
            with ratelimit.waiting(key_id="k2", limit=2, hold_seconds=30):  # another key has its own slots
                assert ratelimit.waiting_count("k2") == 1
            release.set()
            for thread in holders:
                thread.join()
            with pytest.raises(RuntimeError), ratelimit.waiting(key_id="k1", limit=2, hold_seconds=30):
                raise RuntimeError("the wait failed")
            assert ratelimit.waiting_count("k1") == 0
        finally:
            ratelimit._waits.cache_clear()


@pytest.mark.django_db
def test_a_slot_whose_process_died_is_freed_at_its_expiry():
    skip_or_fail_without_services()
    ratelimit._waits.cache_clear()
    waits = ratelimit._waits()
    assert waits.acquire("dead-key", 1, hold_seconds=0.5) is not None  # taken, never released: the process died
    assert waits.acquire("dead-key", 1, hold_seconds=0.5) is None
    time.sleep(0.7)
    token = waits.acquire("dead-key", 1, hold_seconds=0.5)
    assert token is not None
    waits.release("dead-key", token)
    assert ratelimit.waiting_count("dead-key") == 0
