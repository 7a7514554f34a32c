from django.core.management.base import BaseCommand, CommandError, CommandParser

from alliance.errors import DomainError
from partners.models import Partner
from partners.services import quota_set


class Command(BaseCommand):
    help = "Sets a partner's monthly units and requests per minute for one capability."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("partner_slug")
        parser.add_argument("capability")
        parser.add_argument("--monthly-units", type=int, default=None)
        parser.add_argument("--rpm", type=int, default=None)

    def handle(
        self,
        *args: object,
        partner_slug: str,
        capability: str,
        monthly_units: int | None,
        rpm: int | None,
        **options: object,
    ) -> None:
        partner = Partner.objects.filter(slug=partner_slug).first()
        if partner is None:
            raise CommandError(f"No partner with slug {partner_slug!r}.")
        if (monthly_units is not None and monthly_units < 0) or (rpm is not None and rpm < 0):
            raise CommandError("Limits must not be negative.")
        try:
            quota = quota_set(
                partner=partner, capability=capability, monthly_units=monthly_units, rpm=rpm, actor="system:cli"
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"{partner.slug} {quota.capability}: {quota.monthly_units} units/month, {quota.rpm} rpm")
