"""The memberships app's domain errors (stable codes, see docs/memberships.md)."""

from config.errors import DomainError, NotFound
from memberships.models import TIERS_MAX


class TierNotFound(NotFound):
    code = "tier_not_found"
    default_message = "This creator has no tier with that id."


class TierLimit(DomainError):
    code = "tier_limit"
    status = 409
    default_message = f"A creator offers {TIERS_MAX} tiers at most."


class AlreadyMember(DomainError):
    code = "already_member"
    status = 409
    default_message = "You are already a member on this tier."


class SelfMembership(DomainError):
    code = "self_membership"
    status = 400
    default_message = "You cannot join your own memberships."


class MembershipNotFound(NotFound):
    code = "membership_not_found"
    default_message = "There is no such membership."


class MembershipEnded(DomainError):
    code = "membership_ended"
    status = 409
    default_message = "This membership has already ended."


class UnknownRecipient(DomainError):
    code = "unknown_recipient"
    status = 400
    default_message = "A gift membership needs existing viewers as recipients."
