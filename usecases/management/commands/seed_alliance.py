from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.text import slugify

from partners.models import Partner
from partners.services import partner_create
from usecases.models import UseCase, UseCaseStatus
from usecases.runs import recipe_validate
from usecases.seed import FOUNDING_PARTNERS, SHOWCASES

NOT_FIELDS = ("partner", "recordings", "recipe", "tuning")


class Command(BaseCommand):
    help = "Loads the founding partners and showcases (with their recipes) of the alliance. Idempotent."

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        created = 0
        for entry in FOUNDING_PARTNERS:
            if Partner.objects.filter(slug=slugify(entry["name"])).exists():
                continue
            partner_create(
                founding_member=True,
                listed=True,  # the founding members are in the public directory
                tier=entry.get("tier", "founding"),
                **{k: v for k, v in entry.items() if k != "tier"},
            )
            created += 1
        showcases = 0
        for entry in SHOWCASES:
            partner = Partner.objects.get(slug=entry["partner"])
            recipe = recipe_validate(partner=partner, recipe=entry.get("recipe", {}))
            usecase, made = UseCase.objects.get_or_create(
                slug=slugify(entry["title"]),
                defaults={
                    **{k: v for k, v in entry.items() if k not in NOT_FIELDS},
                    "partner": partner,
                    "recipe": recipe,
                    "status": UseCaseStatus.PUBLISHED,
                },
            )
            if not made and recipe and not usecase.recipe:  # a showcase seeded before recipes existed
                UseCase.objects.filter(pk=usecase.pk).update(recipe=recipe)
            showcases += made
            if not made:  # a database seeded before the Korean texts existed gets them, once
                korean = {name: entry[name] for name in ("title_ko", "summary_ko", "story_ko") if name in entry}
                UseCase.objects.filter(slug=slugify(entry["title"]), title_ko="").update(**korean)
        self.stdout.write(f"seed_alliance: {created} partners and {showcases} showcases added")
