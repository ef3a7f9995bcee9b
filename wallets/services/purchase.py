"""Buying coins in atomic phases: the Recharge is committed before Stripe is asked anything.

``recharge_create`` follows Stripe's own advice for idempotency keys (atomic phases and
recovery points), like ``payout_send``:

1. **started** — one transaction commits the Recharge (status ``creating``) together with the
   client's idempotency record (API and portal). Every rule (age, frozen wallet, limits,
   cooling-off, card testing) is checked here; nothing is asked of Stripe yet, except reading
   the card's fingerprint.
2. Outside any transaction: the user's Stripe Customer (made once, its own small
   transaction), then the PaymentIntent, created under the key
   ``applause-recharge-<id>-pi``. Its id is written at once (recovery point
   **intent_created**), and only then is it confirmed (``applause-recharge-<id>-confirm``).
   A PaymentIntent whose id we never wrote was therefore never confirmed: nobody paid.
3. A second transaction records Stripe's answer: ``creating`` becomes pending, succeeded
   (coins credited through ``recharge_apply_success``, once per PaymentIntent) or failed.

A retry with the same Idempotency-Key finds the row (the unique (user, client_key)) and goes
on from its recovery point; two copies at once take turns on a lock per recharge (a session
advisory lock, held across the Stripe calls but no transaction). Stripe unreachable in
phase 2 answers 503 ``payment_provider_unavailable`` with Retry-After and leaves the row where
it was; for ``STRIPE_AWAY_SECONDS`` after that, purchases are answered so at once. A ``creating`` recharge nobody comes back for is finished by
``recharges_finish_abandoned`` (the Celery beat and every reconciliation run): credited if its
PaymentIntent was paid, otherwise the PaymentIntent is canceled and the recharge failed.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import (
    IdempotencyConflict,
    InvalidInput,
    LimitExceeded,
    ServiceBusy,
)
from wallets import stripe_gateway as gateway
from wallets.models import Recharge, RechargeStatus, StripeCustomer, recharge_row_new
from wallets.services.declines import PurchaseOrigin, decline_check, decline_record
from wallets.services.limits import purchase_confirmation_check, purchase_limits_check
from wallets.services.recharges import (
    DECLINE_CODE,
    DECLINE_MESSAGE,
    Quote,
    _check_can_buy,
    _purchased_today,
    recharge_apply_success,
    recharge_mark_failed,
    recharge_quote,
)
from wallets.services.stripe_calls import (
    STRIPE_AWAY_KEY,
    PaymentProviderUnavailable,
    _lock_wait,
    _provider_error,
    _recharge_lock,
    _stripe_away_check,
    _user_purchases_lock,
    stripe_customer_get,
    stripe_customer_replace,
)

if TYPE_CHECKING:
    from accounts.models import User


log = logging.getLogger(__name__)

__all__ = ["STRIPE_AWAY_KEY", "PaymentProviderUnavailable", "recharge_create", "recharge_phase"]

# The recovery points a retry (or the finisher) can find a recharge at; logged as
# ``recharge <id>: continuing from <phase>`` (``make chaos`` counts them).
PHASE_STARTED = "started"  # committed, nothing at Stripe that could have been confirmed
PHASE_INTENT_CREATED = "intent_created"  # PaymentIntent made; maybe confirmed, maybe paid
PHASE_FINISHED = "finished"  # Stripe's answer recorded; only the client's answer was lost


# --- recharge_create ------------------------------------------------------------------------


def recharge_create(
    *,
    user: User,
    currency: Any,
    package_id: Any = None,
    coins: Any = None,
    payment_method: str | None = None,
    confirmed: bool = False,
    portal: bool = False,
    client_key: str | None = None,
    client_address: str | None = None,
    request_hash: str | None = None,
    request_path: str = "",
) -> Recharge:
    """A Recharge with its Stripe PaymentIntent, in the atomic phases of the module docstring.
    Never call it inside a transaction: Stripe is called between the phases.

    Without ``payment_method`` the browser confirms the card with Stripe.js (client_secret).
    With one (an app's PaymentMethod, or the portal's), the server confirms at once: the
    answer is then succeeded (coins credited now; the webhook finds nothing left to do),
    failed (``failure_message``), or pending with a 3-D Secure step for Stripe.js.
    The returned object carries ``client_secret`` and ``requires_action`` (not stored).

    ``client_key`` is the client's Idempotency-Key; with ``request_hash`` (the API's hash of
    the request) phase 1 also writes the idempotency record, unfinished, in its transaction
    (``config.api.idempotent_phased`` stores the answer). A retry under the same key continues
    the recharge it finds; the same key for another purchase is 409 ``idempotency_conflict``.

    Viewer protections (docs/viewer-protections.md): above the cooling-off threshold the
    purchase needs ``confirmed`` (409 ``confirmation_required``), and the viewer's own daily
    and monthly limits apply (403 ``spending_limit_exceeded``). Card testing
    (``wallets.services.declines``): a decline is answered with ``failure_code``
    ``card_declined`` and a generic message, and counted per user, ``client_address`` and card
    fingerprint; past the limit, 429 ``too_many_declines`` before the recharge is made.
    Stripe unreachable: 503 ``payment_provider_unavailable`` (Retry-After), the recharge stays
    at its recovery point.
    """
    payment_method = _payment_method_clean(payment_method)
    _stripe_away_check()
    client_key = (client_key or "").strip()[:255] or None
    recharge = (
        Recharge.objects.filter(user=user, client_key=client_key).first() if client_key else None
    )
    origin = PurchaseOrigin(user_id=user.pk, client_address=client_address or "")
    if recharge is None:
        quote = recharge_quote(currency=currency, package_id=package_id, coins=coins)
        _check_can_buy(user)
        purchase_confirmation_check(
            user=user, coins=quote.coins, confirmed=bool(confirmed), portal=portal
        )
        origin = _purchase_origin(origin, payment_method=payment_method)
        recharge = _recharge_begin(
            user=user,
            quote=quote,
            client_key=client_key,
            request_hash=request_hash,
            request_path=request_path,
        )
        resumed = False
    else:
        _same_purchase_check(recharge, currency=currency, package_id=package_id, coins=coins)
        resumed = True
    return _recharge_continue(
        recharge=recharge, payment_method=payment_method, origin=origin, resumed=resumed
    )


def _payment_method_clean(payment_method: Any) -> str | None:
    if payment_method is None:
        return None
    cleaned = str(payment_method).strip()
    if not cleaned or len(cleaned) > 255:
        raise InvalidInput(
            "Invalid payment method.", fields={"payment_method": ["Invalid payment method."]}
        )
    return cleaned


def _same_purchase_check(recharge: Recharge, **choice: Any) -> None:
    """A retry under a key must ask for the same purchase (the API compares whole bodies)."""
    try:
        quote = recharge_quote(**choice)
    except InvalidInput:
        return  # e.g. the package went off sale since: the recharge already exists
    if recharge.coins != quote.coins or recharge.price != quote.price:
        raise IdempotencyConflict()


def _purchase_origin(origin: PurchaseOrigin, *, payment_method: str | None) -> PurchaseOrigin:
    """Who pays, from where, with which card; refused while any of them has too many declines.

    The card's fingerprint needs one call to Stripe (a read, before anything is written):
    Stripe unreachable is 503 ``payment_provider_unavailable``; any other failure but an
    unknown payment method leaves the user and address limits to apply."""
    decline_check(origin=origin)
    if not payment_method:
        return origin
    try:
        fingerprint = gateway.payment_method_fingerprint(payment_method)
    except gateway.StripeError as exc:
        if getattr(exc, "http_status", None) in (400, 404):
            raise InvalidInput(
                "That payment method cannot be used.",
                fields={"payment_method": ["Unknown or unusable payment method."]},
            ) from exc
        if gateway.is_unavailable(exc):
            # Nothing written yet: the retry starts afresh.
            raise _provider_error(exc, f"card fingerprint of {payment_method}") from exc
        log.warning("card fingerprint of %s unavailable: %s", payment_method, exc)
        return origin
    origin = replace(origin, card_fingerprint=fingerprint)
    decline_check(origin=origin)
    return origin


def _recharge_begin(
    *,
    user: User,
    quote: Quote,
    client_key: str | None,
    request_hash: str | None,
    request_path: str,
) -> Recharge:
    """Phase 1: the Recharge (``creating``) and the idempotency record, committed together.
    A copy of the request that committed first is found and returned instead."""
    from accounts.services import idempotency_claim

    with transaction.atomic():
        if client_key and request_hash:
            idempotency_claim(
                user=user, key=client_key, request_hash=request_hash, path=request_path
            )
        _user_purchases_lock(user.pk)
        if client_key:
            earlier = Recharge.objects.filter(user=user, client_key=client_key).first()
            if earlier is not None:
                if earlier.coins != quote.coins or earlier.price != quote.price:
                    raise IdempotencyConflict()
                return earlier
        limit = settings.DAILY_PURCHASE_LIMIT
        if _purchased_today(user) + quote.coins > limit:
            raise LimitExceeded(
                f"This purchase would exceed your daily limit of {limit:,} coins. "
                "Please try again tomorrow."
            )
        purchase_limits_check(user=user, coins=quote.coins)
        return recharge_row_new(
            user=user,
            package=quote.package,
            coins=quote.coins,
            price=quote.price,
            client_key=client_key,
            status=RechargeStatus.CREATING,
        )


def recharge_phase(recharge: Recharge) -> str:
    """The recovery point a recharge is at."""
    if recharge.status != RechargeStatus.CREATING:
        return PHASE_FINISHED
    return PHASE_INTENT_CREATED if recharge.payment_intent else PHASE_STARTED


def _recharge_continue(
    *, recharge: Recharge, payment_method: str | None, origin: PurchaseOrigin, resumed: bool
) -> Recharge:
    """Phases 2 and 3 from wherever the recharge is, under its lock."""
    with _recharge_lock(recharge.pk, wait=_lock_wait()) as held:
        if not held:
            # A copy of this request is still talking to Stripe: ask the client to come back.
            raise ServiceBusy("This purchase is still being processed; please try again.")
        recharge = Recharge.objects.get(pk=recharge.pk)
        phase = recharge_phase(recharge)
        if resumed:
            log.warning("recharge %s: continuing from %s", recharge.pk, phase)
        if phase == PHASE_FINISHED:
            return _recharge_answer(recharge)
        intent = _recharge_intent(recharge, payment_method=payment_method)
        confirmed_now, declined = False, None
        if payment_method and intent.status == "requires_confirmation":
            try:
                intent = gateway.payment_intent_confirm(
                    payment_intent_id=intent.id, recharge_id=recharge.pk
                )
            except gateway.CardError as exc:
                declined = exc
            except gateway.StripeError as exc:
                if gateway.is_unavailable(exc):
                    # Maybe confirmed, maybe not: the row keeps its PaymentIntent; the retry
                    # (or the finisher) reads it before anything else.
                    raise _provider_error(exc, f"confirm of recharge {recharge.pk}") from exc
                # The PaymentIntent exists; its webhook or reconciliation settles the outcome.
                log.warning("confirm failed for recharge %s: %s", recharge.pk, exc)
            else:
                confirmed_now = True
        return _recharge_record(
            recharge, intent, confirmed_now=confirmed_now, declined=declined, origin=origin
        )


def _recharge_intent(recharge: Recharge, *, payment_method: str | None) -> gateway.PaymentIntent:
    """Phase 2 up to the recovery point ``intent_created``: the recharge's PaymentIntent,
    read back if its id was written, else created (never confirmed here) and its id written
    before anything can confirm it."""
    if recharge.payment_intent:
        try:
            return gateway.payment_intent_retrieve(recharge.payment_intent)
        except gateway.StripeError as exc:
            raise _provider_error(exc, f"retrieve for recharge {recharge.pk}") from exc
    customer = stripe_customer_get(user=recharge.user)
    try:
        try:
            intent = _intent_create(recharge, customer, payment_method)
        except gateway.StripeError as exc:
            # A customer Stripe lost is ours to fix, never the card's fault: make a new one
            # and go on (once). Both calls are outside any transaction.
            if getattr(exc, "http_status", None) not in (400, 404):
                raise
            if not gateway.customer_is_missing(customer.customer_id):
                raise
            customer = stripe_customer_replace(customer=customer)
            intent = _intent_create(recharge, customer, payment_method, replaced_customer=True)
    except gateway.StripeError as exc:
        if payment_method and getattr(exc, "http_status", None) in (400, 404):
            Recharge.objects.filter(pk=recharge.pk, status=RechargeStatus.CREATING).update(
                status=RechargeStatus.FAILED,
                failure_message="That payment method cannot be used.",
                updated_at=timezone.now(),
            )
            raise InvalidInput(
                "That payment method cannot be used.",
                fields={"payment_method": ["Unknown or unusable payment method."]},
            ) from exc
        raise _provider_error(exc, f"payment intent create for recharge {recharge.pk}") from exc
    # The recovery point: one statement, committed on its own (we are in no transaction).
    Recharge.objects.filter(pk=recharge.pk, payment_intent=None).update(
        payment_intent=intent.id, updated_at=timezone.now()
    )
    recharge.payment_intent = intent.id
    return intent


def _intent_create(
    recharge: Recharge,
    customer: StripeCustomer,
    payment_method: str | None,
    replaced_customer: bool = False,
) -> gateway.PaymentIntent:
    return gateway.payment_intent_create(
        amount=gateway.as_money(recharge.price),
        customer_id=customer.customer_id,
        user_id=recharge.user_id,
        recharge_id=recharge.pk,
        payment_method=payment_method,
        replaced_customer=replaced_customer,
    )


def _recharge_record(
    recharge: Recharge,
    intent: gateway.PaymentIntent,
    *,
    confirmed_now: bool,
    declined: gateway.CardError | None = None,
    origin: PurchaseOrigin | None = None,
) -> Recharge:
    """Phase 3: Stripe's answer, recorded in one transaction. ``creating`` becomes pending,
    then succeeded (credited exactly once per PaymentIntent), failed or left pending (3-D
    Secure, processing: the webhook or reconciliation settles it)."""
    status = None if declined is not None else intent.status
    error = intent.last_payment_error
    with transaction.atomic():
        Recharge.objects.filter(pk=recharge.pk, status=RechargeStatus.CREATING).update(
            status=RechargeStatus.PENDING, updated_at=timezone.now()
        )
        if declined is not None:
            _recharge_declined(
                recharge=recharge, payment_intent_id=intent.id, error=declined, origin=origin
            )
        elif status == "succeeded":
            recharge_apply_success(payment_intent_id=intent.id, intent=intent)
        elif status == "requires_payment_method" and error and error.type in (None, "card_error"):
            # Declined at this confirm (counted), or at an earlier one of a crashed attempt
            # (counted when it happened, if it got that far).
            _recharge_declined(
                recharge=recharge,
                payment_intent_id=intent.id,
                error=error,
                origin=origin if confirmed_now else None,
            )
        elif status == "canceled" or (
            status == "requires_payment_method" and (confirmed_now or error)
        ):
            recharge_mark_failed(
                payment_intent_id=intent.id,
                message=(error.message if error else None) or "The payment failed.",
            )
    return _recharge_answer(recharge, intent=intent)


def _recharge_answer(
    recharge: Recharge, *, intent: gateway.PaymentIntent | None = None
) -> Recharge:
    """The recharge as the client is told: fresh from the database, with the PaymentIntent's
    ``client_secret`` and whether 3-D Secure waits (read from Stripe if not given)."""
    recharge.refresh_from_db()
    if intent is None and recharge.payment_intent:
        try:
            intent = gateway.payment_intent_retrieve(recharge.payment_intent)
        except gateway.StripeError as exc:
            raise _provider_error(exc, f"retrieve for recharge {recharge.pk}") from exc
    recharge.client_secret = (intent.client_secret if intent else None) or ""
    recharge.requires_action = (
        recharge.status == RechargeStatus.PENDING
        and intent is not None
        and intent.status == "requires_action"
    )
    return recharge


def _recharge_declined(
    *,
    recharge: Recharge,
    payment_intent_id: str,
    error: gateway.CardError | gateway.PaymentError,
    origin: PurchaseOrigin | None,
) -> None:
    """A declined card: a generic answer for the buyer, Stripe's reason for staff, and (for a
    decline at our own confirm, ``origin`` given) one more decline counted."""
    reason, fingerprint = gateway.card_error_details(error)
    if origin is not None and fingerprint and not origin.card_fingerprint:
        origin = replace(origin, card_fingerprint=fingerprint)
    recharge_mark_failed(
        payment_intent_id=payment_intent_id,
        message=DECLINE_MESSAGE,
        failure_code=DECLINE_CODE,
        decline_reason=reason or DECLINE_CODE,
        card_fingerprint=origin.card_fingerprint if origin is not None else fingerprint,
    )
    if origin is not None:
        decline_record(origin=origin, recharge_id=recharge.pk, reason=reason)
