"""API keys: issued (shown once), rotated with a grace period under a stable id, revoked, authenticated."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from alliance.errors import Conflict, InvalidInput
from partners import auth_cache, keys
from partners import scopes as vocabulary
from partners.models import (
    ApiKey,
    ApiKeyCredential,
    Partner,
)
from partners.services.audit import audit_record


def _validate_scopes(scopes: Iterable[str]) -> list[str]:
    cleaned = sorted({scope.strip() for scope in scopes if scope.strip()})
    unknown = vocabulary.unknown_scopes(cleaned)
    if unknown:
        raise InvalidInput(
            f"Unknown scope: {', '.join(unknown)}. Capability scopes: {', '.join(vocabulary.CAPABILITY_SCOPES)}; "
            f"resource scopes: {', '.join(vocabulary.RESOURCE_SCOPES)}.",
            code="unknown_scope",
            param="scopes",
        )
    return cleaned


@transaction.atomic
def api_key_issue(
    *,
    partner: Partner,
    name: str,
    actor: str,
    scopes: Iterable[str] = (),
    expires_at: dt.datetime | None = None,
    created_by: AbstractBaseUser | None = None,
) -> tuple[ApiKey, str]:
    """Creates a key and returns it with its raw value, which is never stored and cannot be shown again."""
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("The expiry must lie in the future.", code="invalid_expiry", param="expires_at")
    api_key = ApiKey.objects.create(
        public_id=keys.generate_public_id(),
        partner=partner,
        name=name,
        scopes=_validate_scopes(scopes),
        expires_at=expires_at,
        created_by=created_by,
    )
    material = keys.generate_key_material()
    ApiKeyCredential.objects.create(api_key=api_key, prefix=material.prefix, hashed_secret=material.hashed_secret)
    audit_record(
        partner=partner,
        actor=actor,
        action="api_key.issued",
        target=api_key.public_id,
        data={"name": name, "scopes": api_key.scopes, "expires_at": expires_at.isoformat() if expires_at else None},
    )
    return api_key, material.raw


@transaction.atomic
def api_key_rotate(*, api_key: ApiKey, actor: str, grace_seconds: int = 24 * 3600) -> str:
    """A new secret under the same key id; the current ones stay valid for the grace period."""
    if api_key.revoked_at is not None:
        raise Conflict("A revoked key cannot be rotated.", code="key_revoked")
    grace_end = timezone.now() + dt.timedelta(seconds=max(0, grace_seconds))
    api_key.credentials.filter(valid_until__isnull=True).update(valid_until=grace_end)
    api_key.credentials.filter(valid_until__gt=grace_end).update(valid_until=grace_end)
    material = keys.generate_key_material()
    ApiKeyCredential.objects.create(api_key=api_key, prefix=material.prefix, hashed_secret=material.hashed_secret)
    audit_record(
        partner=api_key.partner,
        actor=actor,
        action="api_key.rotated",
        target=api_key.public_id,
        data={"grace_seconds": grace_seconds},
    )
    return material.raw


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: str) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(partner=api_key.partner, actor=actor, action="api_key.revoked", target=api_key.public_id)
    return api_key


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    """The key behind a raw value, or None; records last use at most once a minute."""
    credential = _credential_checked(raw_key)
    if credential is None:
        return None
    api_key = credential.api_key
    _note_last_use(api_key, timezone.now())
    return api_key


def api_key_authenticate_cached(raw_key: str) -> ApiKey | None:
    """api_key_authenticate from the process's short-lived copy when one is trusted (partners.auth_cache: any change
    of a key, credential or partner invalidates it at once), else from the database."""
    now = timezone.now()
    api_key, generation = auth_cache.lookup(raw_key, now.timestamp())
    if api_key is None:
        credential = _credential_checked(raw_key)
        if credential is None:
            return None
        api_key = credential.api_key
        valid_until = credential.valid_until.timestamp() if credential.valid_until is not None else None
        auth_cache.store(raw_key, api_key, valid_until=valid_until, generation=generation)
    if _note_last_use(api_key, now):
        auth_cache.last_used_noted(api_key)
    return api_key


def _credential_checked(raw_key: str) -> ApiKeyCredential | None:
    """The live credential a raw value matches (with its key and partner), or None."""
    material = keys.parse_raw_key(raw_key)
    if material is None:
        keys.hash_secret(raw_key)  # same work as a real check, so a malformed key answers no faster
        return None
    credential = ApiKeyCredential.objects.select_related("api_key__partner").filter(prefix=material.prefix).first()
    if credential is None:
        keys.hash_secret(material.secret)
        return None
    if not keys.secret_matches(material.secret, credential.hashed_secret):
        return None
    now = timezone.now()
    api_key = credential.api_key
    if (
        (credential.valid_until is not None and credential.valid_until <= now)
        or api_key.revoked_at is not None
        or (api_key.expires_at is not None and api_key.expires_at <= now)
        or not api_key.partner.is_active
    ):
        return None
    return credential


def _note_last_use(api_key: ApiKey, now: dt.datetime) -> bool:
    """Writes the key's last use when the one recorded is older than the resolution (a minute); True if written."""
    resolution = dt.timedelta(seconds=settings.ALLIANCE_API_KEY_LAST_USED_RESOLUTION_SECONDS)
    if api_key.last_used_at is not None and api_key.last_used_at > now - resolution:
        return False
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
    return True
