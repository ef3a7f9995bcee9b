"""Card testing: declined purchases are counted, and past a limit refused before any card is tried.

Someone holding a list of stolen card numbers uses any endpoint that charges a card at once
(``POST /recharges/`` with a ``payment_method``) to learn which cards work. So every decline
gets the same generic answer (``failure_code`` ``card_declined``; Stripe's reason is kept for
staff: ``Recharge.decline_reason``, the admin and the log), and declines are counted in the
cache (Redis) per user, per client address and per card fingerprint (the same card behind
new PaymentMethods, across accounts). Each counter allows ``RECHARGE_DECLINES_MAX`` declines
in ``RECHARGE_DECLINE_WINDOW_SECONDS`` (5 an hour); past it, new purchases by that user, from
that address or with that card are refused with 429 ``too_many_declines`` and a Retry-After
until the window that began with the first decline runs out.

With Redis down the counters fail open, like the throttles: purchases still work.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from config.errors import DomainError

log = logging.getLogger(__name__)


class TooManyDeclines(DomainError):
    code = "too_many_declines"
    status = 429
    default_message = "Too many declined payments. Please try again later."


@dataclass(frozen=True)
class PurchaseOrigin:
    """Who is paying, from where, with which card (fingerprint; "" when Stripe gave none)."""

    user_id: int
    client_address: str
    card_fingerprint: str = ""


def _keys(origin: PurchaseOrigin) -> list[str]:
    keys = [f"declines:user:{origin.user_id}"]
    if origin.client_address:
        digest = hashlib.sha256(origin.client_address.encode()).hexdigest()[:32]
        keys.append(f"declines:addr:{digest}")
    if origin.card_fingerprint:
        digest = hashlib.sha256(origin.card_fingerprint.encode()).hexdigest()[:32]
        keys.append(f"declines:card:{digest}")
    return keys


def _window() -> int:
    return max(1, int(settings.RECHARGE_DECLINE_WINDOW_SECONDS))


def decline_check(*, origin: PurchaseOrigin) -> None:
    """Refuse (429 ``too_many_declines``) a purchase whose user, address or card has had too
    many declines in the current window."""
    limit = int(settings.RECHARGE_DECLINES_MAX)
    now = time.time()
    waits = []
    for key in _keys(origin):
        try:
            count = int(cache.get(key) or 0)
            until = float(cache.get(f"{key}:until") or 0)
        except (TypeError, ValueError):
            continue
        if count >= limit:
            waits.append(math.ceil(until - now) if until > now else _window())
    if waits:
        error = TooManyDeclines()
        error.retry_after = max(waits)
        raise error


def decline_record(*, origin: PurchaseOrigin, recharge_id: int, reason: str) -> None:
    """Count one declined card payment against the user, the address and the card."""
    window = _window()
    until = time.time() + window
    for key in _keys(origin):
        # add() opens a window (count and end together); incr() keeps its expiry, so the
        # window ends on its own and two declines at once both count.
        cache.add(key, 0, window)
        cache.add(f"{key}:until", until, window)
        try:
            cache.incr(key)
        except ValueError:  # the window ended between add and incr
            cache.set(key, 1, window)
            cache.set(f"{key}:until", until, window)
    log.warning(
        "card declined: recharge=%s user=%s address=%s card=%s reason=%s",
        recharge_id,
        origin.user_id,
        origin.client_address or "-",
        origin.card_fingerprint or "-",
        reason,
    )
