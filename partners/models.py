from __future__ import annotations

import datetime as dt
import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from partners.auth_state import auth_state_updated
from partners.scopes import capability_scopes


class AuthStateQuerySet(models.QuerySet):
    """The queryset of the models an authenticated API key carries (Partner, ApiKey, ApiKeyCredential):
    QuerySet.update() sends no model signal, so it sends partners.auth_state's, on which partners.signals
    invalidates every process's authenticated keys (partners.auth_cache), as on saves and deletes. A model's
    `auth_neutral_fields` (an API key's last use) change nothing a request is authorised by and invalidate nothing."""

    def update(self, **kwargs: object) -> int:
        updated = super().update(**kwargs)
        if updated and not set(kwargs) <= set(getattr(self.model, "auth_neutral_fields", ())):
            auth_state_updated.send(sender=self.model)
        return updated

    update.alters_data = True  # type: ignore[attr-defined]


class Sector(models.TextChoices):
    IT = "it", _("IT")
    FINANCE = "finance", _("Finance")
    EDUCATION = "education", _("Education")
    MEDICAL = "medical", _("Medical")
    MANUFACTURING = "manufacturing", _("Manufacturing")
    TELECOM = "telecom", _("Telecom")
    CONTENT = "content", _("Content")


class Tier(models.TextChoices):
    LAB = "lab", _("Lab")
    FOUNDING = "founding", _("Founding")
    STRATEGIC = "strategic", _("Strategic")
    STANDARD = "standard", _("Standard")


class Partner(models.Model):
    objects = AuthStateQuerySet.as_manager()

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=200, unique=True)
    sector = models.CharField(max_length=32, choices=Sector.choices)
    tier = models.CharField(max_length=32, choices=Tier.choices, default=Tier.STANDARD)
    founding_member = models.BooleanField(default=False)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")
    website = models.URLField(blank=True)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    listed = models.BooleanField(
        default=False, help_text="Shown in the public directory (/partners/ and GET /api/v1/partners)."
    )
    webhook_secret_version = models.PositiveIntegerField(
        default=1, help_text="Raised by each rotation of the webhook signing secret, which is derived from it."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Admin")
    DEVELOPER = "developer", _("Developer")
    VIEWER = "viewer", _("Viewer")


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "partner"], name="unique_membership")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.partner} ({self.role})"


def invitation_token_hash(raw: str) -> str:
    """What is stored of an invitation link's token: its SHA-256 (the token is 256 random bits, so no salt)."""
    return hashlib.sha256(raw.encode()).hexdigest()


class Invitation(models.Model):
    """An offer of a membership, sent by email; the link's token is kept only as its SHA-256 hash. Used once (accepted
    or declined), revocable while pending, and void after expires_at."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(help_text="The address the link was sent to (lower case).")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    declined_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["partner", "email"], name="invitation_partner_email")]

    def __str__(self) -> str:
        return f"{self.email} → {self.partner} ({self.role})"

    def state(self, now: dt.datetime) -> str:
        """pending, accepted, declined, revoked or expired."""
        if self.accepted_at:
            return "accepted"
        if self.declined_at:
            return "declined"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "pending"


class ApiKey(models.Model):
    """A stable key identity; its secrets are ApiKeyCredentials, so rotation keeps the id."""

    objects = AuthStateQuerySet.as_manager()
    auth_neutral_fields = frozenset({"last_used_at"})

    public_id = models.CharField(max_length=32, unique=True)
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    scopes = models.JSONField(
        default=list, blank=True, help_text="Capability and resource scopes (partners.scopes); empty means all."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.name})"

    def allows(self, scope: str) -> bool:
        """Whether the key holds a scope: a capability's name or a resource scope (partners.scopes)."""
        return not self.scopes or scope in self.scopes

    def allowed_capabilities(self) -> list[str] | None:
        """The capabilities whose jobs this key may submit and see; None: all of them."""
        return None if not self.scopes else capability_scopes(self.scopes)


class ApiKeyCredential(models.Model):
    """One secret of a key: a public prefix for lookup and the SHA-512 hash of the secret."""

    objects = AuthStateQuerySet.as_manager()

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="credentials")
    prefix = models.CharField(max_length=16, unique=True)
    hashed_secret = models.CharField(max_length=128)
    created_at = models.DateTimeField(auto_now_add=True)
    valid_until = models.DateTimeField(null=True, blank=True, help_text="Set when rotated: the grace period's end.")


class Quota(models.Model):
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="quotas")
    capability = models.CharField(max_length=64)
    monthly_units = models.PositiveBigIntegerField()
    rpm = models.PositiveIntegerField(help_text="Requests per minute, per API key.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["partner", "capability"], name="unique_quota")]

    def __str__(self) -> str:
        return f"{self.partner} {self.capability}: {self.monthly_units}/month, {self.rpm} rpm"


class QuotaPeriod(models.Model):
    """Units used of a quota in one calendar month; consumed by one conditional UPDATE."""

    quota = models.ForeignKey(Quota, on_delete=models.CASCADE, related_name="periods")
    month = models.DateField(help_text="First day of the month (UTC).")
    used = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["quota", "month"], name="unique_quota_period")]


class UsageKind(models.TextChoices):
    CHARGE = "charge", "Charge"
    REFUND = "refund", "Refund"


class UsageRecord(models.Model):
    """The ledger: one charge per job, and at most one refund."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="usage_records")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL)
    capability = models.CharField(max_length=64)
    job_id = models.UUIDField()
    kind = models.CharField(max_length=8, choices=UsageKind.choices)
    units = models.PositiveBigIntegerField()
    month = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job_id", "kind"], name="one_charge_one_refund_per_job")]
        indexes = [models.Index(fields=["partner", "created_at"], name="usage_partner_created")]


class AuditEvent(models.Model):
    partner = models.ForeignKey(Partner, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.CharField(max_length=200, help_text="user:<username>, key:<id> or system")
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["partner", "-created_at"], name="audit_partner_created")]
        constraints = [models.CheckConstraint(condition=~Q(action=""), name="audit_action_not_empty")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"


class ApplicationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DECLINED = "declined", "Declined"


class Application(models.Model):
    """A company's request to join the alliance, made on the public "Join the alliance" page; not a partner until an
    operator approves it (which creates the partner and invites the contact as its owner)."""

    company_name = models.CharField(max_length=200)
    sector = models.CharField(max_length=32, choices=Sector.choices)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    website = models.URLField(blank=True)
    contact_name = models.CharField(max_length=200)
    contact_email = models.EmailField(help_text="Lower case.")
    purpose = models.TextField(help_text="What the company wants to build with the alliance.")
    accepted_terms_at = models.DateTimeField()
    submitted_from = models.GenericIPAddressField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ApplicationStatus.choices, default=ApplicationStatus.PENDING)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decline_reason = models.TextField(blank=True)
    partner = models.ForeignKey(Partner, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["contact_email", "status"], name="application_email_status"),
            models.Index(fields=["submitted_from", "created_at"], name="application_address_created"),
        ]

    def __str__(self) -> str:
        return f"{self.company_name} ({self.get_status_display().lower()})"
