"""Services talking to Stripe outside any transaction: what a failure means for the client,
a short "Stripe is away" note, the lock a recharge is continued under, the Stripe Customer.

Used by the purchase in atomic phases (``wallets.services.purchase``) and the finisher of
abandoned purchases (``wallets.services.purchase_finish``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction

from config.errors import DomainError
from wallets import stripe_gateway as gateway
from wallets.models import StripeCustomer
from wallets.services.locks import lock_key, session_lock
from wallets.services.recharges import PaymentProviderError

if TYPE_CHECKING:
    from accounts.models import User


log = logging.getLogger(__name__)


class PaymentProviderUnavailable(DomainError):
    """Stripe could not be reached (connection error, timeout, 5xx). Nothing is lost: the
    recharge waits at its recovery point and a retry with the same key goes on from there."""

    code = "payment_provider_unavailable"
    status = 503
    default_message = (
        "The payment provider cannot be reached right now. Nothing was lost: please try "
        "again with the same Idempotency-Key in a few seconds."
    )
    retry_after = 10


def finish_each(ids: list[int], finish: Callable[[int], str], what: str) -> Counter[str]:
    """Finish each left-behind row by id (``finish`` returns its outcome), counting outcomes;
    stops at the first "Stripe is away": the next run of the beat goes on from there."""
    counts: Counter[str] = Counter()
    for row_id in ids:
        try:
            counts[finish(row_id)] += 1
        except DomainError as exc:
            log.warning("abandoned %s %s not finished: %s", what, row_id, exc.code)
            counts["stripe_unavailable"] += 1
            if isinstance(exc, PaymentProviderUnavailable):
                break
    return counts


# After Stripe could not be reached, purchases are refused at once for this long (a note in
# the cache, shared by the processes), instead of each holding a web thread through the
# client's timeouts and retries: the web server keeps serving everything else meanwhile.
STRIPE_AWAY_KEY = "stripe:away"
STRIPE_AWAY_SECONDS = 5


def _provider_error(exc: Exception, what: str) -> DomainError:
    """The error for a Stripe failure that is nobody's fault at our end of the request."""
    log.warning("stripe: %s failed: %s", what, exc)
    if gateway.is_unavailable(exc):
        cache.set(STRIPE_AWAY_KEY, 1, timeout=STRIPE_AWAY_SECONDS)
        return PaymentProviderUnavailable()
    return PaymentProviderError()


def _stripe_away_check() -> None:
    """503 at once while Stripe was found away in the last few seconds (Redis down: no note,
    every request tries Stripe itself)."""
    if cache.get(STRIPE_AWAY_KEY):
        raise PaymentProviderUnavailable()


# --- Locks ----------------------------------------------------------------------------------


@contextmanager
def _recharge_lock(recharge_id: int, *, wait: float) -> Iterator[bool]:
    """A session advisory lock on one recharge, held across Stripe calls (no transaction is
    open meanwhile), on a lock connection of its own that bypasses a transaction-pooling
    PgBouncer (``wallets.services.locks``). Yields whether it is held; waits up to ``wait``
    seconds for a copy of the request that holds it. A process that dies drops it with its
    connection."""
    with session_lock(f"applause:recharge:{recharge_id}", wait=wait) as held:
        yield held


def _user_purchases_lock(user_id: int) -> None:
    """Inside phase 1: one user's new purchases queue here (transaction-scoped), so two at
    once cannot both slip under the daily limit. Nothing else waits on it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s)", [lock_key(f"applause:purchases:{user_id}")]
            )


def _lock_wait() -> float:
    # Long enough for a copy in flight to finish its Stripe calls, short of the web server's
    # own timeout (60 s): past it the copy answers 503 service_busy and the client retries.
    retries = int(getattr(settings, "STRIPE_MAX_NETWORK_RETRIES", 2))
    return min(float(settings.STRIPE_TIMEOUT) * 2 * (retries + 1) + 5, 25.0)


# --- The Stripe customer (outside transactions) ---------------------------------------------


def stripe_customer_get(*, user: User) -> StripeCustomer:
    """The user's Stripe Customer, created once (the unique user column settles races; the
    idempotency key ``applause-customer-<user id>`` makes a lost row's retry find it)."""
    existing = StripeCustomer.objects.filter(user=user).first()
    if existing is not None:
        return existing
    try:
        customer_id = gateway.customer_create(
            user_id=user.pk, email=user.email, username=user.username
        )
    except gateway.StripeError as exc:
        raise _provider_error(exc, f"customer create for user {user.pk}") from exc
    try:
        with transaction.atomic():
            return StripeCustomer.objects.create(user=user, customer_id=customer_id)
    except IntegrityError:
        return StripeCustomer.objects.get(user=user)


def stripe_customer_replace(*, customer: StripeCustomer) -> StripeCustomer:
    """A new Stripe Customer for a user whose customer Stripe no longer knows (deleted in the
    dashboard; a local test server restarted from scratch). Only the row's id changes; two
    requests at once agree on one replacement (the conditional update, then a re-read)."""
    lost = customer.customer_id
    user = customer.user
    try:
        new_id = gateway.customer_create(
            user_id=user.pk, email=user.email, username=user.username, replacing=lost
        )
    except gateway.StripeError as exc:
        raise _provider_error(exc, f"customer re-create for user {user.pk}") from exc
    StripeCustomer.objects.filter(pk=customer.pk, customer_id=lost).update(customer_id=new_id)
    log.warning("stripe customer %s of user %s is gone at Stripe: replaced", lost, user.pk)
    return StripeCustomer.objects.get(pk=customer.pk)
