"""The process's copies of authenticated keys (partners.auth_cache): used while nothing changed, dropped at once by
a revocation, a rotation, a partner's deactivation or a webhook secret's rotation, in this process and in any other
(the generation they share)."""

from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inference.webhook_security import webhook_secret_rotate
from partners import auth_cache
from partners.models import ApiKey, ApiKeyCredential, Partner
from partners.services import api_key_authenticate_cached, api_key_revoke, api_key_rotate, partner_set_active
from tests.factories import client_for, make_key, make_partner
from tests.services import skip_or_fail_without_services


def _queries(call) -> int:
    with CaptureQueriesContext(connection) as queries:
        call()
    return len(queries.captured_queries)


def _revoked_key_is_refused_on_its_next_request() -> None:
    api_key, raw = make_key(make_partner("Woori Bank", sector="finance"))
    api = client_for(raw)
    assert api.get("/api/v1/jobs").status_code == 200
    assert _queries(lambda: api_key_authenticate_cached(raw)) == 0  # from the copy
    api_key_revoke(api_key=api_key, actor="test")
    response = api.get("/api/v1/jobs")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_a_revoked_key_is_refused_on_its_next_request(transactional_db):
    _revoked_key_is_refused_on_its_next_request()


def test_a_revocation_inside_a_transaction_is_seen_by_its_own_requests(db):
    _revoked_key_is_refused_on_its_next_request()


def test_rotation_without_grace_refuses_the_old_secret_at_once(transactional_db):
    api_key, old_raw = make_key(make_partner())
    assert client_for(old_raw).get("/api/v1/jobs").status_code == 200
    new_raw = api_key_rotate(api_key=api_key, actor="test", grace_seconds=0)
    assert client_for(old_raw).get("/api/v1/jobs").status_code == 401
    assert client_for(new_raw).get("/api/v1/jobs").status_code == 200


def test_a_deactivated_partners_keys_are_refused_at_once(transactional_db):
    partner = make_partner()
    _, raw = make_key(partner)
    assert client_for(raw).get("/api/v1/jobs").status_code == 200
    partner_set_active(partner=partner, is_active=False, actor="test")
    assert client_for(raw).get("/api/v1/jobs").status_code == 401


def test_the_partner_a_key_carries_follows_a_webhook_secret_rotation(transactional_db):
    partner = make_partner()
    _, raw = make_key(partner, scopes=["admin"])
    api = client_for(raw)
    before = api.get("/api/v1/me").json()
    secret = webhook_secret_rotate(partner=partner, actor="test")
    after = api.get("/api/v1/me").json()
    shown = [value for value in after.values() if isinstance(value, str) and value.startswith("whsec_")]
    assert shown == [secret] and secret not in before.values()


def test_a_change_in_another_process_drops_this_process_copy(transactional_db):
    """Another web process's revocation reaches this one through the shared generation."""
    skip_or_fail_without_services()  # the generation is shared through Redis
    _, raw = make_key(make_partner())
    assert api_key_authenticate_cached(raw) is not None
    assert _queries(lambda: api_key_authenticate_cached(raw)) == 0
    redis.Redis.from_url(settings.REDIS_URL).incr("alliance:auth:generation")  # what that process's change does
    assert _queries(lambda: api_key_authenticate_cached(raw)) == 1  # looked up again
    assert auth_cache.lookup(raw, 0.0)[0] is not None


def test_a_request_never_changes_the_cached_key(transactional_db):
    partner = make_partner()
    _, raw = make_key(partner)
    first = api_key_authenticate_cached(raw)
    first.partner.name = "changed by a request"
    first.scopes = ["summarization"]
    again = api_key_authenticate_cached(raw)
    assert again.partner.name == partner.name and again.scopes == []


def test_without_redis_keys_are_read_from_the_database_and_revocation_still_works(transactional_db, settings):
    api_key, raw = make_key(make_partner())
    assert api_key_authenticate_cached(raw) is not None  # a copy under the live generation
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: the generation cannot be read
    auth_cache._redis.cache_clear()
    try:
        assert _queries(lambda: api_key_authenticate_cached(raw)) >= 1  # no copy is trusted
        api_key_revoke(api_key=api_key, actor="test")  # the change stands though Redis cannot hear of it
        assert api_key_authenticate_cached(raw) is None
    finally:
        auth_cache._redis.cache_clear()  # the next call connects to the restored REDIS_URL


def test_any_queryset_update_of_a_key_credential_or_partner_drops_the_copies(transactional_db):
    """No service has to remember to invalidate: QuerySet.update() on these models does it (AuthStateQuerySet), except
    for what authorises nothing (a key's last use, written at most once a minute by requests themselves)."""

    partner = make_partner()
    api_key, raw = make_key(partner)
    api_key_authenticate_cached(raw)
    assert _queries(lambda: api_key_authenticate_cached(raw)) == 0
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=api_key.created_at)
    assert _queries(lambda: api_key_authenticate_cached(raw)) == 0  # still the copy
    for update in (
        lambda: ApiKey.objects.filter(pk=api_key.pk).update(scopes=["summarization"]),
        lambda: ApiKeyCredential.objects.filter(api_key=api_key).update(valid_until=None),
        lambda: Partner.objects.filter(pk=partner.pk).update(tier="strategic"),
    ):
        update()
        assert _queries(lambda: api_key_authenticate_cached(raw)) >= 1  # read again
        assert _queries(lambda: api_key_authenticate_cached(raw)) == 0
    assert api_key_authenticate_cached(raw).scopes == ["summarization"]
    assert api_key_authenticate_cached(raw).partner.tier == "strategic"
