"""Applying to join the alliance: the public page stores a pending application and confirms it by email; a honeypot
drops bots without storing anything; each address is limited a minute and a day; an operator approves in the admin
(the partner is created with the tier and quotas, the contact invited as its owner) or declines with a reason, each
audited. Real POSTs to the real pages, real email outbox."""

from __future__ import annotations

import random
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from partners.models import Application, AuditEvent, Invitation, Membership, Partner, Quota
from tests.web.conftest import PASSWORD

pytestmark = pytest.mark.django_db
LINK = re.compile(r"http://testserver(/portal/invitations/[A-Za-z0-9_-]+/)")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def visitor() -> Client:
    """A client from its own random address, so the per-address counters of other tests do not reach it."""
    return Client(REMOTE_ADDR=f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}")


def application(**overrides: str) -> dict[str, str]:
    n = random.randrange(10**9)
    return {
        "company_name": f"Hanbit Robotics {n}",
        "sector": "manufacturing",
        "country": "kr",
        "website": "https://hanbit.example",
        "contact_name": "Ji-woo Park",
        "contact_email": f"Ji-woo.{n}@Hanbit.example",
        "purpose": "Summaries of maintenance logs for our factory lines.",
        "accepted_terms": "on",
        "nickname": "",
        **overrides,
    }


@pytest.fixture
def operator():
    return get_user_model().objects.create_superuser("opal", "opal@alliance.example", PASSWORD)


def operator_client(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def test_an_application_is_stored_pending_confirmed_by_email_and_audited(mailoutbox):
    form = application()
    response = visitor().post("/join/", form)
    assert response.status_code == 200 and b"Application received" in response.content
    stored = Application.objects.get()
    assert stored.status == "pending" and stored.contact_email == form["contact_email"].lower()
    assert stored.country == "KR" and stored.accepted_terms_at is not None and stored.partner is None
    assert not Partner.objects.filter(name=form["company_name"]).exists()
    assert len(mailoutbox) == 1 and mailoutbox[0].to == [stored.contact_email]
    assert form["company_name"] in mailoutbox[0].subject and "Ji-woo Park" in mailoutbox[0].body
    event = AuditEvent.objects.get(action="application.submitted")
    assert event.actor == f"applicant:{stored.contact_email}" and event.data["application"] == stored.pk


def test_the_page_is_public_and_says_what_happens():
    page = Client().get("/join/")
    assert page.status_code == 200 and b"Join the alliance" in page.content
    assert b'name="nickname"' in page.content  # the honeypot is there, hidden from people
    assert b'href="/join/"' in Client().get("/").content  # the site's navigation links to it


def test_a_filled_honeypot_is_answered_as_accepted_but_nothing_is_stored_or_sent(mailoutbox):
    response = visitor().post("/join/", application(nickname="buy cheap pills"))
    assert response.status_code == 200 and b"Application received" in response.content
    assert not Application.objects.exists() and mailoutbox == []
    assert AuditEvent.objects.filter(action="application.trapped").count() == 1


def test_terms_must_be_accepted_and_fields_are_checked(mailoutbox):
    client = visitor()
    no_terms = application()
    del no_terms["accepted_terms"]
    response = client.post("/join/", no_terms)
    assert response.status_code == 400 and "accepted_terms" in response.context["form"].errors
    response = client.post("/join/", application(country="Korea", contact_email="not-an-address"))
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"country", "contact_email"}
    assert not Application.objects.exists() and mailoutbox == []


def test_one_pending_application_per_contact_address():
    form = application()
    assert visitor().post("/join/", form).status_code == 200
    again = visitor().post("/join/", {**form, "company_name": "Another name", "contact_email": form["contact_email"]})
    assert again.status_code == 400
    assert "already waiting" in again.context["form"].errors["contact_email"][0]
    assert Application.objects.count() == 1


def test_each_address_is_limited_a_minute_then_a_day(settings, mailoutbox):
    settings.ALLIANCE_APPLICATIONS_PER_MINUTE = 2
    client = visitor()
    assert [client.post("/join/", application()).status_code for _ in range(3)] == [200, 200, 429]
    refused = client.post("/join/", application())
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert b"Too many applications" in refused.content
    assert Application.objects.count() == 2 and len(mailoutbox) == 2
    assert visitor().post("/join/", application()).status_code == 200  # another address is not affected

    settings.ALLIANCE_APPLICATIONS_PER_MINUTE = 100
    settings.ALLIANCE_APPLICATIONS_PER_DAY = 2
    daily = visitor()
    assert [daily.post("/join/", application()).status_code for _ in range(3)] == [200, 200, 429]
    assert b"a day" in daily.post("/join/", application()).content


