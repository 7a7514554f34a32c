"""The site in a real browser (headless Chromium): the gallery, a showcase's "Try it", signing in, a key shown
once, and a playground job run by a real Celery worker. Screenshots of the main pages are saved on the way."""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid

import pytest
from django.core.management import call_command
from django.utils import timezone

from partners.models import Partner, UsageRecord
from partners.services import quota_for, usage_charge
from tests.integration.processes import start_worker
from tests.web.browser import CHROMIUM, LAUNCH_ARGS, screenshot_dir, skip_or_fail_without_browser
from tests.web.conftest import PASSWORD, make_member

VIEWPORT = {"width": 1280, "height": 860}


@pytest.fixture(scope="module")
def browser():
    skip_or_fail_without_browser()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are still synchronous.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def shots(tmp_path):
    folder = screenshot_dir(tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return lambda tab, name: tab.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def _sign_in(page, username: str, next_path: str) -> None:
    page.goto(next_path)
    if "/portal/login/" not in page.url:  # a public page: its own sign-in link brings the visitor back
        page.get_by_role("link", name="Sign in to run").click()
        page.wait_for_url(re.compile(r"/portal/login/\?next="))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(next_path.split("?")[0])))


def test_browse_filter_open_a_showcase_and_try_it(transactional_db, page, shots):
    call_command("seed_alliance", stdout=open(os.devnull, "w"))  # noqa: SIM115
    page.goto("/")
    cards = page.get_by_test_id("showcase-card")
    assert page.get_by_role("heading", name="Featured").is_visible()
    shots(page, "gallery")

    page.get_by_label("Sector").select_option("finance")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"sector=finance"))
    assert cards.count() == 1 and "AI banker" in cards.first.inner_text()

    page.get_by_role("link", name="Clear").click()
    page.get_by_label("Capability").select_option("image_generation")
    page.get_by_label("Search").fill("fashion")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"capability=image_generation"))
    assert cards.count() == 1
    page.get_by_role("link", name="Tilda, the AI fashion artist").click()
    page.wait_for_url(re.compile(r"/usecases/tilda"))
    assert page.get_by_role("heading", name="Tilda, the AI fashion artist").is_visible()
    shots(page, "showcase")

    page.get_by_test_id("try-it").click()
    page.wait_for_url(re.compile(r"/playground/\?capability=image_generation"))
    assert page.get_by_role("radio", name="Image generation").is_checked()
    assert page.get_by_label("Prompt", exact=True).and_(page.locator("#ig-prompt")).input_value() == (
        "golden daisies on a deep blue field"
    )
    assert page.get_by_test_id("sign-in-to-run").is_visible()
    assert '"capability": "image_generation"' in page.locator("[data-code]").inner_text()

    # The language switch in the footer: choosing Korean reloads the page in Korean, and the choice stays.
    page.goto("/")
    with page.expect_navigation():
        page.get_by_label("Language").select_option("ko")
    assert page.locator("html").get_attribute("lang") == "ko"
    assert page.get_by_role("heading", name="추천").is_visible()
    assert page.get_by_role("link", name="패션 디자인 AI 아티스트, 틸다").first.is_visible()
    shots(page, "gallery-ko")
    page.get_by_role("link", name="파트너", exact=True).click()
    assert page.get_by_role("heading", name="얼라이언스 파트너").is_visible()


def test_sign_in_issue_a_key_and_see_it_once(transactional_db, page, shots):
    partner = Partner.objects.create(name="Woori Bank", slug="woori-bank", sector="finance")
    make_member(partner, "owner", "olivia")
    _add_usage(partner)

    _sign_in(page, "olivia", "/portal/keys/")
    page.get_by_label("Name").fill("chatbot backend")
    page.get_by_label("dialogue").check()
    page.get_by_label("summarization").check()
    page.get_by_label("Expires in (days)").fill("90")
    page.get_by_role("button", name="Issue key").click()
    secret = page.get_by_test_id("raw-key")
    raw = secret.inner_text()
    assert raw.startswith("alk_") and len(raw) > 30
    page.get_by_role("button", name="Copy").first.click()
    shots(page, "portal-keys")

    page.goto("/portal/keys/")
    assert page.get_by_text("chatbot backend").is_visible()
    assert page.get_by_test_id("raw-key").count() == 0 and raw not in page.content()

    page.get_by_role("link", name="Usage").first.click()
    page.wait_for_url(re.compile(r"/portal/usage/"))
    assert page.get_by_test_id("usage-chart").locator("rect.bar").count() >= 1
    shots(page, "portal-usage")


