"""Writes of the account domain, one module per concern; the names below are its public surface."""

from partners.services.api_keys import (
    api_key_authenticate,
    api_key_authenticate_cached,
    api_key_issue,
    api_key_revoke,
    api_key_rotate,
)
from partners.services.applications import application_approve, application_decline, application_submit
from partners.services.audit import actor_for, audit_record
from partners.services.invitations import (
    invitation_accept,
    invitation_create,
    invitation_create_owner,
    invitation_decline,
    invitation_revoke,
    invitation_sign_up,
)
from partners.services.members import (
    membership_add,
    membership_remove,
    membership_set_role,
    partner_create,
    partner_set_active,
)
from partners.services.quotas import (
    UnitsState,
    month_start,
    next_month_start,
    quota_consume,
    quota_for,
    quota_release,
    quota_set,
    tier_defaults,
)
from partners.services.tiers import partner_set_tier
from partners.services.usage import (
    usage_charge,
    usage_charge_inserting,
    usage_charge_many,
    usage_refund,
    usage_refund_many,
)

__all__ = [
    "UnitsState",
    "actor_for",
    "api_key_authenticate",
    "api_key_authenticate_cached",
    "api_key_issue",
    "api_key_revoke",
    "api_key_rotate",
    "application_approve",
    "application_decline",
    "application_submit",
    "audit_record",
    "invitation_accept",
    "invitation_create",
    "invitation_create_owner",
    "invitation_decline",
    "invitation_revoke",
    "invitation_sign_up",
    "membership_add",
    "membership_remove",
    "membership_set_role",
    "month_start",
    "next_month_start",
    "partner_create",
    "partner_set_active",
    "partner_set_tier",
    "quota_consume",
    "quota_for",
    "quota_release",
    "quota_set",
    "tier_defaults",
    "usage_charge",
    "usage_charge_inserting",
    "usage_charge_many",
    "usage_refund",
    "usage_refund_many",
]
