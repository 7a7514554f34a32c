"""schemathesis over /api/schema/: generated requests to every operation, in process, with a partner's key.

No operation may answer with a server error, and every answer must match the schema (status code, content
type and body)."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis import checks

from partners.services import quota_set
from tests.factories import make_key, make_partner

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture
def auth_headers(db) -> dict[str, str]:
    partner = make_partner("Schema Fuzzing Partner")
    for capability in ("keyword_extraction", "text_classification", "embeddings", "dialogue"):
        quota_set(partner=partner, capability=capability, rpm=100_000, actor="test")
    _, raw = make_key(partner)
    return {"Authorization": f"Bearer {raw}"}


STATUSES_SEEN: dict[str, set[int]] = {}


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """As Django's test client does: a request must not close the connection that holds the test transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error_and_answers_match_the_schema(case, auth_headers, django_db_blocker):
    with django_db_blocker.unblock():
        response = case.call_and_validate(headers=auth_headers, checks=CHECKS)
    STATUSES_SEEN.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)


def test_the_fuzzing_reached_past_authentication():
    """Guards the test above: most operations must have answered 2xx to some generated request."""
    assert len(STATUSES_SEEN) >= 30
    succeeded = [operation for operation, codes in STATUSES_SEEN.items() if any(200 <= c < 300 for c in codes)]
    assert len(succeeded) >= 12, STATUSES_SEEN
