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


class DatabaseUnavailable(DomainError):
    """PostgreSQL cannot be reached (down, restarting, in crash recovery) or dropped the
    connection mid-request. Nothing is half-written (every write is one transaction); a
    money request may or may not have committed, so retry it with the same Idempotency-Key."""

    code = "database_unavailable"
    status = 503
    default_message = (
        "The database is briefly unavailable. Try again in a few seconds; retry payments and "
        "gifts with the same Idempotency-Key."
    )
    retry_after = 5


# SQLSTATEs that mean "the database is not there right now" (beside a missing SQLSTATE, a
# client-side connection failure): class 08 connection exceptions, and the server shutting
# down (57P01 admin, 57P02 crash) or not yet accepting connections (57P03: starting up, in
# recovery).
_UNAVAILABLE_STATES = ("57P01", "57P02", "57P03")


def database_error(exc: BaseException) -> DomainError | None:
    """The answer for a transient database failure, or None when ``exc`` is not one.

    Lost or refused connections are 503 ``database_unavailable``; other operational errors
    the server reports (a deadlock, a serialization failure, a statement or lock timeout,
    too many connections) are 503 ``service_busy``. Programming and integrity errors stay
    what they are (a bug is a 500)."""
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, InterfaceError):
        return DatabaseUnavailable()
    if not isinstance(exc, OperationalError):
        return None
    state = getattr(exc.__cause__, "sqlstate", None)
    if state is None or state.startswith("08") or state in _UNAVAILABLE_STATES:
        return DatabaseUnavailable()
    return ServiceBusy()
