"""The playground's model list in a real browser: a member picks their partner's own tuned classifier (another
partner's is never offered), the view-code panel and the submitted job name it, and no labels are needed."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from inference.models import Job, TunedModel, TuningJob
from inference.registry import model_specs
from partners.models import Partner
from tests.web.conftest import make_member
from tests.web.test_browser import _sign_in, browser, page, shots  # noqa: F401 (fixtures)

OWN = "ft:all-MiniLM-L6-v2:woori-bank:topics"
THEIRS = "ft:all-MiniLM-L6-v2:google:secret"


def _tuned(partner: Partner, name: str) -> None:
    tuning = TuningJob.objects.create(
        partner=partner, task="classification", base_model="all-MiniLM-L6-v2", method="lora", status="succeeded"
    )
    TunedModel.objects.create(
        partner=partner,
        name=name,
        tuning_job=tuning,
        base_model="all-MiniLM-L6-v2",
        task="classification",
        adapter_path="x",
        labels=["loans", "cards"],
    )


@pytest.mark.services
def test_pick_the_partners_tuned_classifier_and_run_it_without_labels(live_services, page):  # noqa: F811
    woori = Partner.objects.create(name="Woori Bank", slug="woori-bank", sector="finance")
    _tuned(woori, OWN)
    _tuned(Partner.objects.create(name="Google", slug="google", sector="it"), THEIRS)
    make_member(woori, "developer", "devon")
    _sign_in(page, "devon", "/playground/?capability=text_classification")
    model = page.get_by_label("Model")
    registry = sorted(spec.name for spec in model_specs().values() if "text_classification" in spec.capabilities)
    others = [name for name in registry if name != "all-MiniLM-L6-v2"]  # the language models classify too
    expect(model.locator("option:not([disabled])")).to_have_text(
        ["all-MiniLM-L6-v2 (default)", *others, f"{OWN} (your tuned model)"]
    )
    assert model.locator(f'option[value="{THEIRS}"]').count() == 0
    model.select_option(OWN)
    page.locator("#tc-text").fill("Can I pay off my car loan early?")
    page.locator("#tc-labels").fill("")
    page.get_by_role("tab", name="Python").click()
    assert f'"model": "{OWN}"' in page.locator("[data-code]").inner_text()
    page.get_by_role("button", name="Run").click()
    expect(page.locator("[data-status]")).not_to_contain_text("Submitting", timeout=15_000)
    job = Job.objects.get()
    assert job.model == OWN and job.input == {"text": "Can I pay off my car loan early?"}

    page.locator(".pg-tabs label", has_text="Keyword extraction").click()  # the list follows the capability
    expect(model.locator("option:not([disabled])")).to_have_text(["all-MiniLM-L6-v2 (default)"])
