# ruff: noqa: F811  (the browser fixtures are imported from test_browser and requested by name)
"""Joining the alliance in a real browser (headless Chromium), mail written as files like the embedded default: a
company applies, an operator approves it in the admin, the contact opens the invitation link from the mail file,
sets a password and lands in the portal as owner, invites a developer, who accepts and issues an API key; and a
forgotten password is reset by its emailed link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from partners.models import Membership, Partner
from tests.web.conftest import PASSWORD, make_member
from tests.web.test_browser import browser, page, shots  # noqa: F401  (the fixtures)

NEW_PASSWORD = "a-brand-new-passphrase-42"


@pytest.fixture
def mail_dir(settings, tmp_path) -> Path:
    """Django's file backend, as in the embedded default: each message a file under the folder."""
    folder = tmp_path / "mail"
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = folder
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return folder


def link_in_mail(folder: Path, to: str, pattern: str) -> str:
    """The link (its path) in the newest mail file written to `to` that has one matching `pattern`."""
    for path in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        text = path.read_text()
        match = re.search(rf"http://[^/\s]+({pattern})", text)
        if f"To: {to}" in text and match:
            return match.group(1)
    raise AssertionError(f"no mail to {to} with {pattern} in {folder}")


def new_tab(browser, live_server):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=live_server.url)
    context.set_default_timeout(15_000)
    return context, context.new_page()


def test_a_company_applies_is_approved_and_its_people_get_to_work(
    transactional_db,
    browser,
    live_server,
    page,
    mail_dir,
    shots,
):
    get_user_model().objects.create_superuser("opal", "opal@alliance.example", PASSWORD)

    # The company applies.
    page.goto("/")
    page.get_by_role("link", name="Join", exact=True).click()
    page.get_by_label("Company name").fill("Hanbit Robotics")
    page.get_by_label("Sector").select_option("manufacturing")
    page.get_by_label("Country").fill("KR")
    page.get_by_label("Website").fill("https://hanbit.example")
    page.get_by_label("Your name").fill("Ji-woo Park")
    page.get_by_label("Your email").fill("jiwoo@hanbit.example")
    page.get_by_label("What do you want to build?").fill("Summaries of maintenance logs for our factory lines.")
    page.get_by_label("I accept the alliance's terms of participation.").check()
    shots(page, "join")
    page.get_by_role("button", name="Send the application").click()
    assert page.get_by_role("heading", name="Application received").is_visible()
    assert any("To: jiwoo@hanbit.example" in p.read_text() for p in mail_dir.iterdir())  # the confirmation

    # An operator approves it in the admin.
    operator_context, admin = new_tab(browser, live_server)
    admin.goto("/admin/login/?next=/admin/partners/application/")
    admin.get_by_label("Username").fill("opal")
    admin.get_by_label("Password").fill(PASSWORD)
    admin.get_by_role("button", name="Log in").click()
    admin.wait_for_url(re.compile(r"/admin/partners/application/$"))
    admin.get_by_role("link", name="Approve", exact=True).click()
    admin.get_by_label("Tier").select_option("strategic")
    admin.get_by_label("Monthly units").fill("50000")
    admin.get_by_role("button", name="Approve", exact=True).click()
    admin.wait_for_url(re.compile(r"/admin/partners/application/$"))
    assert admin.get_by_text("Hanbit Robotics is a partner; jiwoo@hanbit.example is invited as its owner.").is_visible()
    operator_context.close()
    partner = Partner.objects.get(name="Hanbit Robotics")
    assert partner.tier == "strategic"

    # The contact opens the link from the mail file, sets a password and lands in the portal as owner.
    page.goto(link_in_mail(mail_dir, "jiwoo@hanbit.example", r"/portal/invitations/[A-Za-z0-9_-]+/"))
    assert page.get_by_role("heading", name="Join Hanbit Robotics").is_visible()
    page.get_by_label("Username").fill("jiwoo")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create account and join").click()
    page.wait_for_url(re.compile(r"/portal/$"))
    assert page.get_by_text("Welcome to Hanbit Robotics: you are a member as owner.").is_visible()
    assert Membership.objects.get(partner=partner, user__username="jiwoo").role == "owner"

    # The owner invites a developer, who accepts and issues an API key.
    page.goto("/portal/members/")
    page.get_by_label("Email", exact=True).fill("dev@hanbit.example")
    page.get_by_label("Role", exact=True).select_option("developer")
    page.get_by_role("button", name="Send invitation").click()
    assert page.get_by_text("An invitation to dev@hanbit.example to join as developer is sent").is_visible()
    developer_context, dev = new_tab(browser, live_server)
    dev.goto(link_in_mail(mail_dir, "dev@hanbit.example", r"/portal/invitations/[A-Za-z0-9_-]+/"))
    dev.get_by_label("Username").fill("minho")
    dev.get_by_label("Password", exact=True).fill(PASSWORD)
    dev.get_by_label("Password again").fill(PASSWORD)
    dev.get_by_role("button", name="Create account and join").click()
    dev.wait_for_url(re.compile(r"/portal/$"))
    dev.goto("/portal/keys/")
    dev.get_by_label("Name").fill("maintenance summaries")
    dev.get_by_label("summarization").check()
    dev.get_by_role("button", name="Issue key").click()
    assert dev.get_by_test_id("raw-key").inner_text().startswith("alk_")
    developer_context.close()
    assert Membership.objects.get(partner=partner, user__username="minho").role == "developer"
    assert partner.api_keys.get().created_by.username == "minho"


def test_a_forgotten_password_is_reset_by_its_link(transactional_db, page, mail_dir, shots):
    partner = Partner.objects.create(name="Woori Bank", slug="woori-bank", sector="finance")
    member = make_member(partner, "developer", "rosa")

    page.goto("/portal/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill(member.user.email)
    page.get_by_role("button", name="Send the link").click()
    assert page.get_by_role("heading", name="Check your email").is_visible()

    page.goto(link_in_mail(mail_dir, member.user.email, r"/portal/password/reset/[^/\s]+/[^/\s]+/"))
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the password").click()
    assert page.get_by_role("heading", name="Your password is set").is_visible()

    page.get_by_role("link", name="Sign in", exact=True).last.click()
    page.get_by_label("Username").fill("rosa")
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/portal/$"))
    page.goto("/portal/profile/")
    assert page.get_by_test_id("membership").filter(has_text="Woori Bank").is_visible()
