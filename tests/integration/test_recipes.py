"""Showcase recipes through real workers: the counselling chatbot's four steps, each submitted by the worker that
finished the one before; and Tilda's recording, whose generated pattern becomes a picture the gallery serves."""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from django.core.management import call_command
from django.test import Client

from partners.models import Partner
from tests.integration.processes import start_worker
from tests.web.conftest import make_member, signed_in
from usecases.models import RecipeRun, UseCase, UseCaseImage
from usecases.runs import showcase_recordings_start

pytestmark = pytest.mark.services

COUNSELLING = "a-counselling-customer-service-chatbot"
TILDA = "tilda-the-ai-fashion-artist"


@pytest.fixture
def seeded(live_services):
    call_command("seed_alliance", stdout=open(os.devnull, "w"))  # noqa: SIM115


def _poll(client: Client, url: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(url).json()
        if run["status"] != "running":
            return run
        time.sleep(0.5)
    raise AssertionError(f"the run did not finish in {timeout} s: {run}")


def test_the_counselling_recipe_runs_step_by_step_on_a_real_worker(seeded, tmp_path):
    client = signed_in(make_member(Partner.objects.get(slug="google"), "developer"))
    message = "I have called three times about my bill and nobody fixed the double charge. I am really frustrated."
    worker = start_worker(tmp_path, "w-recipe", queues="embeddings,llm")
    try:
        started = client.post(
            f"/usecases/{COUNSELLING}/runs",
            json.dumps({"inputs": {"message": message}}),
            content_type="application/json",
        )
        assert started.status_code == 202, started.json()
        run = _poll(client, started.json()["url"], timeout=300)
    finally:
        worker.stop()
    assert run["status"] == "succeeded", run
    steps = {step["id"]: step for step in run["steps"]}
    assert [s["status"] for s in run["steps"]] == ["succeeded"] * 4
    reply = steps["reply"]["output"]["message"]["content"]
    assert reply.strip()
    assert steps["emotion"]["output"]["label"] in {"frustrated", "worried", "satisfied", "confused"}
    assert steps["note"]["input"]["text"] == f"Customer: {message}\nAgent: {reply}"  # built from step 1's output
    assert steps["note"]["output"]["summary"].strip()
    words = set(re.findall(r"\w+", message.lower()))
    keywords = [item["keyword"] for item in steps["keywords"]["output"]["keywords"]]
    assert len(keywords) == 5 and all(set(k.split()) <= words for k in keywords)
    # every step ran as a job of the runner's partner, the later ones submitted in the worker
    assert RecipeRun.objects.get(pk=run["id"]).steps.filter(job__partner__slug="google").count() == 4


def test_tildas_recording_becomes_a_picture_the_gallery_serves(seeded, tmp_path):
    usecase = UseCase.objects.get(slug=TILDA)
    worker = start_worker(tmp_path, "w-tilda", queues="vision,embeddings")
    try:
        [run] = showcase_recordings_start(
            usecase=usecase, recordings=[{"prompt": "golden daisies on a deep blue field"}]
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not RecipeRun.objects.get(pk=run.pk).recorded:
            time.sleep(0.5)
    finally:
        worker.stop()
    run.refresh_from_db()
    assert run.status == "succeeded" and run.recorded, run.error
    image = UseCaseImage.objects.get(usecase=usecase)
    assert image.caption == "golden daisies on a deep blue field" and run.images == {"pattern": image.pk}
    visitor = Client()
    served = visitor.get(f"/usecases/{TILDA}/images/{image.pk}")
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    page = visitor.get(f"/usecases/{TILDA}/").content.decode()
    assert f"/usecases/{TILDA}/images/{image.pk}" in page and 'data-testid="recorded-runs"' in page
    assert f"/usecases/{TILDA}/images/{image.pk}" in visitor.get("/").content.decode()  # the gallery card's cover