def test_an_operator_approves_with_tier_and_quotas_and_the_contact_becomes_owner(operator, mailoutbox):
    visitor().post("/join/", application(company_name="Hanbit Robotics"))
    stored = Application.objects.get()
    admin = operator_client(operator)
    listing = admin.get("/admin/partners/application/")
    assert listing.status_code == 200 and b"Hanbit Robotics" in listing.content and b"Approve" in listing.content
    page = admin.get(f"/admin/partners/application/{stored.pk}/approve/")
    assert page.status_code == 200 and b"Summaries of maintenance logs" in page.content
    response = admin.post(
        f"/admin/partners/application/{stored.pk}/approve/",
        {"tier": "strategic", "monthly_units": "50000", "rpm": "30"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/admin/partners/application/"
    partner = Partner.objects.get(name="Hanbit Robotics")
    assert (partner.slug, partner.tier, partner.sector, partner.country) == (
        "hanbit-robotics",
        "strategic",
        "manufacturing",
        "KR",
    )
    assert not partner.listed  # operators decide separately what is public
    quotas = Quota.objects.filter(partner=partner)
    assert quotas.count() > 5 and {(q.monthly_units, q.rpm) for q in quotas} == {(50000, 30)}
    stored.refresh_from_db()
    assert stored.status == "approved" and stored.partner == partner and stored.decided_by == operator
    approved = AuditEvent.objects.get(action="application.approved")
    assert approved.partner == partner and approved.actor == "user:opal" and approved.data["tier"] == "strategic"
    invitation = Invitation.objects.get(partner=partner)
    assert invitation.role == "owner" and invitation.email == stored.contact_email

    mail = mailoutbox[-1]
    assert mail.to == [stored.contact_email] and "Welcome" in mail.subject
    link = LINK.search(mail.body).group(1)
    newcomer = Client()
    signed_up = newcomer.post(link, {"username": "jiwoo", "password1": PASSWORD, "password2": PASSWORD}, follow=True)
    assert signed_up.status_code == 200
    membership = Membership.objects.get(partner=partner, user__username="jiwoo")
    assert membership.role == "owner" and membership.user.email == stored.contact_email

    again = admin.post(
        f"/admin/partners/application/{stored.pk}/approve/", {"tier": "standard", "monthly_units": "1", "rpm": "1"}
    )
    assert again.status_code == 400 and b"already approved" in again.content
    assert Partner.objects.filter(name="Hanbit Robotics").count() == 1


def test_an_operator_declines_with_a_reason_sent_to_the_contact(operator, mailoutbox):
    visitor().post("/join/", application())
    stored = Application.objects.get()
    admin = operator_client(operator)
    url = f"/admin/partners/application/{stored.pk}/decline/"
    assert admin.post(url, {"reason": "  "}).status_code == 400
    response = admin.post(url, {"reason": "We only admit companies with a research team for now."})
    assert response.status_code == 302
    stored.refresh_from_db()
    assert stored.status == "declined" and stored.decline_reason.startswith("We only admit")
    assert not Partner.objects.filter(name=stored.company_name).exists()
    event = AuditEvent.objects.get(action="application.declined")
    assert event.actor == "user:opal" and event.data["reason"] == stored.decline_reason
    assert mailoutbox[-1].to == [stored.contact_email] and "research team" in mailoutbox[-1].body


def test_approving_a_name_that_is_taken_is_refused_and_changes_nothing(operator, partner, mailoutbox):
    visitor().post("/join/", application(company_name=partner.name))
    stored = Application.objects.get()
    response = operator_client(operator).post(
        f"/admin/partners/application/{stored.pk}/approve/", {"tier": "standard", "monthly_units": "10", "rpm": "5"}
    )
    assert response.status_code == 400 and b"already exists" in response.content
    stored.refresh_from_db()
    assert stored.status == "pending" and not Invitation.objects.exists() and len(mailoutbox) == 1


def test_only_operators_reach_the_decision_pages(partner):
    visitor().post("/join/", application())
    stored = Application.objects.get()
    staffless = get_user_model().objects.create_user("sam", "sam@example.com", PASSWORD)
    client = Client()
    client.force_login(staffless)
    response = client.post(
        f"/admin/partners/application/{stored.pk}/approve/", {"tier": "lab", "monthly_units": "1", "rpm": "1"}
    )
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    staffless.is_staff = True  # staff, but without the permission to add partners
    staffless.save()
    for action, data in (("approve", {"tier": "lab", "monthly_units": "1", "rpm": "1"}), ("decline", {"reason": "x"})):
        assert client.post(f"/admin/partners/application/{stored.pk}/{action}/", data).status_code == 403
    stored.refresh_from_db()
    assert stored.status == "pending" and not Partner.objects.filter(name=stored.company_name).exists()


def test_an_approval_left_blank_gives_the_tiers_default_quotas(operator, settings):
    settings.ALLIANCE_DEFAULT_MONTHLY_UNITS, settings.ALLIANCE_DEFAULT_RPM = 1000, 60
    visitor().post("/join/", application(company_name="Busan Fabs"))
    stored = Application.objects.get()
    response = operator_client(operator).post(
        f"/admin/partners/application/{stored.pk}/approve/", {"tier": "founding", "monthly_units": "", "rpm": ""}
    )
    assert response.status_code == 302
    quotas = Quota.objects.filter(partner__name="Busan Fabs")
    assert {(q.monthly_units, q.rpm) for q in quotas} == {(5000, 300)}
