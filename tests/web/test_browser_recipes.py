"""A showcase's recipe in a real browser: a member runs the counselling chatbot's recipe from its page, sees each of
its four steps' results as their jobs finish on a real worker, reads the same recipe as Python, and keeps the run
as one of the showcase's results, which a visitor then sees."""

from __future__ import annotations

import os
import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from partners.models import Partner
from tests.integration.processes import start_worker
from tests.web.conftest import make_member
from tests.web.test_browser import _sign_in, browser, page, shots  # noqa: F401 (fixtures)

SLUG = "a-counselling-customer-service-chatbot"
MESSAGE = "My internet has been down for two days and nobody at your call centre calls me back. I am so angry."


@pytest.mark.services
def test_run_the_counselling_recipe_from_its_showcase_page(live_services, page, shots, tmp_path):  # noqa: F811
    call_command("seed_alliance", stdout=open(os.devnull, "w"))  # noqa: SIM115
    make_member(Partner.objects.get(slug="lg-uplus"), "developer", "devon")
    worker = start_worker(tmp_path, "w-browser-recipe", queues="embeddings,llm")
    try:
        _sign_in(page, "devon", f"/usecases/{SLUG}/")
        page.get_by_label("Customer message").fill(MESSAGE)
        page.get_by_test_id("run-recipe").click()
        live = page.get_by_test_id("recipe-live")
        expect(live.get_by_test_id("step-result").first).to_be_visible(timeout=30_000)
        page.wait_for_function(
            "() => document.querySelectorAll('#recipe-live [data-status=succeeded]').length === 4", timeout=300_000
        )
    finally:
        worker.stop()
    steps = live.get_by_test_id("step-result")
    assert steps.count() == 4
    assert [steps.nth(i).get_attribute("data-step") for i in range(4)] == ["reply", "emotion", "note", "keywords"]
    assert live.get_by_test_id("step-label").inner_text() in {"frustrated", "worried", "satisfied", "confused"}
    assert steps.nth(3).locator(".tag").count() == 5
    assert steps.nth(0).locator(".step-text").inner_text().strip() and steps.nth(2).locator(".step-text").inner_text()
    assert "Done: 4 steps" in page.locator("[data-run-status]").inner_text()

    page.get_by_test_id("view-code").click()
    code = page.get_by_test_id("recipe-code")
    expect(code).to_be_visible()
    assert 'run("dialogue"' in code.inner_text() and 'run("keyword_extraction"' in code.inner_text()
    shots(page, "showcase-recipe-run")

    page.get_by_test_id("record-run").click()
    expect(page.locator("[data-run-status]")).to_have_text(re.compile("Recorded as a result"))
    page.context.clear_cookies()
    page.goto(f"/usecases/{SLUG}/")
    recorded = page.get_by_test_id("recorded-runs")
    expect(recorded).to_contain_text(MESSAGE)
    assert recorded.get_by_test_id("step-result").count() == 4
