from __future__ import annotations

import pytest
from django.conf import settings

from tests.factories import client_for, make_key, make_partner


@pytest.fixture(scope="session", autouse=True)
def _clean_redis() -> None:
    """Each run starts from an empty Redis database: no stale rate-limit windows or queued messages."""
    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture
def partner(db):
    return make_partner("Woori Bank", sector="finance")


@pytest.fixture
def other_partner(db):
    return make_partner("LG Chem", sector="manufacturing")


@pytest.fixture
def key_and_raw(partner):
    return make_key(partner)


@pytest.fixture
def api(key_and_raw):
    return client_for(key_and_raw[1])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ALLIANCE_REQUIRE_SERVICES=1 (CI), a skipped test fails the run."""
    from tests.services import require_services

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if require_services() and skipped and session.exitstatus == 0:
        reporter.write_line(f"{len(skipped)} test(s) skipped while every service is required: failing the run.")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> None:
    """Rows roll back between tests and their ids come back: forget per-process caches of them."""
    from partners import services

    services._quota_cache.clear()
