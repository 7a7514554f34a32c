"""`python -m django worker_alive <hostname>`: exit 0 when that worker's heartbeat is live (a container healthcheck
that asks no worker anything, unlike `celery inspect ping`), else 1."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from monitoring.heartbeats import live_workers


class Command(BaseCommand):
    help = "Exit 0 when the named Celery worker (e.g. llm@host) has a live heartbeat."

    def add_arguments(self, parser) -> None:
        parser.add_argument("hostname")

    def handle(self, *args, hostname: str, **options) -> None:
        worker = next((w for w in live_workers() if w.hostname == hostname), None)
        if worker is None:
            raise CommandError(f"no live heartbeat from {hostname}")
        self.stdout.write(f"{hostname} alive: queues {','.join(worker.queues)}; models {','.join(worker.models)}")