def _add_usage(partner: Partner) -> None:
    """A few charges on earlier days of this month, so the usage chart has bars to show."""
    today = timezone.now()
    for days_ago, units in ((6, 120), (4, 300), (2, 80), (0, 210)):
        day = today - dt.timedelta(days=min(days_ago, today.day - 1))
        for capability in ("keyword_extraction", "text_classification"):
            quota = quota_for(partner=partner, capability=capability)
            job_id = uuid.uuid4()
            usage_charge(quota=quota, api_key=None, job_id=job_id, units=units, now=today)
            UsageRecord.objects.filter(job_id=job_id).update(created_at=day)


@pytest.mark.services
def test_run_a_playground_job_and_see_its_result(live_services, page, shots, tmp_path):
    partner = Partner.objects.create(name="LG Uplus", slug="lg-uplus", sector="telecom")
    make_member(partner, "developer", "devon")
    worker = start_worker(tmp_path, "w-browser", queues="embeddings")
    try:
        _sign_in(page, "devon", "/playground/?capability=keyword_extraction")
        assert page.get_by_role("radio", name="Keyword extraction").is_checked()
        page.get_by_role("button", name="Run").click()
        keywords = page.get_by_test_id("keywords").locator(".tag")
        keywords.first.wait_for(timeout=90_000)
        assert keywords.count() == 5
        assert "Succeeded" in page.locator("[data-status]").inner_text()

        page.locator(".pg-tabs label", has_text="Text classification").click()
        assert page.get_by_role("radio", name="Text classification").is_checked()
        page.get_by_role("button", name="Run").click()
        page.get_by_test_id("label").wait_for(timeout=90_000)
        assert page.get_by_test_id("label").inner_text() == "complaint"
        page.get_by_role("tab", name="Python").click()
        code = page.locator("[data-code]").inner_text()
        assert "requests.post(" in code and '"capability": "text_classification"' in code
        shots(page, "playground")
    finally:
        worker.stop()

    page.goto("/portal/jobs/")
    rows = page.locator("tbody tr")
    assert rows.count() == 2 and "Succeeded" in rows.first.inner_text()
    rows.first.get_by_role("link").click()
    assert page.get_by_text("complaint").first.is_visible()


@pytest.mark.services
def test_playground_shows_dialogue_tokens_as_they_arrive(live_services, page, tmp_path):
    from inference.models import Job

    partner = Partner.objects.create(name="Woori Bank", slug="woori-bank", sector="finance")
    make_member(partner, "developer", "devon")
    worker = start_worker(tmp_path, "w-browser-llm", queues="llm")
    try:
        _sign_in(page, "devon", "/playground/?capability=dialogue")
        page.locator("[data-turns] textarea").first.fill("Write a short story about a robot who paints.")
        page.get_by_role("button", name="Run").click()
        streamed = page.get_by_test_id("streamed-text")
        streamed.wait_for(timeout=90_000)
        partial = streamed.inner_text()
        status_while_streaming = page.locator("[data-status]").inner_text()
        page.wait_for_function(
            "() => (document.querySelector('[data-status]').textContent || '').includes('Succeeded')", timeout=90_000
        )
        job = Job.objects.get()
        final = job.output["message"]["content"]
        assert "Generating" in status_while_streaming and final.startswith(partial) and len(partial) < len(final)
        assert final in page.get_by_test_id("result").inner_text()
    finally:
        worker.stop()
