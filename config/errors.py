"""Domain errors: every service failure a client can cause has a stable code and status."""


class DomainError(Exception):
    """Base class. Subclasses set ``code`` (snake_case, part of the API contract) and ``status``."""

    code = "domain_error"
    status = 400
    default_message = "The request cannot be carried out."
    retry_after: int | None = None  # seconds; sent as a Retry-After header when set

    def __init__(self, message: str | None = None, *, fields: dict | None = None):
        self.message = message or self.default_message
        self.fields = fields or {}
        super().__init__(self.message)


class InsufficientFunds(DomainError):
    code = "insufficient_funds"
    status = 402
    default_message = "Not enough coins."


class WalletFrozen(DomainError):
    code = "wallet_frozen"
    status = 423
    default_message = "This wallet is frozen."


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    status = 409
    default_message = "This Idempotency-Key was already used with a different request."


class NotFound(DomainError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class InvalidInput(DomainError):
    code = "validation_error"
    status = 400
    default_message = "Invalid input."


class AgeRestricted(DomainError):
    code = "age_restricted"
    status = 403
    default_message = "You must be 18 or older to do this."


class LimitExceeded(DomainError):
    code = "limit_exceeded"
    status = 403
    default_message = "This would exceed your limit."


class ServiceBusy(DomainError):
    code = "service_busy"
    status = 503
    default_message = "Too busy right now; please try again shortly."
    retry_after = 10
