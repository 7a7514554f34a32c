"""Tuning in a real browser (headless Chromium) on a real Celery worker: upload a small classification file, see
its stats and estimate, start a run, watch the progress bar and the loss curve move, and get the model id."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from partners.models import Partner
from tests.integration.processes import start_worker
from tests.web.conftest import make_member
from tests.web.test_browser import _sign_in, browser, page, shots  # noqa: F401 (fixtures)

STEP = re.compile(r"^(\d+) / (\d+)$")
ROWS = [
    ("The transfer arrived instantly and the app is lovely to use", "praise"),
    ("My card was charged twice and nobody answers the phone", "complaint"),
]


def classification_file(path, rows: int = 40):
    lines = [{"text": f"{ROWS[i % 2][0]}, order {i}.", "label": ROWS[i % 2][1]} for i in range(rows)]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


@pytest.mark.services
def test_upload_tune_and_watch_a_run_finish(live_services, page, shots, tmp_path):  # noqa: F811
    from playwright.sync_api import Error as PlaywrightError

    partner = Partner.objects.create(name="Woori Bank", slug="woori-bank", sector="finance")
    make_member(partner, "developer", "devon")
    worker = start_worker(tmp_path, "w-tuning-browser", queues="tuning,embeddings,default")
    try:
        _sign_in(page, "devon", "/portal/datasets/")
        page.get_by_label("Data file").set_input_files(str(classification_file(tmp_path / "support.jsonl")))
        page.get_by_label("Task").select_option("classification")
        page.get_by_role("button", name="Upload and check").click()
        created = page.get_by_test_id("dataset-created")
        created.wait_for()
        assert page.get_by_test_id("stat-rows").inner_text() == "40"
        assert "praise · 20" in created.inner_text() and "complaint · 20" in created.inner_text()
        assert "Quota units" in page.get_by_test_id("dataset-estimate").inner_text()

        page.get_by_role("link", name="Tune on this dataset").click()
        page.wait_for_url(re.compile(r"/portal/tuning/\?dataset=ds_"))
        units = page.locator("[data-estimate=units]")
        expect(units).not_to_have_text("—")  # polled from outside the page: its CSP forbids eval
        assert int(units.inner_text().replace(",", "")) > 0
        page.get_by_role("button", name="Start tuning").click()
        page.wait_for_url(re.compile(r"/portal/tuning/[0-9a-f-]{36}/$"))

        seen, model = set(), page.get_by_test_id("tuned-model")
        deadline = time.monotonic() + 180
        while model.count() == 0:
            assert time.monotonic() < deadline, f"no model after 180 s; saw {seen}\n{worker.log()[-3000:]}"
            try:  # the page reloads itself once the run finishes
                text = page.locator("[data-field=step]").inner_text(timeout=2_000)
            except PlaywrightError:
                text = ""
            if STEP.match(text):
                seen.add(text)
            time.sleep(0.2)
        assert seen, "the progress never showed a step"
        assert model.inner_text().startswith("ft:all-MiniLM-L6-v2:woori-bank:")
        step, total = STEP.match(page.locator("[data-field=step]").inner_text()).groups()
        assert step == total and int(total) > 0
        assert page.get_by_test_id("tuning-progress").get_attribute("aria-valuenow") == total
        assert int(page.locator("polyline.loss-line").get_attribute("data-points")) >= 1
        metrics = page.get_by_test_id("tuning-metrics").inner_text()
        assert "Accuracy" in metrics and "Macro-F1" in metrics and "Trainable parameters" in metrics
        assert "Succeeded" in page.locator("[data-field=status]").inner_text()
        assert "curl -X POST" in page.locator("#tuned-snippet").inner_text()
        shots(page, "tuning")
    finally:
        worker.stop()

    page.goto("/portal/tuning/")
    assert "Succeeded" in page.locator("tbody tr").first.inner_text()
