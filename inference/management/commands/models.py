import json
import subprocess
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from inference.registry import ModelSpec, model_ready, model_specs


class Command(BaseCommand):
    help = (
        "Lists each model of the registry: its family (queue), whether it is ready, the resident memory it adds to a "
        "worker (the registry's documented figure, or measured now with --measure) and its capabilities."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--measure",
            action="store_true",
            help="load each ready model in a fresh process and report the memory it adds and its load time",
        )

    def handle(self, *args: object, measure: bool, **options: object) -> None:
        for spec in model_specs().values():
            ready, detail = model_ready(spec)
            state = "ready" if ready else "MISSING"
            memory = self._measured(spec) if measure and ready else self._documented(spec)
            self.stdout.write(
                f"{spec.name:28} {spec.family:10} {state:8} {memory:34} {','.join(spec.capabilities):30} {detail}"
            )

    @staticmethod
    def _documented(spec: ModelSpec) -> str:
        figure = spec.options.get("rss_mb")
        return f"rss ~{figure} MB (documented)" if figure else "rss unknown (not documented)"

    def _measured(self, spec: ModelSpec) -> str:
        """inference.backends.memory in a fresh process: this process never imports torch."""
        run = subprocess.run(
            [sys.executable, "-m", "inference.backends.memory", spec.name],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            self.stderr.write(f"{spec.name}: measuring failed:\n{run.stderr[-2000:]}")
            return "rss not measured (load failed)"
        figures = json.loads(run.stdout.strip().splitlines()[-1])
        return f"rss {figures['rss_mb']} MB (measured, {figures['load_seconds']:g} s)"
