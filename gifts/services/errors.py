"""The gift path's domain errors (stable ``code``s, see config.errors)."""

from __future__ import annotations

from config.errors import DomainError, NotFound


class CreatorNotFound(NotFound):
    code = "creator_not_found"
    default_message = "There is no creator with that handle."


class CreatorCannotReceive(DomainError):
    code = "creator_cannot_receive"
    status = 403
    default_message = "This creator cannot receive gifts right now."


class SelfGift(DomainError):
    code = "self_gift"
    status = 400
    default_message = "You cannot send a gift to yourself."


class GiftNotFound(NotFound):
    code = "gift_not_found"
    default_message = "There is no gift with that name."


class GiftUnavailable(DomainError):
    code = "gift_unavailable"
    status = 400
    default_message = "This gift is not available right now."


class DailyLimitExceeded(DomainError):
    code = "daily_limit_exceeded"
    status = 403
    default_message = "This gift would exceed your daily gifting limit."


class MessageBlocked(DomainError):
    code = "message_blocked"
    status = 400
    default_message = "The message contains words that are not allowed."
