from django.core.management.base import BaseCommand

from inference.registry import model_ready, model_specs


class Command(BaseCommand):
    help = "Lists each model of the registry, its family (queue), its capabilities and whether it is ready."

    def handle(self, *args: object, **options: object) -> None:
        for spec in model_specs().values():
            ready, detail = model_ready(spec)
            state = "ready" if ready else "MISSING"
            self.stdout.write(f"{spec.name:24} {spec.family:10} {state:8} {','.join(spec.capabilities):30} {detail}")
