"""Production settings pass Django's deployment checks, with secure cookies and headers."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from django.conf import settings


def _production_env() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "ALLIANCE_SECURE": "1",
        "ALLIANCE_SSL_REDIRECT": "1",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "alliance.example.com",
    }


def test_check_deploy_is_clean_under_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_make_cookies_secure_and_send_hsts():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0, "
        "s.DEBUG)"
    )
    env = {**_production_env(), "DJANGO_SETTINGS_MODULE": "alliance.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["True", "True", "True", "True", "False"], result.stderr
