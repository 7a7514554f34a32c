"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright for Python."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings

from tests.services import require_services

CHROMIUM = os.environ.get("ALLIANCE_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"


def skip_or_fail_without_browser() -> None:
    reason = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "needs the playwright package (requirements-dev.txt)"
    if reason is None and not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        reason = f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
    if reason is None:
        return
    if require_services():
        pytest.fail(reason + " (ALLIANCE_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def screenshot_dir(tmp_path: Path) -> Path:
    """docs/screenshots when ALLIANCE_SCREENSHOTS=1 (to refresh the docs), else the test's own folder."""
    return SCREENSHOTS if os.environ.get("ALLIANCE_SCREENSHOTS") == "1" else tmp_path
