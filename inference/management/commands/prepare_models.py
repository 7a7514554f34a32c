from django.core.management.base import BaseCommand, CommandError

from inference.registry import model_ready, model_specs


class Command(BaseCommand):
    help = "Checks (and converts where needed) every model of the registry so workers start fast. Idempotent."

    def handle(self, *args: object, **options: object) -> None:
        missing = []
        for spec in model_specs().values():
            ready, detail = model_ready(spec)
            self.stdout.write(f"{spec.name}: {'ready' if ready else 'missing'} ({detail})")
            if not ready:
                missing.append(spec.name)
        if missing:
            raise CommandError(
                f"Models not available: {', '.join(missing)}. Set their sources in ALLIANCE_MODELS_FILE."
            )
