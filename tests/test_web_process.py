"""The web process never imports torch or transformers: only workers do."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings

PROBE = """
import sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.test import Client
from django.urls import get_resolver
import alliance.wsgi, alliance.asgi, inference.tasks, inference.services, api.openai.views, api.waiting  # noqa
import inference.services.tuning_datasets, inference.services.tuning_jobs, inference.services.tuning_runs  # noqa
get_resolver().url_patterns
client = Client()
for path in ("/", "/playground/", "/api/schema/", "/api/v1/capabilities", "/v1/models"):
    client.get(path)
heavy = sorted(name for name in ("torch", "transformers", "sentence_transformers", "peft", "diffusers", "keybert")
               if name in sys.modules)
print("heavy:", heavy)
"""


def test_the_web_process_imports_no_model_library(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(DJANGO_SETTINGS_MODULE="alliance.settings", ALLIANCE_VAR_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "heavy: []" in result.stdout, result.stdout
