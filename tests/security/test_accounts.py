"""Accounts people run themselves: a forgotten password is reset by an emailed single-use link (the answer is the
same for an unknown address, and each address is limited); a password is changed knowing the old one; the profile
lists the person's partners and roles, and they leave one, except as its last owner. Real POSTs, real outbox."""

from __future__ import annotations

import random
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from partners.models import AuditEvent, Membership
from tests.factories import make_partner
from tests.web.conftest import PASSWORD, make_member, signed_in

pytestmark = pytest.mark.django_db
RESET_LINK = re.compile(r"http://testserver(/portal/password/reset/[^/\s]+/[^/\s]+/)")
NEW_PASSWORD = "a-brand-new-passphrase-42"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def visitor() -> Client:
    return Client(REMOTE_ADDR=f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}")


def test_a_forgotten_password_is_reset_by_its_single_use_link(partner, mailoutbox):
    member = make_member(partner, "developer", "rosa")
    client = visitor()
    response = client.post("/portal/password/reset/", {"email": member.user.email.upper()})
    assert response.status_code == 302 and response["Location"] == "/portal/password/reset/sent/"
    assert len(mailoutbox) == 1 and mailoutbox[0].to == [member.user.email]
    link = RESET_LINK.search(mailoutbox[0].body).group(1)
    form_page = client.get(link, follow=True)  # Django moves the token into the session, then shows the form
    assert form_page.status_code == 200 and form_page.context["validlink"]
    done = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}, follow=True
    )
    assert done.redirect_chain[-1][0] == "/portal/password/reset/done/"
    member.user.refresh_from_db()
    assert member.user.check_password(NEW_PASSWORD) and not member.user.check_password(PASSWORD)
    again = visitor().get(link, follow=True)
    assert again.status_code == 200 and not again.context["validlink"]  # used once, the link is dead


def test_an_unknown_address_gets_the_same_answer_and_no_email(mailoutbox):
    response = visitor().post("/portal/password/reset/", {"email": "nobody@example.com"})
    assert response.status_code == 302 and response["Location"] == "/portal/password/reset/sent/"
    assert mailoutbox == []


def test_reset_requests_are_limited_per_address(partner, mailoutbox):
    member = make_member(partner, "viewer", "ursula")
    client = visitor()
    statuses = [client.post("/portal/password/reset/", {"email": member.user.email}).status_code for _ in range(6)]
    assert statuses == [302] * 5 + [429]
    assert len(mailoutbox) == 5


def test_the_sign_in_page_links_to_the_reset_and_to_joining():
    page = Client().get("/portal/login/")
    assert b'href="/portal/password/reset/"' in page.content and b'href="/join/"' in page.content


def test_a_password_is_changed_knowing_the_old_one(partner):
    member = make_member(partner, "viewer", "paula")
    client = signed_in(member)
    wrong = client.post(
        "/portal/password/change/",
        {"old_password": "not-it", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert wrong.status_code == 200 and "old_password" in wrong.context["form"].errors
    response = client.post(
        "/portal/password/change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/portal/profile/"
    member.user.refresh_from_db()
    assert member.user.check_password(NEW_PASSWORD)
    assert client.get("/portal/profile/").status_code == 200  # the session survives the change


def test_the_profile_lists_partners_and_roles(partner):
    other = make_partner(name="Second Partner")
    member = make_member(partner, "admin", "nora")
    Membership.objects.create(user=member.user, partner=other, role="viewer")
    page = signed_in(member).get("/portal/profile/")
    rows = [(m.partner.name, m.role) for m in page.context["memberships"]]
    assert sorted(rows) == sorted([(partner.name, "admin"), ("Second Partner", "viewer")])
    assert b"Leave Second Partner" in page.content
    assert Client().get("/portal/profile/")["Location"].startswith("/portal/login/")


def test_a_member_leaves_a_partner_but_not_as_its_last_owner(partner):
    owner = make_member(partner, "owner", "otto")
    developer = make_member(partner, "developer", "dana")
    response = signed_in(developer).post(f"/portal/profile/memberships/{developer.pk}/leave/", follow=True)
    assert "You have left" in " ".join(str(m) for m in response.context["messages"])
    assert not Membership.objects.filter(pk=developer.pk).exists()
    event = AuditEvent.objects.get(action="membership.removed", target="dana")
    assert event.actor == "user:dana"

    client = signed_in(owner)
    refused = client.post(f"/portal/profile/memberships/{owner.pk}/leave/", follow=True)
    assert "last owner" in " ".join(str(m) for m in refused.context["messages"])
    assert Membership.objects.filter(pk=owner.pk).exists()
    second = make_member(partner, "owner", "olga")
    client.post(f"/portal/profile/memberships/{owner.pk}/leave/")
    assert list(Membership.objects.filter(partner=partner).values_list("user__username", flat=True)) == ["olga"]
    assert second.role == "owner"


def test_nobody_leaves_for_someone_else(partner):
    victim = make_member(partner, "developer", "vic")
    intruder = get_user_model().objects.create_user("ivan", "ivan@example.com", PASSWORD)
    client = Client()
    client.force_login(intruder)
    assert client.post(f"/portal/profile/memberships/{victim.pk}/leave/").status_code == 404
    assert Membership.objects.filter(pk=victim.pk).exists()
