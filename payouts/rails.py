"""The payout rails. Stripe Connect is the only one that talks to a network.

This module is the one place payouts talk to Stripe. It uses its own ``StripeClient`` (never
the global ``stripe.api_base``), pointed at ``STRIPE_CONNECT_API_BASE`` — in tests a small
HTTP fake of the Connect endpoints localstripe lacks. Stripe's own network retries are off:
the Celery task retries with backoff, always with the same idempotency key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import stripe
from django.conf import settings

from config.errors import DomainError


class RailError(DomainError):
    """The rail refused for good (bad destination, account closed, ...): the payout fails."""

    code = "payout_rail_error"
    status = 502
    default_message = "The payout provider refused the request."

    def __init__(self, message: str | None = None, *, failure_code: str = "rail_error"):
        super().__init__(message)
        self.failure_code = failure_code


class RailUnavailable(DomainError):
    """A network error, timeout, rate limit or 5xx: try again later with the same key."""

    code = "payout_rail_unavailable"
    status = 503
    default_message = "The payout provider could not be reached. Please try again."


_T = TypeVar("_T")


@dataclass(frozen=True)
class Transfer:
    id: str
    amount_minor: int
    currency: str
    destination: str
    payout_id: int | None
    reversed: bool


@dataclass(frozen=True)
class ConnectAccount:
    id: str
    payouts_enabled: bool


def _client() -> stripe.StripeClient:
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_CONNECT_API_BASE},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT),
    )


def _call(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Map Stripe's errors onto ours: transient ones are retried, the rest fail the payout."""
    try:
        return fn(*args, **kwargs)
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise RailUnavailable(str(exc.user_message or exc))
    except stripe.APIError as exc:  # 5xx
        raise RailUnavailable(str(exc.user_message or exc))
    except stripe.IdempotencyError as exc:
        # Same key, different parameters, or the first request is still in flight: never
        # a reason to fail the payout; the next attempt (or reconciliation) settles it.
        raise RailUnavailable(str(exc.user_message or exc))
    except stripe.StripeError as exc:
        if exc.http_status and exc.http_status >= 500:
            raise RailUnavailable(str(exc.user_message or exc))
        failure_code = (exc.code or type(exc).__name__).lower()[:64]
        raise RailError(str(exc.user_message or exc), failure_code=failure_code)


def _exponent(currency: str) -> int:
    return 0 if currency.upper() in {"JPY", "KRW", "VND", "CLP", "ISK", "HUF", "TWD", "UGX"} else 2


def to_minor(amount: Decimal, currency: str) -> int:
    return int((amount * (10 ** _exponent(currency))).to_integral_value())


def from_minor(amount_minor: int, currency: str) -> Decimal:
    return Decimal(amount_minor) / Decimal(10 ** _exponent(currency))


def _plain(obj: Any) -> dict[str, Any]:
    """stripe-python 16 objects are not dicts any more."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _transfer(stripe_obj: Any) -> Transfer:
    obj = _plain(stripe_obj)
    metadata = obj.get("metadata") or {}
    payout_id = metadata.get("payout_id")
    return Transfer(
        id=obj["id"],
        amount_minor=int(obj["amount"]),
        currency=str(obj["currency"]).upper(),
        destination=obj.get("destination") or "",
        payout_id=int(payout_id) if payout_id and str(payout_id).isdigit() else None,
        reversed=bool(obj.get("reversed")) or bool(obj.get("amount_reversed")),
    )


# --- Connect accounts -----------------------------------------------------------------------


def connect_account_create(*, email: str, creator_id: int) -> ConnectAccount:
    account = _call(
        _client().v1.accounts.create,
        {
            "type": "express",
            "country": settings.PAYOUT_CONNECT_COUNTRY,
            "email": email or None,
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"creator_id": str(creator_id)},
        },
        {"idempotency_key": f"connect-account-{creator_id}"},
    )
    plain = _plain(account)
    return ConnectAccount(id=plain["id"], payouts_enabled=bool(plain.get("payouts_enabled")))


def connect_account_retrieve(account_id: str) -> ConnectAccount:
    plain = _plain(_call(_client().v1.accounts.retrieve, account_id))
    return ConnectAccount(id=plain["id"], payouts_enabled=bool(plain.get("payouts_enabled")))


def connect_onboarding_url(*, account_id: str, refresh_url: str, return_url: str) -> str:
    link = _call(
        _client().v1.account_links.create,
        {
            "account": account_id,
            "refresh_url": refresh_url,
            "return_url": return_url,
            "type": "account_onboarding",
        },
    )
    return str(link["url"])


# --- Transfers ------------------------------------------------------------------------------


def transfer_create(
    *, payout_id: int, amount_minor: int, currency: str, destination: str
) -> Transfer:
    """Send a payout. The idempotency key is the payout's: a retry replays the first answer."""
    transfer = _call(
        _client().v1.transfers.create,
        {
            "amount": amount_minor,
            "currency": currency.lower(),
            "destination": destination,
            "transfer_group": f"payout-{payout_id}",
            "metadata": {"payout_id": str(payout_id)},
        },
        {"idempotency_key": f"payout-{payout_id}"},
    )
    return _transfer(transfer)


def transfer_find(*, payout_id: int) -> Transfer | None:
    """A transfer already made for this payout, found by its group (idempotency keys expire
    after 24 hours at Stripe; the transfer group does not)."""
    page = _call(
        _client().v1.transfers.list, {"transfer_group": f"payout-{payout_id}", "limit": 10}
    )
    for obj in page.data:
        return _transfer(obj)
    return None


def transfers_since(created_gte: int) -> Iterator[Transfer]:
    page = _call(_client().v1.transfers.list, {"created": {"gte": created_gte}, "limit": 100})
    while True:
        yield from (_transfer(obj) for obj in page.data)
        if not page.has_more or not page.data:
            return
        page = _call(
            _client().v1.transfers.list,
            {"created": {"gte": created_gte}, "limit": 100, "starting_after": page.data[-1]["id"]},
        )
