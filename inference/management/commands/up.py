"""The embedded default in one foreground process tree: migrate, seed, prepare models, serve and work."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from alliance import local_secrets
from alliance.mail import mail_destination
from alliance.web import web_command
from inference.worker import worker_command
from partners.models import ApiKey, Partner
from partners.services import api_key_issue, api_key_revoke

DEMO_KEY_NAME = "up: demo"
DEMO_PARTNER = "lg-ai-research"


def _is_set(setting: str) -> bool:
    try:
        return bool(getattr(settings, setting))
    except ImproperlyConfigured:  # Django's answer for an empty SECRET_KEY
        return False


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Runs the whole platform on this machine: web server, worker and scheduler. Ctrl-C stops everything."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args: object, port: int, host: str, **options: object) -> None:
        settings.ALLIANCE_VAR_DIR.mkdir(parents=True, exist_ok=True)
        self._keep_secrets()
        call_command("migrate", interactive=False, verbosity=0)
        if not Partner.objects.exists():
            call_command("seed_alliance")
        call_command("prepare_models")
        if os.environ.get("ALLIANCE_RECORD_SHOWCASES", "1") != "0":
            call_command("record_showcases")  # only queues the jobs: the worker runs them once it is up
        call_command("collectstatic", interactive=False, verbosity=0)
        demo_key = self._fresh_demo_key()
        processes = self._start(host, port)
        self.stdout.write(
            f"\nThe platform is up at http://{host}:{port}/\n"
            f"A demo key for {DEMO_PARTNER} (shown once; replaced at the next start):\n  {demo_key}\n"
            f"Try:\n  curl -s -X POST 'http://{host}:{port}/api/v1/jobs?wait=30' "
            f"-H 'Authorization: Bearer {demo_key}' -H 'Content-Type: application/json' "
            '-d \'{"capability": "keyword_extraction", "input": {"text": "Alliance partners tune '
            "foundation models on their own data.\"}}'\n"
        )
        self.stdout.write(mail_destination() + ".\n")
        self._supervise(processes)

    def _keep_secrets(self) -> None:
        """The embedded default's secrets: those the environment leaves unset are generated on the first start and
        kept in ALLIANCE_SECRETS_FILE (0600), which this process and every process it starts read."""
        path = settings.ALLIANCE_SECRETS_FILE
        unset = [name for name, setting in local_secrets.SETTINGS.items() if not _is_set(setting)]
        if path is None or not unset:
            return
        kept, generated = local_secrets.ensure(path)
        path.chmod(0o600)
        for name in unset:
            setattr(settings, local_secrets.SETTINGS[name], kept[name])
        if generated:
            self.stdout.write(
                f"Generated {', '.join(generated)} in {path} (mode 0600). Keep that file and back it up: the "
                "datasets are encrypted under ALLIANCE_DATA_KEY."
            )

    def _fresh_demo_key(self) -> str:
        partner = Partner.objects.get(slug=DEMO_PARTNER)
        for old in ApiKey.objects.filter(partner=partner, name=DEMO_KEY_NAME, revoked_at__isnull=True):
            api_key_revoke(api_key=old, actor="system:up")
        _, raw = api_key_issue(partner=partner, name=DEMO_KEY_NAME, actor="system:up")
        return raw

    def _start(self, host: str, port: int) -> list[subprocess.Popen]:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "alliance.settings"}
        env.setdefault("ALLIANCE_SECURE", "0")  # `up` serves plain HTTP on this machine: cookies without Secure
        if not env.get("PROMETHEUS_MULTIPROC_DIR"):  # one folder, emptied at each start: /metrics sums web and worker
            metrics = settings.ALLIANCE_VAR_DIR / "metrics"
            shutil.rmtree(metrics, ignore_errors=True)
            metrics.mkdir(parents=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
        worker = worker_command(
            beat=True,
            concurrency=settings.CELERY_WORKER_CONCURRENCY,
            schedule=settings.ALLIANCE_VAR_DIR / "celerybeat-schedule",
        )
        web = web_command(bind=f"{host}:{port}", workers=1, access_log=True)  # ASGI: waits hold no thread
        return [subprocess.Popen(cmd, env=env, cwd=settings.BASE_DIR) for cmd in (worker, web)]

    def _supervise(self, processes: list[subprocess.Popen]) -> None:
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            while all(process.poll() is None for process in processes):
                time.sleep(0.5)
            self.stderr.write("a platform process exited; stopping the others")
        except KeyboardInterrupt:
            self.stdout.write("stopping")
        finally:
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
