"""Applications to join the alliance: submitted on the public page (rate-limited per address, a honeypot dropping
bots), confirmed to the contact by email, then approved by an operator (the partner is created with the chosen tier
and quotas, and the contact is invited as its owner) or declined with a reason. Each step is audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from alliance.errors import Conflict, InvalidInput, LimitReached
from capabilities import QUOTA_KEYS
from partners import ratelimit
from partners.models import Application, ApplicationStatus, Invitation, Partner, Sector, Tier
from partners.services.audit import actor_for, audit_record
from partners.services.invitations import _normalised_email, invitation_create_owner
from partners.services.members import partner_create
from partners.services.quotas import quota_set, tier_defaults


def _check_address(address: str | None, now: dt.datetime) -> None:
    if not address:
        return
    per_minute = settings.ALLIANCE_APPLICATIONS_PER_MINUTE
    window = ratelimit.hit(f"apply:{address}", per_minute)
    if not window.allowed:
        raise LimitReached(
            "Too many applications from your address; try again in a minute.",
            code="too_many_applications",
            retry_after=window.reset_seconds,
        )
    per_day = settings.ALLIANCE_APPLICATIONS_PER_DAY
    if Application.objects.filter(submitted_from=address, created_at__gt=now - dt.timedelta(days=1)).count() >= per_day:
        raise LimitReached(
            f"At most {per_day} applications a day can be sent from one address; try again tomorrow.",
            code="too_many_applications",
            retry_after=3600.0,
        )


@transaction.atomic
def application_submit(
    *,
    company_name: str,
    sector: str,
    country: str,
    website: str,
    contact_name: str,
    contact_email: str,
    purpose: str,
    accepted_terms: bool,
    address: str | None,
    honeypot: str = "",
    now: dt.datetime | None = None,
) -> Application | None:
    """Stores a pending application and emails its contact a confirmation. A filled honeypot (a field people never
    see) marks a bot: nothing is stored or sent, and None comes back so the caller answers as if it were accepted."""
    now = now or timezone.now()
    _check_address(address, now)
    if honeypot.strip():
        audit_record(partner=None, actor="system", action="application.trapped", data={"address": address or ""})
        return None
    if not accepted_terms:
        raise InvalidInput("Accept the alliance's terms to apply.", code="terms_not_accepted", param="accepted_terms")
    if sector not in Sector.values:
        raise InvalidInput(f"Unknown sector {sector!r}.", code="invalid_sector", param="sector")
    email = _normalised_email(contact_email)
    if Application.objects.filter(contact_email=email, status=ApplicationStatus.PENDING).exists():
        raise Conflict(
            "An application with this contact address is already waiting for a decision.",
            code="application_pending",
            param="contact_email",
        )
    application = Application.objects.create(
        company_name=company_name.strip(),
        sector=sector,
        country=country.strip().upper(),
        website=website.strip(),
        contact_name=contact_name.strip(),
        contact_email=email,
        purpose=purpose.strip(),
        accepted_terms_at=now,
        submitted_from=address,
    )
    audit_record(
        partner=None,
        actor=f"applicant:{email}",
        action="application.submitted",
        target=application.company_name[:200],
        data={"application": application.pk, "sector": sector},
    )
    body = render_to_string("partners/email/application_received.txt", {"application": application})
    send_mail(f"Your application to join the AI alliance: {application.company_name}", body, None, [email])
    return application


def _locked_pending(application: Application) -> Application:
    locked = Application.objects.select_for_update().get(pk=application.pk)
    if locked.status != ApplicationStatus.PENDING:
        raise Conflict(f"This application is already {locked.get_status_display().lower()}.", code="already_decided")
    return locked


@transaction.atomic
def application_approve(
    *,
    application: Application,
    operator: AbstractBaseUser,
    tier: str,
    monthly_units: int | None,
    rpm: int | None,
    link_for: Callable[[str], str],
    now: dt.datetime | None = None,
) -> tuple[Partner, Invitation]:
    """Creates the partner (tier, every capability's quota: the tier's defaults where None), invites the contact as
    its owner and emails the link (`link_for(token)`); if the email cannot be sent, nothing of it remains."""
    if tier not in Tier.values:
        raise InvalidInput(f"Unknown tier {tier!r}.", code="invalid_tier", param="tier")
    defaults = tier_defaults(tier)
    monthly_units = defaults["monthly_units"] if monthly_units is None else monthly_units
    rpm = defaults["rpm"] if rpm is None else rpm
    if monthly_units < 0 or rpm < 1:
        raise InvalidInput("Quotas are a non-negative monthly units and at least 1 rpm.", code="invalid_quota")
    now = now or timezone.now()
    locked = _locked_pending(application)
    slug = slugify(locked.company_name)
    taken = Partner.objects.filter(slug=slug).exists() or Partner.objects.filter(name=locked.company_name).exists()
    if not slug or taken:
        raise Conflict(f"A partner named {locked.company_name!r} already exists.", code="partner_exists")
    actor = actor_for(user=operator)
    partner = partner_create(
        name=locked.company_name,
        sector=locked.sector,
        tier=tier,
        country=locked.country,
        website=locked.website,
        actor=actor,
    )
    for capability in QUOTA_KEYS:
        quota_set(partner=partner, capability=capability, monthly_units=monthly_units, rpm=rpm, actor=actor)
    locked.status, locked.decided_at, locked.decided_by, locked.partner = (
        ApplicationStatus.APPROVED,
        now,
        operator,
        partner,
    )
    locked.save(update_fields=["status", "decided_at", "decided_by", "partner"])
    audit_record(
        partner=partner,
        actor=actor,
        action="application.approved",
        target=locked.contact_email,
        data={"application": locked.pk, "tier": tier, "monthly_units": monthly_units, "rpm": rpm},
    )
    invitation, token = invitation_create_owner(partner=partner, email=locked.contact_email, operator=operator, now=now)
    context = {
        "application": locked,
        "partner": partner,
        "link": link_for(token),
        "days": settings.ALLIANCE_INVITATION_DAYS,
    }
    body = render_to_string("partners/email/application_approved.txt", context)
    send_mail(f"Welcome to the AI alliance, {partner.name}", body, None, [locked.contact_email])
    return partner, invitation


@transaction.atomic
def application_decline(
    *, application: Application, operator: AbstractBaseUser, reason: str, now: dt.datetime | None = None
) -> Application:
    """Declines with a reason, which the contact is told by email."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Give the applicant a reason.", code="reason_required", param="reason")
    locked = _locked_pending(application)
    locked.status, locked.decided_at, locked.decided_by, locked.decline_reason = (
        ApplicationStatus.DECLINED,
        now or timezone.now(),
        operator,
        reason,
    )
    locked.save(update_fields=["status", "decided_at", "decided_by", "decline_reason"])
    audit_record(
        partner=None,
        actor=actor_for(user=operator),
        action="application.declined",
        target=locked.contact_email,
        data={"application": locked.pk, "company": locked.company_name, "reason": reason},
    )
    body = render_to_string("partners/email/application_declined.txt", {"application": locked})
    send_mail(f"Your application to join the AI alliance: {locked.company_name}", body, None, [locked.contact_email])
    return locked
