"""The portal with Django's test client: roles enforced on the server, CSRF, and other partners' data as 404."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from capabilities import CAPABILITY_NAMES
from inference.images import store_file
from inference.models import Job
from partners.models import ApiKey, AuditEvent, Membership
from tests.factories import make_key
from tests.web.conftest import PASSWORD, make_member, signed_in

pytestmark = pytest.mark.django_db


def _job(partner, **fields) -> Job:
    defaults = {
        "capability": "keyword_extraction",
        "model": "all-MiniLM-L6-v2",
        "queue": "embeddings",
        "input": {"text": "x", "top_k": 1},
        "status": "succeeded",
        "output": {"keywords": []},
    }
    return Job.objects.create(partner=partner, **{**defaults, **fields})


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/portal/keys/")
    assert response.status_code == 302 and response["Location"].startswith("/portal/login/?next=/portal/keys/")


def test_sign_in_with_the_form_lands_on_the_overview(owner):
    client = Client()
    response = client.post("/portal/login/", {"username": "olivia", "password": PASSWORD}, follow=True)
    assert response.status_code == 200
    assert owner.partner.name in response.content.decode()
    assert response.redirect_chain[-1][0] == "/portal/"


def test_a_user_without_a_partner_is_told_so(db, django_user_model):
    user = django_user_model.objects.create_user(username="lonely", password=PASSWORD)
    client = Client()
    client.force_login(user)
    response = client.get("/portal/")
    assert response.status_code == 403 and "do not belong to any partner" in response.content.decode()


def test_a_developer_issues_a_key_and_sees_it_once(developer):
    client = signed_in(developer)
    response = client.post(
        "/portal/keys/issue/", {"name": "chatbot", "scopes": ["dialogue", "summarization"], "expires_in_days": "30"}
    )
    assert response.status_code == 201
    assert response["Cache-Control"].startswith("no-store") or "no-store" in response["Cache-Control"]
    raw = re.search(r'data-testid="raw-key">([^<]+)<', response.content.decode()).group(1)
    key = ApiKey.objects.get(name="chatbot")
    assert key.scopes == ["dialogue", "summarization"] and key.expires_at is not None
    assert key.created_by == developer.user
    assert AuditEvent.objects.filter(action="api_key.issued", actor="user:devon", target=key.public_id).exists()
    again = client.get("/portal/keys/").content.decode()
    assert key.public_id in again and raw not in again
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/me").json()["key"]["id"] == key.public_id


def test_a_viewer_sees_keys_but_cannot_issue_rotate_or_revoke(viewer, partner):
    key, _ = make_key(partner)
    client = signed_in(viewer)
    page = client.get("/portal/keys/")
    assert page.status_code == 200 and "Issue key" not in page.content.decode()
    assert client.post("/portal/keys/issue/", {"name": "sneaky"}).status_code == 403
    assert client.post(f"/portal/keys/{key.public_id}/rotate/").status_code == 403
    assert client.post(f"/portal/keys/{key.public_id}/revoke/").status_code == 403
    assert not ApiKey.objects.filter(name="sneaky").exists()
    key.refresh_from_db()
    assert key.revoked_at is None and key.credentials.count() == 1


def test_rotate_shows_the_new_secret_once_and_revoke_is_final(developer, partner):
    key, old_raw = make_key(partner, created_by=developer.user)  # a developer changes only the keys they created
    client = signed_in(developer)
    response = client.post(f"/portal/keys/{key.public_id}/rotate/", {"grace_hours": "2"})
    assert response.status_code == 200
    new_raw = re.search(r'data-testid="raw-key">([^<]+)<', response.content.decode()).group(1)
    assert new_raw != old_raw and key.credentials.count() == 2
    assert client.post(f"/portal/keys/{key.public_id}/revoke/").status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert Client(HTTP_AUTHORIZATION=f"Bearer {new_raw}").get("/api/v1/me").status_code == 401


def test_forms_refuse_a_post_without_the_csrf_token(developer):
    client = signed_in(developer, enforce_csrf=True)
    assert client.post("/portal/keys/issue/", {"name": "no token"}).status_code == 403
    assert not ApiKey.objects.filter(name="no token").exists()
    page = client.get("/portal/keys/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    assert client.post("/portal/keys/issue/", {"name": "with token", "csrfmiddlewaretoken": token}).status_code == 201


def test_the_playground_endpoint_needs_the_csrf_token_too(developer):
    client = signed_in(developer, enforce_csrf=True)
    response = client.post("/playground/jobs", {"capability": "keyword_extraction", "input": "{}"})
    assert response.status_code == 403
    assert not Job.objects.exists()


def test_another_partners_keys_jobs_and_files_are_not_found(owner, other_partner):
    key, _ = make_key(other_partner)
    job = _job(other_partner)
    stored = store_file(
        partner=other_partner,
        data=b"\x89PNG fake",
        filename="x.png",
        content_type="image/png",
        purpose="generated",
        job=job,
    )
    client = signed_in(owner)
    assert client.post(f"/portal/keys/{key.public_id}/revoke/").status_code == 404
    assert client.post(f"/portal/keys/{key.public_id}/rotate/").status_code == 404
    assert client.get(f"/portal/jobs/{job.pk}/").status_code == 404
    assert client.get("/portal/jobs/not-a-uuid/").status_code == 404
    assert client.get(f"/portal/files/{stored.public_id}").status_code == 404
    assert client.get(f"/playground/jobs/{job.pk}").status_code == 404
    assert str(job.pk) not in client.get("/portal/jobs/").content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None


def test_members_of_the_partner_get_its_files_and_anonymous_visitors_do_not(viewer, partner):
    job = _job(partner, capability="image_generation", output={"image": {"file_id": "pending"}})
    stored = store_file(
        partner=partner,
        data=b"\x89PNG bytes",
        filename="pattern.png",
        content_type="image/png",
        purpose="generated",
        job=job,
    )
    response = signed_in(viewer).get(f"/portal/files/{stored.public_id}")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"\x89PNG bytes"
    assert response["Content-Type"] == "image/png"
    assert Client().get(f"/portal/files/{stored.public_id}").status_code == 404


def test_jobs_list_filters_and_detail_shows_input_and_output(viewer, partner):
    done = _job(partner, output={"keywords": [{"keyword": "fashion patterns", "score": 0.7}]})
    failed = _job(
        partner,
        capability="summarization",
        status="failed",
        output=None,
        error={"code": "model_error", "message": "boom"},
    )
    client = signed_in(viewer)
    listing = client.get("/portal/jobs/", {"status": "failed"}).content.decode()
    assert str(failed.pk)[-12:] in listing and str(done.pk)[-12:] not in listing  # the random end of a v7 id
    detail = client.get(f"/portal/jobs/{done.pk}/").content.decode()
    assert "fashion patterns" in detail
    assert "boom" in client.get(f"/portal/jobs/{failed.pk}/").content.decode()


def test_usage_page_shows_quotas_and_a_chart(viewer):
    page = signed_in(viewer).get("/portal/usage/").content.decode()
    assert "<svg" in page and 'data-testid="quota-table"' in page
    assert page.count('muted">(default)<') == len(CAPABILITY_NAMES)


def test_an_admin_invites_and_changes_roles(partner, other_partner, mailoutbox):
    admin = make_member(partner, "admin", "ada")
    existing = make_member(other_partner, "viewer", "eve")
    client = signed_in(admin)
    response = client.post("/portal/members/invite/", {"email": existing.user.email, "role": "developer"})
    assert response.status_code == 302 and mailoutbox[0].to == [existing.user.email]
    assert not Membership.objects.filter(partner=partner, user=existing.user).exists()  # invited, not added
    link = re.search(r"/portal/invitations/[^/\s]+/", mailoutbox[0].body).group(0)
    assert signed_in(existing).post(link + "accept/").status_code == 302
    newbie = Membership.objects.get(partner=partner, user=existing.user)
    assert newbie.role == "developer"
    assert client.post(f"/portal/members/{newbie.pk}/role/", {"role": "admin"}).status_code == 302
    newbie.refresh_from_db()
    assert newbie.role == "admin"
    # an admin cannot make anyone an owner
    client.post(f"/portal/members/{newbie.pk}/role/", {"role": "owner"})
    newbie.refresh_from_db()
    assert newbie.role == "admin"
    assert client.post(f"/portal/members/{newbie.pk}/remove/").status_code == 302
    assert not Membership.objects.filter(pk=newbie.pk).exists()
    actions = set(AuditEvent.objects.filter(partner=partner).values_list("action", flat=True))
    assert {"invitation.created", "membership.added", "membership.role_changed", "membership.removed"} <= actions
    assert "membership.removed" in client.get("/portal/audit/").content.decode()


def test_developers_cannot_manage_members_or_read_the_audit_log(developer, viewer):
    client = signed_in(developer)
    assert client.post("/portal/members/invite/", {"email": "x@example.com", "role": "viewer"}).status_code == 403
    assert client.post(f"/portal/members/{viewer.pk}/role/", {"role": "admin"}).status_code == 403
    assert client.post(f"/portal/members/{viewer.pk}/remove/").status_code == 403
    assert client.get("/portal/audit/").status_code == 403


def test_the_last_owner_stays_and_other_partners_members_are_not_found(owner, other_partner):
    stranger = make_member(other_partner, "viewer", "stan")
    client = signed_in(owner)
    client.post(f"/portal/members/{owner.pk}/role/", {"role": "viewer"})
    owner.refresh_from_db()
    assert owner.role == "owner"
    client.post(f"/portal/members/{owner.pk}/remove/")
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert client.post(f"/portal/members/{stranger.pk}/remove/").status_code == 404
    assert client.post(f"/portal/members/{stranger.pk}/role/", {"role": "admin"}).status_code == 404


def test_a_member_of_two_partners_switches_between_them(partner, other_partner):
    first = make_member(partner, "viewer", "sam")
    Membership.objects.create(partner=other_partner, user=first.user, role="owner")
    client = signed_in(first)
    assert other_partner.name in client.get("/portal/").content.decode()  # the first by name: LG Chem
    assert client.post("/portal/keys/issue/", {"name": "k"}).status_code == 201  # owner at LG Chem
    assert ApiKey.objects.get(name="k").partner == other_partner
    response = client.post("/portal/switch/", {"partner": partner.slug, "next": "/portal/keys/"})
    assert response.status_code == 302 and response["Location"] == "/portal/keys/"
    assert client.post("/portal/keys/issue/", {"name": "k2"}).status_code == 403  # viewer at Woori Bank
    assert client.post("/portal/switch/", {"partner": "google"}).status_code == 404
    evil = client.post("/portal/switch/", {"partner": other_partner.slug, "next": "https://evil.example/"})
    assert evil["Location"] == "/portal/"
