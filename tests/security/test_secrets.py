"""No secret anyone can compute: the distributed mode refuses to start without its three secrets, the embedded
default generates random ones on its first start and keeps them in var/, and no key is derived from another."""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from alliance import local_secrets
from inference.management.commands.up import Command as UpCommand

SECRET_NAMES = ("DJANGO_SECRET_KEY", "ALLIANCE_DATA_KEY", "ALLIANCE_WEBHOOK_SIGNING_KEY")
PROBE = """
import json, django
from django.core.exceptions import ImproperlyConfigured
django.setup()
from django.conf import settings

def value(name):
    try:
        return getattr(settings, name)
    except ImproperlyConfigured as exc:
        return f"refused: {exc}"

print(json.dumps([value(name) for name in ("SECRET_KEY", "ALLIANCE_DATA_KEY", "ALLIANCE_WEBHOOK_SIGNING_KEY")]))
"""


def _data_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _complete() -> dict[str, str]:
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "ALLIANCE_DATA_KEY": _data_key(),
        "ALLIANCE_WEBHOOK_SIGNING_KEY": secrets.token_urlsafe(50),
    }


def _start(var_dir: Path, **overrides: str) -> subprocess.CompletedProcess:
    """A process loading the settings with only `overrides` for the secrets, DATABASE_URL and DJANGO_DEBUG."""
    dropped = (*SECRET_NAMES, "DATABASE_URL", "DJANGO_DEBUG", "ALLIANCE_DATA_KEYS_OLD")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(DJANGO_SETTINGS_MODULE="alliance.settings", ALLIANCE_VAR_DIR=str(var_dir), **overrides)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


DISTRIBUTED = "postgres://postgres@127.0.0.1:5432/anything"


@pytest.mark.parametrize("missing", SECRET_NAMES)
def test_the_distributed_mode_refuses_to_start_without_each_secret_naming_it(tmp_path, missing):
    values = {k: v for k, v in _complete().items() if k != missing}
    refused = _start(tmp_path, DATABASE_URL=DISTRIBUTED, **values)
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr and f"{missing} is required" in refused.stderr


def test_the_distributed_mode_does_not_read_a_secrets_file_left_in_var(tmp_path):
    local_secrets.ensure(tmp_path / local_secrets.FILENAME)
    refused = _start(tmp_path, DATABASE_URL=DISTRIBUTED)
    assert refused.returncode != 0 and "DJANGO_SECRET_KEY is required" in refused.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DJANGO_SECRET_KEY", "change-me", "placeholder"),
        ("DJANGO_SECRET_KEY", "insecure-embedded-default-change-me-in-production-0123456789", "placeholder"),
        ("ALLIANCE_DATA_KEY", "not-base64-of-32-bytes", "exactly 32 bytes"),
        ("ALLIANCE_DATA_KEY", base64.urlsafe_b64encode(b"short").decode(), "exactly 32 bytes"),
        ("ALLIANCE_WEBHOOK_SIGNING_KEY", "changeme", "placeholder"),
    ],
)
def test_a_placeholder_or_malformed_secret_is_refused_in_every_mode(tmp_path, name, value, message):
    for mode in ({"DATABASE_URL": DISTRIBUTED}, {}):
        refused = _start(tmp_path, **{**_complete(), name: value, **mode})
        assert refused.returncode != 0 and name in refused.stderr and message in refused.stderr, refused.stderr


def test_the_webhook_signing_key_must_differ_from_the_secret_key(tmp_path):
    values = _complete()
    values["ALLIANCE_WEBHOOK_SIGNING_KEY"] = values["DJANGO_SECRET_KEY"]
    refused = _start(tmp_path, DATABASE_URL=DISTRIBUTED, **values)
    assert refused.returncode != 0
    assert "ALLIANCE_WEBHOOK_SIGNING_KEY must differ from DJANGO_SECRET_KEY" in refused.stderr


