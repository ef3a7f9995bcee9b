"""The payout services' domain errors (stable ``code``s, see config.errors)."""

from __future__ import annotations

from config.errors import DomainError


class PayoutStateError(DomainError):
    code = "payout_state_conflict"
    status = 409
    default_message = "The payout is not in a state that allows this."


class PasswordIncorrect(DomainError):
    code = "password_incorrect"
    status = 403
    default_message = "That password is not right. Changing where payouts go needs your password."


class NotACreator(DomainError):
    code = "not_a_creator"
    status = 403
    default_message = "Only creators have payouts. Become a creator first."
