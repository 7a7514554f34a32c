"""Any saved or deleted key, credential or partner invalidates the authenticated keys every process keeps
(partners.auth_cache). QuerySet.update() sends no model signal: these models' queryset
(partners.models.AuthStateQuerySet) sends partners.auth_state's instead."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from partners import auth_cache
from partners.auth_state import auth_state_updated
from partners.models import ApiKey, ApiKeyCredential, Partner


@receiver(post_save, sender=ApiKey, dispatch_uid="partners.auth_cache.key_saved")
@receiver(post_save, sender=ApiKeyCredential, dispatch_uid="partners.auth_cache.credential_saved")
@receiver(post_save, sender=Partner, dispatch_uid="partners.auth_cache.partner_saved")
@receiver(post_delete, sender=ApiKey, dispatch_uid="partners.auth_cache.key_deleted")
@receiver(post_delete, sender=ApiKeyCredential, dispatch_uid="partners.auth_cache.credential_deleted")
@receiver(post_delete, sender=Partner, dispatch_uid="partners.auth_cache.partner_deleted")
@receiver(auth_state_updated, dispatch_uid="partners.auth_cache.updated")
def _keys_changed(sender: type, **_: Any) -> None:
    auth_cache.changed()
