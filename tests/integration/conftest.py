from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.integration.processes import PlatformProcess, start_worker
from tests.services import skip_or_fail_without_services


@pytest.fixture
def live_services(transactional_db) -> None:
    """PostgreSQL and Redis, with this test's rows committed so other processes see them."""
    skip_or_fail_without_services()


@pytest.fixture(scope="module")
def shared_worker(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[PlatformProcess]:
    """One plain worker on every queue for a module that needs nothing special of it (the SDK, batches, structured
    output). Module-scoped on purpose: a worker left running into later modules would take their jobs' messages
    from the workers those tests start (and measure)."""
    skip_or_fail_without_services()
    with django_db_blocker.unblock():
        process = start_worker(tmp_path_factory.mktemp("shared-worker"), "w-shared")
    yield process
    process.stop()


def sdk_client(live_server, raw_key: str, timeout: float = 240) -> openai.OpenAI:
    """The official SDK, unchanged but for its base URL and key, pointed at the live server."""
    return openai.OpenAI(api_key=raw_key, base_url=f"{live_server.url}/v1", max_retries=0, timeout=timeout)
