"""Two offline language models (SmolLM2-135M and Qwen2.5-Coder-0.5B): each chosen by `model`, batched on its own,
and workers that host only some of them (ALLIANCE_WORKER_MODELS) without losing the jobs of the others."""

from __future__ import annotations

import time

import pytest
import redis
from django.conf import settings

from capabilities.default_models import EMBEDDER, LLM, QWEN
from inference import dispatch
from inference.models import Job
from inference.registry import ModelNotAvailable, models_for_queues, served_models
from inference.worker import worker_command
from tests.factories import client_for, make_key, make_partner
from tests.integration.processes import PlatformProcess, service_env, start_worker

pytestmark = pytest.mark.services


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _generation(model: str, prompt: str) -> dict:
    return {
        "capability": "text_generation",
        "model": model,
        "input": {"prompt": prompt},
        "params": {"temperature": 0.0, "max_new_tokens": 2},
    }


@pytest.fixture
def api(live_services, prepared_llm, prepared_qwen):
    return client_for(make_key(make_partner("Woori Bank", sector="finance"))[1])


def test_an_allow_list_narrows_what_a_worker_hosts_and_names_no_unknown_model():
    assert served_models({"llm"}) == [LLM, QWEN]
    assert served_models({"llm"}, [QWEN]) == [QWEN]
    assert models_for_queues({"llm"}, [QWEN]) == [EMBEDDER, QWEN]
    assert models_for_queues({"llm", "embeddings"}, [LLM]) == [EMBEDDER, LLM]
    with pytest.raises(ModelNotAvailable, match=r"'qwen-7b', not in the registry"):
        served_models({"llm"}, ["qwen-7b"])


@pytest.mark.slow
def test_both_language_models_are_chosen_by_model_and_batched_apart(api, tmp_path):
    ids = {model: [] for model in (LLM, QWEN)}
    for index in range(3):  # queued before any worker runs: each model's three jobs make one batch
        for model in ids:
            response = api.post("/api/v1/jobs", _generation(model, f"Count to {index + 3}."), format="json")
            assert response.status_code == 202, response.json()
            ids[model].append(response.json()["id"])
    listed = {entry["id"] for entry in api.get("/v1/models").json()["data"]}
    assert {LLM, QWEN} <= listed

    worker = start_worker(tmp_path, "w-two-llms", queues="llm")
    try:
        every = ids[LLM] + ids[QWEN]
        _wait_until(lambda: Job.objects.filter(pk__in=every, status="succeeded").count() == 6, 300, "six jobs")
        chat = api.post(
            "/v1/chat/completions",
            {"model": QWEN, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 2, "temperature": 0},
            format="json",
        )
    finally:
        worker.stop()
    assert chat.status_code == 200, chat.json()
    assert chat.json()["model"] == QWEN and chat.json()["choices"][0]["message"]["content"]
    for model, job_ids in ids.items():
        jobs = list(Job.objects.filter(pk__in=job_ids))
        assert {job.model for job in jobs} == {model}
        assert all(job.output["text"] for job in jobs)
        assert len({job.claim_token for job in jobs}) == 1, f"{model}'s jobs ran in more than one batch"
    tokens = {
        model: set(Job.objects.filter(pk__in=job_ids).values_list("claim_token", flat=True))
        for model, job_ids in ids.items()
    }
    assert tokens[LLM].isdisjoint(tokens[QWEN])
    assert f"worker process ready with models: {EMBEDDER}, {LLM}, {QWEN}" in worker.log()


@pytest.mark.slow
def test_a_job_for_a_model_no_worker_hosts_waits_for_one_that_does(api, tmp_path):
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    qwen_queue = dispatch.model_queue("llm", QWEN)
    small = start_worker(tmp_path, "w-small", queues="llm", ALLIANCE_WORKER_MODELS=LLM)
    try:
        korean = api.post(
            "/api/v1/jobs",
            {
                "capability": "dialogue",
                "model": QWEN,
                "input": {"messages": [{"role": "user", "content": "한국의 수도는 어디입니까?"}]},
                "params": {"temperature": 0.0, "max_new_tokens": 12},
            },
            format="json",
        ).json()
        hosted = api.post("/api/v1/jobs?wait=120", _generation(LLM, "Hello"), format="json").json()
        assert hosted["status"] == "succeeded", hosted
        # A message on the family's queue (sent before model queues existed, or by hand) is passed on, not run.
        broker.delete(qwen_queue)
        dispatch.send(dispatch.RUN_JOB, korean["id"], queue="llm")
        _wait_until(lambda: broker.llen(qwen_queue) >= 1, 30, "the job sent on to its model's queue")
        time.sleep(1)
        assert Job.objects.get(pk=korean["id"]).status == "queued"
        assert Job.objects.get(pk=korean["id"]).attempts == 0
        assert "sent on to its model's queue" in small.log()
        big = start_worker(tmp_path, "w-big", queues="llm", beat=False, ALLIANCE_WORKER_MODELS=QWEN)
        try:
            _wait_until(lambda: Job.objects.get(pk=korean["id"]).is_finished, 240, "the Qwen worker")
        finally:
            big.stop()
    finally:
        small.stop()
    answered = api.get(f"/api/v1/jobs/{korean['id']}").json()
    assert answered["status"] == "succeeded", answered
    assert answered["model"] == QWEN
    assert "서울" in answered["output"]["message"]["content"]
    assert f"worker process ready with models: {EMBEDDER}, {LLM} " in small.log()
    assert QWEN not in small.log().split("worker process ready with models:")[1].splitlines()[0]
    assert f"worker process ready with models: {EMBEDDER}, {QWEN} " in big.log()


def test_a_worker_refuses_to_start_with_a_model_the_registry_does_not_know(live_services, tmp_path):
    command = worker_command(queues="llm", concurrency=1, hostname="w-unknown@%h")
    worker = PlatformProcess(command, service_env(ALLIANCE_WORKER_MODELS="qwen-7b"), tmp_path / "unknown.log")
    try:
        worker.process.wait(timeout=90)
    finally:
        worker.stop()
    assert worker.process.returncode != 0
    assert "ALLIANCE_WORKER_MODELS names 'qwen-7b', not in the registry" in worker.log()
    assert "worker process ready" not in worker.log()
