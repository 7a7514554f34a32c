from django.core.management.base import BaseCommand, CommandError

from inference.registry import model_ready, model_specs


class Command(BaseCommand):
    help = (
        "Converts what needs converting (the language models' GGUF files into model directories) and checks every "
        "model. Idempotent."
    )

    def handle(self, *args: object, **options: object) -> None:
        from inference.backends import prepare

        missing = []
        for spec in model_specs().values():
            try:
                prepare(spec)
            except Exception as exc:  # noqa: BLE001 - report every model, then fail once
                self.stderr.write(f"{spec.name}: preparation failed: {exc}")
            ready, detail = model_ready(spec)
            self.stdout.write(f"{spec.name}: {'ready' if ready else 'missing'} ({detail})")
            if not ready:
                missing.append(spec.name)
        if missing:
            raise CommandError(
                f"Models not available: {', '.join(missing)}. Set their sources in ALLIANCE_MODELS_FILE."
            )
