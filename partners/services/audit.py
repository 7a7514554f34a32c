"""The audit log: who did what to which partner."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from partners.models import (
    ApiKey,
    AuditEvent,
    Partner,
)


def actor_for(*, user: AbstractBaseUser | None = None, api_key: ApiKey | None = None) -> str:
    if user is not None:
        return f"user:{user.get_username()}"
    if api_key is not None:
        return f"key:{api_key.public_id}"
    return "system"


def audit_record(
    *, partner: Partner | None, actor: str, action: str, target: str = "", data: dict | None = None
) -> AuditEvent:
    return AuditEvent.objects.create(partner=partner, actor=actor, action=action, target=target, data=data or {})