def test_the_distributed_mode_starts_with_the_three_secrets(tmp_path):
    values = _complete()
    started = _start(tmp_path, DATABASE_URL=DISTRIBUTED, **values)
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout) == [values[name] for name in SECRET_NAMES]


def test_the_embedded_default_has_no_secret_until_up_generates_them(tmp_path):
    """No fixed fallback: before `up`, a process of the embedded default starts with empty secrets (whatever
    needs one refuses), never with a key anyone could compute."""
    started = _start(tmp_path)
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout) == ["refused: The SECRET_KEY setting must not be empty.", "", ""]


def test_up_generates_random_secrets_once_keeps_them_0600_and_every_process_reads_them(tmp_path, settings):
    settings.ALLIANCE_SECRETS_FILE = tmp_path / local_secrets.FILENAME
    for setting in local_secrets.SETTINGS.values():
        setattr(settings, setting, "")
    UpCommand()._keep_secrets()  # what `manage.py up` does first, before migrating
    path = tmp_path / local_secrets.FILENAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kept = local_secrets.read(path)
    assert set(kept) == set(SECRET_NAMES) and len(set(kept.values())) == 3
    assert local_secrets.decode_data_key(kept["ALLIANCE_DATA_KEY"]) is not None
    # This process now uses them, and so does every process started afterwards (the web, the worker).
    in_use = [settings.SECRET_KEY, settings.ALLIANCE_DATA_KEY, settings.ALLIANCE_WEBHOOK_SIGNING_KEY]
    assert in_use == [kept[name] for name in SECRET_NAMES]
    assert json.loads(_start(tmp_path).stdout) == [kept[name] for name in SECRET_NAMES]
    # A second start keeps them; a variable set in the environment wins over the file.
    UpCommand()._keep_secrets()
    assert local_secrets.read(path) == kept
    own = secrets.token_urlsafe(50)
    assert json.loads(_start(tmp_path, DJANGO_SECRET_KEY=own).stdout)[0] == own
    # Another installation gets other secrets.
    other = tmp_path / "other" / local_secrets.FILENAME
    assert set(local_secrets.ensure(other)[0].values()).isdisjoint(kept.values())


def test_two_processes_generating_at_once_agree_on_one_set(tmp_path):
    path = tmp_path / local_secrets.FILENAME
    code = (
        "import json, sys; from pathlib import Path; from alliance import local_secrets; "
        "print(json.dumps(local_secrets.ensure(Path(sys.argv[1]))[0]))"
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=settings.BASE_DIR, stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    answers = [json.loads(run.communicate(timeout=60)[0]) for run in runs]
    assert all(answer == local_secrets.read(path) for answer in answers)


def test_the_data_key_and_webhook_secrets_do_not_follow_the_secret_key(settings, partner):
    """Rotating DJANGO_SECRET_KEY (old key in DJANGO_SECRET_KEY_FALLBACKS) changes neither the data key nor
    partners' webhook secrets: the data key is no longer derived from it."""
    from inference.encryption import decrypt_for, encrypt_for
    from inference.webhook_security import signing_secret

    blob = encrypt_for(partner, b"rows")
    secret = signing_secret(partner)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = secrets.token_urlsafe(50)
    assert decrypt_for(partner, blob) == b"rows"
    assert signing_secret(partner) == secret


def test_without_a_data_key_encryption_refuses_instead_of_deriving_one(settings, partner):
    from django.core.exceptions import ImproperlyConfigured

    from inference.encryption import encrypt_for
    from inference.webhook_security import signing_secret

    settings.ALLIANCE_DATA_KEY = ""
    settings.ALLIANCE_WEBHOOK_SIGNING_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="ALLIANCE_DATA_KEY is not set"):
        encrypt_for(partner, b"rows")
    with pytest.raises(ImproperlyConfigured, match="ALLIANCE_WEBHOOK_SIGNING_KEY is not set"):
        signing_secret(partner)
