from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from partners import keys
from partners.models import ApiKey, ApiKeyCredential, AuditEvent
from partners.services import api_key_authenticate, api_key_revoke, api_key_rotate, partner_set_active
from tests.factories import client_for, keyword_job, make_key

pytestmark = pytest.mark.django_db


def test_only_a_sha512_hash_of_the_secret_is_stored(partner):
    api_key, raw = make_key(partner)
    material = keys.parse_raw_key(raw)
    credential = ApiKeyCredential.objects.get(api_key=api_key)
    assert credential.prefix == material.prefix
    assert credential.hashed_secret == keys.hash_secret(material.secret)
    assert len(credential.hashed_secret) == 128
    stored = [str(value) for row in ApiKeyCredential.objects.values() for value in row.values()]
    stored += [str(value) for row in ApiKey.objects.values() for value in row.values()]
    stored += [str(row) for row in AuditEvent.objects.values_list("data", flat=True)]
    assert not any(material.secret in value for value in stored)


def test_authenticate_accepts_the_raw_key_and_refuses_a_wrong_secret(partner):
    api_key, raw = make_key(partner)
    assert api_key_authenticate(raw) == api_key
    tampered = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    assert api_key_authenticate(tampered) is None
    assert api_key_authenticate("alk_short_secret") is None
    assert api_key_authenticate("not a key") is None


def test_revoked_expired_and_inactive_partner_keys_stop_working(partner):
    revoked, revoked_raw = make_key(partner)
    api_key_revoke(api_key=revoked, actor="test")
    expired, expired_raw = make_key(partner, expires_at=timezone.now() + dt.timedelta(seconds=60))
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    live, live_raw = make_key(partner)
    assert api_key_authenticate(revoked_raw) is None
    assert api_key_authenticate(expired_raw) is None
    assert api_key_authenticate(live_raw) == live
    partner_set_active(partner=partner, is_active=False, actor="test")
    assert api_key_authenticate(live_raw) is None


def test_revoked_key_answers_401_in_the_error_shape(partner):
    api_key, raw = make_key(partner)
    api_key_revoke(api_key=api_key, actor="test")
    response = client_for(raw).get("/api/v1/jobs")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_missing_authorization_answers_401(client):
    response = client.get("/api/v1/jobs")
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"type", "code", "message", "param"}


def test_rotation_keeps_the_key_id_and_the_old_secret_for_the_grace_period(partner):
    api_key, old_raw = make_key(partner)
    new_raw = api_key_rotate(api_key=api_key, actor="test", grace_seconds=3600)
    assert new_raw != old_raw
    assert api_key_authenticate(old_raw).public_id == api_key.public_id
    assert api_key_authenticate(new_raw).public_id == api_key.public_id
    newest = api_key_rotate(api_key=api_key, actor="test", grace_seconds=0)
    assert api_key_authenticate(old_raw) is None
    assert api_key_authenticate(new_raw) is None
    assert api_key_authenticate(newest).public_id == api_key.public_id
    assert list(AuditEvent.objects.filter(target=api_key.public_id).values_list("action", flat=True)) == [
        "api_key.rotated",
        "api_key.rotated",
        "api_key.issued",
    ]


def test_last_used_is_written_at_most_once_a_minute(partner):
    api_key, raw = make_key(partner)
    assert api_key.last_used_at is None
    api_key_authenticate(raw)
    first = ApiKey.objects.get(pk=api_key.pk).last_used_at
    assert first is not None
    api_key_authenticate(raw)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == first
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=first - dt.timedelta(minutes=2))
    api_key_authenticate(raw)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at > first - dt.timedelta(minutes=1)


def test_scopes_limit_the_capabilities_a_key_may_call(partner):
    _, raw = make_key(partner, scopes=["summarization"])
    response = client_for(raw).post("/api/v1/jobs", keyword_job(), format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


def test_unknown_scope_is_refused(partner):
    from alliance.errors import InvalidInput

    with pytest.raises(InvalidInput, match="Unknown scope: mind_reading") as refused:
        make_key(partner, scopes=["mind_reading"])
    assert (refused.value.code, refused.value.param) == ("unknown_scope", "scopes")


def test_issue_api_key_command_prints_the_raw_key_alone(partner):
    out = io.StringIO()
    call_command(
        "issue_api_key",
        partner.slug,
        "--name",
        "ci",
        "--scopes",
        "keyword_extraction",
        "--expires-in-days",
        "30",
        stdout=out,
    )
    raw = out.getvalue().strip()
    assert "\n" not in raw
    api_key = api_key_authenticate(raw)
    assert api_key is not None and api_key.name == "ci" and api_key.scopes == ["keyword_extraction"]
    assert dt.timedelta(days=29) < api_key.expires_at - timezone.now() <= dt.timedelta(days=30)


def test_brute_force_from_one_address_is_slowed(partner, settings):
    settings.ALLIANCE_AUTH_FAILURES_PER_MINUTE = 3
    client = client_for("alk_aaaaaaaaaaaa_wrong-secret")
    codes = [client.get("/api/v1/jobs", REMOTE_ADDR="203.0.113.9").status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    response = client.get("/api/v1/jobs", REMOTE_ADDR="203.0.113.9")
    assert int(response["Retry-After"]) >= 1
    _, raw = make_key(partner)
    assert client_for(raw).get("/api/v1/jobs", REMOTE_ADDR="203.0.113.9").status_code == 200


def test_no_key_reaches_any_log(partner, caplog):
    caplog.set_level("DEBUG")
    api_key, raw = make_key(partner)
    secret = keys.parse_raw_key(raw).secret
    client_for(raw).post("/api/v1/jobs", keyword_job(), format="json")
    client_for(raw[:-2] + "xx").get("/api/v1/jobs")
    client_for(raw).get("/api/v1/jobs/not-a-job")
    api_key_rotate(api_key=api_key, actor="test")
    assert caplog.records, "nothing was logged: the check would be empty"
    assert secret not in caplog.text and secret[:-2] not in caplog.text
