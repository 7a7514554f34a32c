from django.core.management.base import BaseCommand, CommandParser
from django.utils.text import slugify

from alliance.errors import DomainError
from usecases.models import UseCase
from usecases.runs import showcase_recordings_start
from usecases.seed import SHOWCASES
from usecases.showcase_tuning import showcase_tuning_record


class Command(BaseCommand):
    help = (
        "Starts the runs of the seeded showcases' recipes that become their recorded results (generated images, a "
        "counselling conversation, an answer), and for a showcase of a tuned model (the AI banker) the tuning job "
        "whose model then records them: real jobs the workers run in the background. Idempotent: a showcase with a "
        "recorded or running recording, or a tuning job under way, is left alone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slugs", nargs="*", help="Only these showcases (default: every seeded one).")

    def handle(self, *args: object, slugs: list[str], **options: object) -> None:
        started = tunings = 0
        for entry in SHOWCASES:
            slug = slugify(entry["title"])
            usecase = UseCase.objects.filter(slug=slug).select_related("partner").first()
            if usecase is None or (slugs and slug not in slugs):
                continue
            try:
                if entry.get("tuning"):
                    done, runs = showcase_tuning_record(
                        usecase=usecase, tuning=entry["tuning"], recordings=entry["recordings"]
                    )
                    tunings += done == "started"
                    started += runs
                    continue
                started += len(showcase_recordings_start(usecase=usecase, recordings=entry.get("recordings", [])))
            except DomainError as exc:
                self.stderr.write(f"record_showcases: {slug}: {exc.message}")
        self.stdout.write(f"record_showcases: {started} recipe runs and {tunings} tuning jobs started")
