"""Memberships: tiers, joining, gifting, cancelling and the monthly renewal (by concern, one
module each). Other apps and the views import from here."""

from memberships.services.booking import WEBHOOK_TYPES
from memberships.services.errors import (
    AlreadyMember,
    MembershipEnded,
    MembershipNotFound,
    SelfMembership,
    TierLimit,
    TierNotFound,
    UnknownRecipient,
)
from memberships.services.gifting import membership_gift
from memberships.services.joining import JoinResult, membership_cancel, membership_join
from memberships.services.notices import (
    membership_notices_send,
    membership_notices_send_all,
    notices_mark_sent,
    notices_pending,
)
from memberships.services.periods import add_months, renewal_price
from memberships.services.renewals import RenewalRun, memberships_renew
from memberships.services.tiers import NAME_MAX, PERKS_MAX, tier_create, tier_update

__all__ = [
    "NAME_MAX",
    "PERKS_MAX",
    "WEBHOOK_TYPES",
    "AlreadyMember",
    "JoinResult",
    "MembershipEnded",
    "MembershipNotFound",
    "RenewalRun",
    "SelfMembership",
    "TierLimit",
    "TierNotFound",
    "UnknownRecipient",
    "add_months",
    "membership_cancel",
    "membership_gift",
    "membership_join",
    "membership_notices_send",
    "membership_notices_send_all",
    "memberships_renew",
    "notices_mark_sent",
    "notices_pending",
    "renewal_price",
    "tier_create",
    "tier_update",
]
