"""The signal that something an API key is authorised by (a partner, a key, a credential) was changed by
QuerySet.update(), which sends no model signal (partners.models.AuthStateQuerySet sends this one); partners.signals
invalidates the authenticated keys every process keeps on it, as on a save or a delete."""

from __future__ import annotations

from django.dispatch import Signal

auth_state_updated = Signal()  # sender: the model class
