from __future__ import annotations

import io
import json

import pytest
from django.conf import settings
from PIL import Image

from tests.factories import client_for, keyword_job, make_key, make_partner


@pytest.fixture(scope="session", autouse=True)
def _clean_redis() -> None:
    """Each run starts from an empty Redis database: no stale rate-limit windows or queued messages."""
    if settings.REDIS_URL:
        import redis

        redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture
def partner(db):
    return make_partner("Woori Bank", sector="finance")


@pytest.fixture
def other_partner(db):
    return make_partner("LG Chem", sector="manufacturing")


@pytest.fixture
def key_and_raw(partner):
    return make_key(partner)


@pytest.fixture
def api(key_and_raw):
    return client_for(key_and_raw[1])


def pytest_configure(config: pytest.Config) -> None:
    """What collectstatic makes before a server starts (settings create no directory): WhiteNoise warns without it."""
    settings.STATIC_ROOT.mkdir(parents=True, exist_ok=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ALLIANCE_REQUIRE_SERVICES=1 (CI), a skipped test fails the run."""
    from tests.services import require_services

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if require_services() and skipped and session.exitstatus == 0:
        reporter.write_line(f"{len(skipped)} test(s) skipped while every service is required: failing the run.")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> None:
    """Rows roll back between tests and their ids come back: forget per-process caches of them."""
    from partners import auth_cache
    from partners.services import quotas

    quotas._quota_cache.clear()
    auth_cache.clear()


@pytest.fixture
def theirs(other_partner) -> dict[str, str]:
    """One of each of the other partner's resources, made through the API: the ids another partner must not reach."""
    from inference.models import TunedModel, TuningJob

    _, raw = make_key(other_partner)
    api = client_for(raw)
    job = api.post("/api/v1/jobs", keyword_job(), format="json").json()
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    upload = io.BytesIO(png.getvalue())
    upload.name = "theirs.png"
    stored = api.post("/api/v1/files", {"file": upload}, format="multipart").json()
    rows = "\n".join(json.dumps({"text": f"row {i}", "label": "ab"[i % 2]}) for i in range(12))
    data = io.BytesIO(rows.encode())
    data.name = "theirs.jsonl"
    dataset = api.post("/api/v1/datasets", {"file": data, "task": "classification"}, format="multipart").json()
    tuning = api.post("/api/v1/tuning-jobs", {"dataset": dataset["id"], "task": "classification"}, format="json").json()
    tuned = TunedModel.objects.create(
        name="ft:all-MiniLM-L6-v2:lg-chem:feedfeed",
        partner=other_partner,
        task="classification",
        tuning_job=TuningJob.objects.get(pk=tuning["id"]),
        base_model="all-MiniLM-L6-v2",
        adapter_path="adapters/x",
    )
    batch = api.post(
        "/api/v1/batches",
        {"capability": "keyword_extraction", "requests": [{"custom_id": "a", "input": keyword_job()["input"]}]},
        format="json",
    ).json()
    return {
        "job": job["id"],
        "file": stored["id"],
        "dataset": dataset["id"],
        "tuning_job": tuning["id"],
        "tuned_model": tuned.name,
        "batch": batch["id"],
    }


@pytest.fixture(scope="session")
def prepared_llm() -> str:
    """The default language model's directory exists (a worker prepares it on its first start; tests that read its
    tokenizer on the web side may run before any worker has)."""
    from capabilities.default_models import LLM
    from inference.backends import prepare
    from inference.registry import get_model_spec

    prepare(get_model_spec(LLM))
    return LLM


@pytest.fixture(scope="session")
def prepared_qwen() -> str:
    """The Qwen language model's directory exists (bin/test prepares it; a test run on its own may come first)."""
    from capabilities.default_models import QWEN
    from inference.backends import prepare
    from inference.registry import get_model_spec

    prepare(get_model_spec(QWEN))
    return QWEN
