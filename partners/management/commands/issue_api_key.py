import datetime as dt

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from alliance.errors import DomainError
from partners.models import Partner
from partners.scopes import CAPABILITY_SCOPES, RESOURCE_SCOPES
from partners.services import api_key_issue


class Command(BaseCommand):
    help = "Issues an API key for a partner and prints the raw key alone on stdout (it is shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("partner_slug")
        parser.add_argument("--name", default="cli")
        parser.add_argument(
            "--scopes",
            default="",
            help=(
                "Comma-separated scopes; empty means all. Capabilities: "
                f"{', '.join(CAPABILITY_SCOPES)}. Resources: {', '.join(RESOURCE_SCOPES)}."
            ),
        )
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(
        self, *args: object, partner_slug: str, name: str, scopes: str, expires_in_days: int | None, **options: object
    ) -> None:
        partner = Partner.objects.filter(slug=partner_slug).first()
        if partner is None:
            raise CommandError(f"No partner with slug {partner_slug!r}.")
        if expires_in_days is not None and expires_in_days <= 0:
            raise CommandError("--expires-in-days must be positive.")
        expires_at = timezone.now() + dt.timedelta(days=expires_in_days) if expires_in_days else None
        try:
            _, raw = api_key_issue(
                partner=partner,
                name=name,
                scopes=scopes.split(",") if scopes else [],
                expires_at=expires_at,
                actor="system:cli",
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(raw)
