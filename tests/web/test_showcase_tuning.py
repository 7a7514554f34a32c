"""The AI banker's showcase shows the bank's own tuned classifier: record_showcases uploads the showcase's dataset and
tunes MiniLM through the platform's tuning path on a real worker; once the model exists the showcase's recordings run
with it and are recorded, and the page shows the model's accuracy on the rows its tuning held out. That figure is
checked against the tuned model's own answers to those held-out rows, served as ordinary jobs."""

from __future__ import annotations

import io
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from inference.models import Job, JobStatus, TunedModel, TuningJob
from inference.services import job_request_submit
from inference.services.tuning_tokens import split_rows
from partners.models import Partner
from tests.integration.processes import start_worker
from usecases.models import RecipeRun
from usecases.runs import recorder_key
from usecases.seed import SHOWCASES
from usecases.showcase_tuning import DATA_DIR

BANKER = "an-ai-banker-tuned-on-finance-language"
ENTRY = next(entry for entry in SHOWCASES if entry.get("tuning"))
LABELS = {"loans", "deposits", "cards", "fraud"}


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.services
def test_the_ai_bankers_tuned_classifier_and_its_held_out_accuracy_are_recorded_on_its_page(live_services, tmp_path):
    call_command("seed_alliance", stdout=io.StringIO())
    out = io.StringIO()
    call_command("record_showcases", BANKER, stdout=out)
    assert "1 tuning jobs started" in out.getvalue()
    [job] = TuningJob.objects.filter(partner__slug="woori-bank")
    rows = [json.loads(line) for line in (DATA_DIR / ENTRY["tuning"]["dataset"]).read_text().splitlines()]
    hyperparameters = ENTRY["tuning"]["hyperparameters"]
    _, held_out = split_rows("classification", rows, hyperparameters["validation_fraction"], hyperparameters["seed"])
    assert len(held_out) == 16 and Counter(row["label"] for row in held_out) == dict.fromkeys(LABELS, 4)

    worker = start_worker(tmp_path, "w-banker-tuning", queues="tuning,embeddings")
    try:
        recorded = RecipeRun.objects.filter(usecase__slug=BANKER, recorded=True)
        _wait(lambda: recorded.count() == len(ENTRY["recordings"]), 600, "the banker's recordings")
        job.refresh_from_db()
        tuned = TunedModel.objects.get(tuning_job=job)
        # The tuned model's own answers to the held-out rows, as ordinary jobs on the bank's key.
        key = recorder_key(Partner.objects.get(slug="woori-bank"))
        checks = [
            job_request_submit(
                api_key=key, capability="text_classification", data={"text": row["text"]}, model=tuned.name
            ).job
            for row in held_out
        ]
        finished = Job.objects.filter(pk__in=[check.pk for check in checks], status=JobStatus.SUCCEEDED)
        _wait(lambda: finished.count() == len(checks), 300, "the held-out checks")
    finally:
        worker.stop()

    accuracy = job.result["metrics"]["accuracy"]
    answers = {check.pk: check.output["label"] for check in finished}
    served = sum(answers[check.pk] == row["label"] for check, row in zip(checks, held_out, strict=True)) / 16
    assert abs(served - accuracy) <= 1 / 16, (served, accuracy)  # the figure is the model's on those rows
    assert accuracy >= 0.5  # four topics: far above chance (0.25)

    assert all(run.recipe["steps"][0]["model"] == tuned.name for run in recorded)
    assert "labels" not in recorded.first().recipe["steps"][0]["input"]
    page = Client().get(f"/usecases/{BANKER}/").content.decode()
    figures = re.search(
        r'data-testid="tuned-figures" data-model="([^"]+)" data-accuracy="([^"]+)" data-held-out="(\d+)"', page
    )
    assert figures is not None, page
    assert figures.groups() == (tuned.name, str(accuracy), "16")
    assert f"accuracy {accuracy:.3f}" in page and "on the 16 rows its tuning held out; trained on 40 rows" in page
    predicted = re.findall(r'data-testid="step-label">([a-z]+)<', page)
    assert len(predicted) == 3 and set(predicted) <= LABELS
    for recording in ENTRY["recordings"]:
        assert recording["question"] in page

    korean = Client().get(f"/usecases/{BANKER}/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert "파트너가 직접 튜닝한 분류기" in korean and "16개 행에서 정확도" in korean

    out = io.StringIO()
    call_command("record_showcases", BANKER, stdout=out)  # done once: nothing more is tuned or run
    assert "0 recipe runs and 0 tuning jobs started" in out.getvalue()
    assert TuningJob.objects.count() == 1 and RecipeRun.objects.filter(usecase__slug=BANKER).count() == 3


def test_the_bankers_dataset_is_in_the_repository_and_balanced():
    rows = [json.loads(line) for line in Path(DATA_DIR, ENTRY["tuning"]["dataset"]).read_text().splitlines()]
    assert Counter(row["label"] for row in rows) == dict.fromkeys(LABELS, 14)
    assert len({row["text"] for row in rows}) == 56
    assert not {recording["question"] for recording in ENTRY["recordings"]} & {row["text"] for row in rows}
