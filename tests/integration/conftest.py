from __future__ import annotations

import pytest

from tests.services import skip_or_fail_without_services


@pytest.fixture
def live_services(transactional_db) -> None:
    """PostgreSQL and Redis, with this test's rows committed so other processes see them."""
    skip_or_fail_without_services()
