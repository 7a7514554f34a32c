"""Invitations instead of silent adds: an admin invites an address, the person behind it accepts or declines through
the emailed link (signing up there when new). Links are single use, expire, can be revoked, and never show a partner
once spent; the admin's answer does not depend on whether an account has the address. Real POSTs, real email outbox."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from partners.models import AuditEvent, Invitation, Membership
from tests.factories import make_partner
from tests.web.conftest import PASSWORD, make_member, signed_in

pytestmark = pytest.mark.django_db
LINK = re.compile(r"http://testserver(/portal/invitations/[A-Za-z0-9_-]+/)")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin(partner):
    return make_member(partner, "admin", "adam")


def _invite(client: Client, email: str, role: str = "viewer") -> list[str]:
    response = client.post("/portal/members/invite/", {"email": email, "role": role}, follow=True)
    assert response.redirect_chain == [("/portal/members/", 302)]
    return [str(m) for m in response.context["messages"]]


def _link(mailoutbox, to: str) -> str:
    message = next(m for m in reversed(mailoutbox) if m.to == [to])
    return LINK.search(message.body).group(1)


def test_a_newcomer_signs_up_through_the_emailed_link_and_joins_with_the_role(partner, admin, mailoutbox):
    answer = _invite(signed_in(admin), "New.Person@Example.com", "developer")
    assert answer == [
        "An invitation to new.person@example.com to join as developer is sent; its link is valid for 7 days."
    ]
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["new.person@example.com"]
    assert "adam" in mailoutbox[0].subject and partner.name in mailoutbox[0].subject
    link = _link(mailoutbox, "new.person@example.com")
    token = link.rstrip("/").rsplit("/", 1)[1]
    invitation = Invitation.objects.get(partner=partner)
    assert token not in invitation.token_hash and len(invitation.token_hash) == 64  # only the hash is kept
    assert dt.timedelta(days=6, hours=23) < invitation.expires_at - timezone.now() <= dt.timedelta(days=7)

    visitor = Client()
    page = visitor.get(link)
    assert page.status_code == 200 and "no-store" in page["Cache-Control"]
    text = page.content.decode()
    assert partner.name in text and "adam" in text and "Developer" in text and "new.person@example.com" in text
    assert "/portal/login/?next=" in text
    weak = visitor.post(link, {"username": "newbie", "password1": "password", "password2": "password"})
    assert weak.status_code == 400 and "too common" in weak.content.decode()
    assert not get_user_model().objects.filter(username="newbie").exists()
    data = {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD, "email": "attacker@example.com"}
    joined = visitor.post(link, data)
    assert joined.status_code == 302 and joined["Location"] == "/portal/"
    user = get_user_model().objects.get(username="newbie")
    assert user.email == "new.person@example.com" and user.check_password(PASSWORD)  # the invited address, fixed
    assert Membership.objects.get(partner=partner, user=user).role == "developer"
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None and invitation.accepted_by == user
    home = visitor.get("/portal/")
    assert home.status_code == 200 and partner.name in home.content.decode()  # signed in, working as the partner
    actions = set(AuditEvent.objects.filter(partner=partner).values_list("action", flat=True))
    assert {"invitation.created", "invitation.signed_up", "invitation.accepted", "membership.added"} <= actions


def test_an_existing_user_signs_in_and_accepts(partner, other_partner, admin, mailoutbox):
    eve = make_member(other_partner, "viewer", "eve")
    _invite(signed_in(admin), eve.user.email, "admin")
    link = _link(mailoutbox, eve.user.email)
    assert not Membership.objects.filter(partner=partner, user=eve.user).exists()  # nobody is added unasked
    anonymous = Client().post(link + "accept/")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/portal/login/?next=")
    client = signed_in(eve)
    assert "Accept and join" in client.get(link).content.decode()
    accepted = client.post(link + "accept/")
    assert accepted.status_code == 302 and accepted["Location"] == "/portal/"
    assert Membership.objects.get(partner=partner, user=eve.user).role == "admin"
    assert partner.name in client.get("/portal/").content.decode()  # now working as the new partner
    event = AuditEvent.objects.get(partner=partner, action="invitation.accepted")
    assert event.actor == "user:eve" and event.data["role"] == "admin"


def test_declining_uses_the_link_up(partner, admin, mailoutbox):
    _invite(signed_in(admin), "maybe@example.com")
    link = _link(mailoutbox, "maybe@example.com")
    declined = Client().post(link + "decline/")
    assert declined.status_code == 200 and "You declined" in declined.content.decode()
    invitation = Invitation.objects.get(email="maybe@example.com")
    assert invitation.declined_at is not None and invitation.accepted_at is None
    assert AuditEvent.objects.get(action="invitation.declined").actor == "invitee:maybe@example.com"
    again = Client().get(link)
    assert again.status_code == 410 and 'data-code="invitation_used"' in again.content.decode()
    assert not Membership.objects.filter(partner=partner, user__email="maybe@example.com").exists()


def test_a_link_works_once(partner, other_partner, admin, mailoutbox):
    _invite(signed_in(admin), "once@example.com", "developer")
    link = _link(mailoutbox, "once@example.com")
    first = Client().post(link, {"username": "first", "password1": PASSWORD, "password2": PASSWORD})
    assert first.status_code == 302
    second_user = make_member(other_partner, "viewer", "second")
    attempts = [
        (Client(), "get", link, None),
        (Client(), "post", link, {"username": "again", "password1": PASSWORD, "password2": PASSWORD}),
        (signed_in(second_user), "post", link + "accept/", None),
        (signed_in(second_user), "post", link + "decline/", None),
    ]
    for client, method, path, data in attempts:
        response = getattr(client, method)(path, data) if data else getattr(client, method)(path)
        page = response.content.decode()
        assert response.status_code == 410, (method, path)
        assert "already been accepted" in page and partner.name not in page  # a spent link shows no partner
    assert not get_user_model().objects.filter(username="again").exists()
    developers = Membership.objects.filter(partner=partner, role="developer").values_list("user__username", flat=True)
    assert list(developers) == ["first"]


def test_an_expired_link_is_refused(partner, admin, mailoutbox, settings):
    settings.ALLIANCE_INVITATION_DAYS = 2
    _invite(signed_in(admin), "late@example.com")
    invitation = Invitation.objects.get(email="late@example.com")
    assert invitation.expires_at - invitation.created_at < dt.timedelta(days=2, minutes=1)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    link = _link(mailoutbox, "late@example.com")
    page = Client().get(link)
    assert page.status_code == 410 and 'data-code="invitation_expired"' in page.content.decode()
    late = make_member(make_partner("Late Co"), "viewer", "late")
    assert signed_in(late).post(link + "accept/").status_code == 410
    assert not Membership.objects.filter(partner=partner, user=late.user).exists()
    assert "late@example.com" not in signed_in(admin).get("/portal/members/").content.decode()  # not pending


def test_an_admin_sees_and_revokes_pending_invitations(partner, admin, mailoutbox):
    client = signed_in(admin)
    _invite(client, "gone@example.com", "developer")
    page = client.get("/portal/members/").content.decode()
    assert 'data-invitation="gone@example.com"' in page and "adam" in page and "Revoke" in page
    invitation = Invitation.objects.get(email="gone@example.com")
    assert client.post(f"/portal/members/invitations/{invitation.pk}/revoke/").status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    event = AuditEvent.objects.get(action="invitation.revoked")
    assert (event.actor, event.target, event.data["reason"]) == ("user:adam", "gone@example.com", "revoked")
    link = _link(mailoutbox, "gone@example.com")
    refused = Client().post(link, {"username": "gone", "password1": PASSWORD, "password2": PASSWORD})
    assert refused.status_code == 410 and 'data-code="invitation_revoked"' in refused.content.decode()
    assert not get_user_model().objects.filter(username="gone").exists()
    assert 'data-invitation="gone@example.com"' not in client.get("/portal/members/").content.decode()
    assert client.post(f"/portal/members/invitations/{invitation.pk}/revoke/").status_code == 404  # not pending


def test_a_new_invitation_to_the_same_address_replaces_the_pending_one(partner, admin, mailoutbox):
    client = signed_in(admin)
    _invite(client, "twice@example.com", "viewer")
    first_link = _link(mailoutbox, "twice@example.com")
    _invite(client, "twice@example.com", "developer")
    assert Client().get(first_link).status_code == 410
    assert Client().get(_link(mailoutbox, "twice@example.com")).status_code == 200
    assert Invitation.objects.filter(email="twice@example.com", revoked_at=None).get().role == "developer"


def test_another_partners_admin_cannot_revoke_it(partner, other_partner, admin):
    _invite(signed_in(admin), "ours@example.com")
    invitation = Invitation.objects.get(email="ours@example.com")
    stranger = make_member(other_partner, "owner", "stranger")
    client = signed_in(stranger)
    assert client.post(f"/portal/members/invitations/{invitation.pk}/revoke/").status_code == 404
    assert "ours@example.com" not in client.get("/portal/members/").content.decode()
    invitation.refresh_from_db()
    assert invitation.revoked_at is None


def test_revoking_needs_a_post_with_csrf(partner, admin):
    _invite(signed_in(admin), "csrf@example.com")
    invitation = Invitation.objects.get(email="csrf@example.com")
    client = signed_in(admin, enforce_csrf=True)
    assert client.get(f"/portal/members/invitations/{invitation.pk}/revoke/").status_code == 405
    assert client.post(f"/portal/members/invitations/{invitation.pk}/revoke/").status_code == 403
    invitation.refresh_from_db()
    assert invitation.revoked_at is None


def test_the_answer_is_the_same_whether_or_not_an_account_has_the_address(partner, other_partner, admin, mailoutbox):
    outsider = make_member(other_partner, "viewer", "eve")
    client = signed_in(admin)
    addresses = {
        "existing account": outsider.user.email,
        "no account": "nobody@example.com",
        "already a member": admin.user.email,
    }
    answers = {case: [m.replace(email, "<email>") for m in _invite(client, email)] for case, email in addresses.items()}
    assert len({tuple(answer) for answer in answers.values()}) == 1, answers
    assert sorted(m.to[0] for m in mailoutbox) == sorted(addresses.values())
    assert not Membership.objects.filter(partner=partner, user=outsider.user).exists()  # no silent add
    created = AuditEvent.objects.filter(partner=partner, action="invitation.created")
    assert created.count() == 3 and all(set(e.data) == {"invitation", "role", "expires_at"} for e in created)


def test_a_member_cannot_accept_an_invitation_to_their_own_partner(partner, admin, mailoutbox):
    _invite(signed_in(admin), admin.user.email, "viewer")
    response = signed_in(admin).post(_link(mailoutbox, admin.user.email) + "accept/")
    assert response.status_code == 409 and 'data-code="already_member"' in response.content.decode()
    admin.refresh_from_db()
    assert admin.role == "admin"


def test_only_admins_and_owners_invite_and_only_owners_invite_owners(partner, admin, mailoutbox):
    developer = make_member(partner, "developer", "devon")
    refused = signed_in(developer).post("/portal/members/invite/", {"email": "x@example.com", "role": "viewer"})
    assert refused.status_code == 403
    page = signed_in(developer).get("/portal/members/").content.decode()
    assert "Only owners and admins invite" in page
    _invite(signed_in(admin), "seen@example.com")
    assert "seen@example.com" not in signed_in(developer).get("/portal/members/").content.decode()
    pending = Invitation.objects.get(email="seen@example.com")
    assert signed_in(developer).post(f"/portal/members/invitations/{pending.pk}/revoke/").status_code == 403
    as_admin = signed_in(admin).post("/portal/members/invite/", {"email": "boss@example.com", "role": "owner"})
    assert as_admin.status_code == 403 and "Only an owner can invite an owner" in as_admin.content.decode()
    owner = make_member(partner, "owner", "olivia")
    _invite(signed_in(owner), "boss@example.com", "owner")
    boss = Invitation.objects.get(email="boss@example.com")
    assert signed_in(admin).post(f"/portal/members/invitations/{boss.pk}/revoke/").status_code == 403
    assert [m.to[0] for m in mailoutbox] == ["seen@example.com", "boss@example.com"]
    assert not Invitation.objects.filter(email="x@example.com").exists()


def test_unknown_tokens_are_404(partner):
    for path in ("/portal/invitations/not-a-token/", "/portal/invitations/" + "a" * 300 + "/"):
        response = Client().get(path)
        assert response.status_code == 404 and 'data-code="not_found"' in response.content.decode()
    assert Client().post("/portal/invitations/not-a-token/accept/").status_code == 404


def test_when_the_email_cannot_be_sent_no_invitation_is_left(partner, admin, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2  # nothing listens there
    response = signed_in(admin).post("/portal/members/invite/", {"email": "lost@example.com", "role": "viewer"})
    assert response.status_code == 503 and "could not be sent" in response.content.decode()
    assert not Invitation.objects.filter(email="lost@example.com").exists()
    assert not AuditEvent.objects.filter(action="invitation.created").exists()


def test_operators_read_invitations_in_the_admin_but_change_none(partner, admin, django_user_model):
    _invite(signed_in(admin), "read@example.com")
    invitation = Invitation.objects.get(email="read@example.com")
    root = django_user_model.objects.create_superuser(username="root", email="root@example.com", password=PASSWORD)
    operator = Client()
    operator.force_login(root)
    listing = operator.get("/admin/partners/invitation/")
    assert listing.status_code == 200 and "read@example.com" in listing.content.decode()
    detail = operator.get(f"/admin/partners/invitation/{invitation.pk}/change/").content.decode()
    assert invitation.token_hash not in detail
    assert operator.get("/admin/partners/invitation/add/").status_code == 403
    assert operator.post(f"/admin/partners/invitation/{invitation.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Invitation.objects.filter(pk=invitation.pk).exists()


def test_the_embedded_default_writes_emails_as_files_under_var(tmp_path):
    """Without DATABASE_URL (embedded) and without DJANGO_EMAIL_BACKEND, an email is a file in var/mail."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_EMAIL_BACKEND")}
    env.update(ALLIANCE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="alliance.settings")
    code = (
        "import django; django.setup(); from django.core.mail import send_mail; "
        "send_mail('subject', 'the body', None, ['someone@example.com'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    files = list((tmp_path / "mail").iterdir())
    assert len(files) == 1 and "the body" in files[0].read_text()
