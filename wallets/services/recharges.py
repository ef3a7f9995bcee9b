"""Buying coins: quotes, recharges through Stripe PaymentIntents, crediting exactly once."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from djmoney.money import Money

from config.errors import (
    AgeRestricted,
    DomainError,
    IdempotencyConflict,
    InvalidInput,
    LimitExceeded,
)
from wallets import stripe_gateway as gateway
from wallets.models import (
    Account,
    AccountKind,
    CoinPackage,
    CoinPackagePrice,
    Recharge,
    RechargeStatus,
    StripeCustomer,
    TransactionKind,
    recharge_row_new,
)
from wallets.services.declines import PurchaseOrigin, decline_check, decline_record
from wallets.services.ledger import (
    Posting,
    _ensure_not_frozen,
    account_get,
    ledger_post,
    platform_account,
    wallet_get,
)
from wallets.services.limits import purchase_confirmation_check, purchase_limits_check

log = logging.getLogger(__name__)

# What a buyer is told about any declined card: the reason (stolen card, wrong CVC, no funds)
# would tell a card tester which cards work. Stripe's own reason stays with staff.
DECLINE_MESSAGE = "Your card was declined."
DECLINE_CODE = "card_declined"

# A wallet frozen for coin debt carries this reason; settling the debt lifts that freeze only.
DEBT_FREEZE_REASON = "coin debt after a refund or chargeback"


class PaymentProviderError(DomainError):
    code = "payment_provider_error"
    status = 502
    default_message = "The payment provider could not be reached. Please try again."


@dataclass(frozen=True)
class Quote:
    package: CoinPackage | None
    coins: int
    price: Money


def _currency(currency: Any) -> str:
    code = str(currency or "").strip().upper()
    if code not in settings.CURRENCIES:
        raise InvalidInput(
            f"Unsupported currency; choose one of {', '.join(settings.CURRENCIES)}.",
            fields={"currency": [f"Must be one of {', '.join(settings.CURRENCIES)}."]},
        )
    return code


def _is_whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def package_is_on_sale(package: CoinPackage, now=None) -> bool:
    now = now or timezone.now()
    return (
        package.is_active
        and (package.available_from is None or package.available_from <= now)
        and (package.available_until is None or now < package.available_until)
    )


def custom_price(*, coins: int, currency: str) -> Money:
    unit_price = Decimal(settings.COIN_UNIT_PRICE[currency])
    exponent = gateway.currency_exponent(currency)
    amount = (unit_price * coins).quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_UP)
    return Money(amount, currency)


def recharge_quote(*, currency: Any, package_id: Any = None, coins: Any = None) -> Quote:
    """What a purchase costs: a package on sale in that currency, or a custom amount."""
    currency = _currency(currency)
    if (package_id is None) == (coins is None):
        raise InvalidInput(
            "Choose a coin package or a custom number of coins (not both).",
            fields={"package": ["Give either package or coins."]},
        )
    if package_id is not None:
        if not _is_whole_number(package_id):
            raise InvalidInput("Unknown coin package.", fields={"package": ["Unknown package."]})
        price_row = (
            CoinPackagePrice.objects.select_related("package")
            .filter(package_id=package_id, price_currency=currency)
            .first()
        )
        if price_row is None or not package_is_on_sale(price_row.package):
            raise InvalidInput(
                "That coin package is not on sale in this currency.",
                fields={"package": ["Unknown package or not available in this currency."]},
            )
        package = price_row.package
        return Quote(package, package.total_coins, price_row.price)
    low, high = settings.CUSTOM_COINS_MIN, settings.CUSTOM_COINS_MAX
    if not _is_whole_number(coins) or not low <= coins <= high:
        raise InvalidInput(
            f"A custom amount must be a whole number of coins from {low:,} to {high:,}.",
            fields={"coins": [f"Must be a whole number from {low} to {high}."]},
        )
    return Quote(None, coins, custom_price(coins=coins, currency=currency))


def stripe_customer_get(*, user) -> StripeCustomer:
    """The user's Stripe Customer, created once (the unique user column settles races)."""
    existing = StripeCustomer.objects.filter(user=user).first()
    if existing is not None:
        return existing
    try:
        customer_id = gateway.customer_create(
            user_id=user.pk, email=user.email, username=user.username
        )
    except gateway.StripeError as exc:
        log.warning("stripe customer create failed for user %s: %s", user.pk, exc)
        raise PaymentProviderError() from exc
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
        log.warning("stripe customer re-create failed for user %s: %s", user.pk, exc)
        raise PaymentProviderError() from exc
    StripeCustomer.objects.filter(pk=customer.pk, customer_id=lost).update(customer_id=new_id)
    log.warning("stripe customer %s of user %s is gone at Stripe: replaced", lost, user.pk)
    return StripeCustomer.objects.get(pk=customer.pk)


def _purchased_today(user) -> int:
    since = timezone.now() - timedelta(days=1)
    total = (
        Recharge.objects.filter(user=user, created_at__gte=since)
        .exclude(status=RechargeStatus.FAILED)
        .aggregate(total=Sum("coins"))["total"]
    )
    return int(total or 0)


def _check_can_buy(user) -> Account:
    if not user.is_adult:
        raise AgeRestricted(f"You must be {settings.MINIMUM_AGE} or older to buy coins.")
    wallet = wallet_get(user=user)
    _ensure_not_frozen(wallet)
    return wallet


# How far back a retry looks for its PaymentIntent at Stripe (clients retry within minutes;
# this also covers one that comes back after a long outage).
CLIENT_KEY_LOOKBACK = timedelta(days=30)


def _attempt_marker(key_hash: str) -> str:
    """Cache key noting that a request under this client key reached Stripe.

    Written outside the database transaction (so a crash keeps it) twice: ``{"at": <unix
    time>}`` just before the PaymentIntent is created, and ``{"at": ..., "pi": <id>}`` as soon
    as Stripe answers the create, before anything confirms it. A later request under the same
    key whose row a crash rolled back then fetches that PaymentIntent by id and continues it.
    A marker without ``pi`` means the crash came before or during the create: any
    PaymentIntent that create made was never confirmed (no charge; the client never saw its
    client_secret), so the retry may start afresh; on real Stripe the create's idempotency
    key, made from the same client key, even hands back that same PaymentIntent. That key is
    also what covers the one narrow case where the marker misleads: Redis going away between
    the two writes, so a confirmed attempt's marker lacks its ``pi``.
    (Markers from before the id was noted hold ``1``: for those the retry still searches the
    customer's PaymentIntents; on servers without list filters, localstripe, that pages through
    all of them, which ``make chaos`` showed stalls it under load.)
    If the cache lost the marker, real Stripe's idempotency key still answers the retry's
    create with the first PaymentIntent.
    """
    return f"recharge-attempt:{key_hash}"


def _attempt_note(key_hash: str, **fields: Any) -> None:
    cache.set(
        _attempt_marker(key_hash),
        {"at": int(time.time()), **fields},
        timeout=int(CLIENT_KEY_LOOKBACK.total_seconds()),
    )


@transaction.atomic
def recharge_create(
    *,
    user,
    currency: Any,
    package_id: Any = None,
    coins: Any = None,
    payment_method: str | None = None,
    confirmed: bool = False,
    portal: bool = False,
    client_key: str | None = None,
    client_address: str | None = None,
) -> Recharge:
    """A pending Recharge with its Stripe PaymentIntent.

    Without ``payment_method`` the browser confirms the card with Stripe.js (client_secret).
    With one (an app's PaymentMethod, or the portal's), the server confirms at once: the
    answer is then succeeded (coins credited now; the webhook finds nothing left to do),
    failed (``failure_message``), or pending with a 3-D Secure step for Stripe.js.
    The returned object carries ``client_secret`` (not stored).

    ``client_key`` is the client's Idempotency-Key. A crash after Stripe confirmed but before
    our commit loses the recharge and the idempotency record together; the client's retry
    then finds the earlier attempt (our row, or its PaymentIntent at Stripe by the key's hash
    in the metadata) and continues it instead of charging again.

    Viewer protections (docs/viewer-protections.md): above the cooling-off threshold the
    purchase needs ``confirmed`` (409 ``confirmation_required``), and the viewer's own daily
    and monthly limits apply (403 ``spending_limit_exceeded``).

    Card testing (``wallets.services.declines``): a decline is answered with
    ``failure_code`` ``card_declined`` and a generic message, and counted per user,
    ``client_address`` and card fingerprint; past the limit, 429 ``too_many_declines`` before
    any PaymentIntent is made.
    """
    _check_can_buy(user)
    quote = recharge_quote(currency=currency, package_id=package_id, coins=coins)
    purchase_confirmation_check(
        user=user, coins=quote.coins, confirmed=bool(confirmed), portal=portal
    )
    if payment_method is not None:
        payment_method = str(payment_method).strip()
        if not payment_method or len(payment_method) > 255:
            raise InvalidInput(
                "Invalid payment method.", fields={"payment_method": ["Invalid payment method."]}
            )
    origin = _purchase_origin(
        user=user, client_address=client_address, payment_method=payment_method
    )
    client_key = (client_key or "").strip()[:255] or None
    key_hash = (
        gateway.recharge_client_key_hash(user_id=user.pk, client_key=client_key)
        if client_key
        else None
    )
    customer = stripe_customer_get(user=user)
    # One user's purchases queue here, so two at once cannot both slip under the daily limit
    # nor both miss an earlier attempt under the same client key.
    # (The customer row, not the wallet: gifts must not wait for a Stripe round trip.)
    StripeCustomer.objects.select_for_update().filter(pk=customer.pk).first()
    if client_key and key_hash:
        earlier = _recharge_earlier_attempt(
            user=user, client_key=client_key, key_hash=key_hash, customer=customer, quote=quote
        )
        if earlier is not None:
            recharge, intent = earlier
            return _recharge_settle(
                recharge=recharge,
                intent=intent,
                payment_method=payment_method,
                key_hash=key_hash,
                origin=origin,
            )
    limit = settings.DAILY_PURCHASE_LIMIT
    if _purchased_today(user) + quote.coins > limit:
        raise LimitExceeded(
            f"This purchase would exceed your daily limit of {limit:,} coins. "
            "Please try again tomorrow."
        )
    purchase_limits_check(user=user, coins=quote.coins)
    recharge = _recharge_row(user=user, quote=quote, client_key=client_key)
    if key_hash:
        _attempt_note(key_hash)
    try:
        try:
            intent = _payment_intent_for(recharge, quote, customer, key_hash, payment_method)
        except gateway.StripeError as exc:
            # A customer Stripe lost is ours to fix, never the card's fault: make a new one
            # and go on (once).
            if getattr(exc, "http_status", None) not in (400, 404):
                raise
            if not gateway.customer_is_missing(customer.customer_id):
                raise
            customer = stripe_customer_replace(customer=customer)
            intent = _payment_intent_for(
                recharge, quote, customer, key_hash, payment_method, replaced_customer=True
            )
    except gateway.StripeError as exc:
        if payment_method and getattr(exc, "http_status", None) in (400, 404):
            raise InvalidInput(
                "That payment method cannot be used.",
                fields={"payment_method": ["Unknown or unusable payment method."]},
            ) from exc
        log.warning("payment intent create failed for recharge %s: %s", recharge.pk, exc)
        raise PaymentProviderError() from exc
    if key_hash:
        _attempt_note(key_hash, pi=intent.id)
    recharge.payment_intent = intent.id
    recharge.save(update_fields=["payment_intent", "updated_at"])
    return _recharge_settle(
        recharge=recharge,
        intent=intent,
        payment_method=payment_method,
        key_hash=key_hash,
        origin=origin,
    )


def _payment_intent_for(
    recharge: Recharge,
    quote: Quote,
    customer: StripeCustomer,
    key_hash: str | None,
    payment_method: str | None,
    replaced_customer: bool = False,
) -> Any:
    return gateway.payment_intent_create(
        amount=quote.price,
        customer_id=customer.customer_id,
        user_id=recharge.user_id,
        recharge_id=None if key_hash else recharge.pk,
        client_key_hash=key_hash,
        payment_method=payment_method,
        coins=quote.coins,
        replaced_customer=replaced_customer,
    )


def _recharge_row(*, user, quote: Quote, client_key: str | None, payment_intent=None) -> Recharge:
    return recharge_row_new(
        user=user,
        package=quote.package,
        coins=quote.coins,
        price=quote.price,
        payment_intent=payment_intent,
        client_key=client_key,
    )


def _purchase_origin(
    *, user, client_address: str | None, payment_method: str | None
) -> PurchaseOrigin:
    """Who pays, from where, with which card; refused while any of them has too many declines.

    The card's fingerprint needs one call to Stripe; if that fails for any reason but an
    unknown payment method, the user and address limits still apply."""
    origin = PurchaseOrigin(user_id=user.pk, client_address=client_address or "")
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
        log.warning("card fingerprint of %s unavailable: %s", payment_method, exc)
        return origin
    origin = replace(origin, card_fingerprint=fingerprint)
    decline_check(origin=origin)
    return origin


def _recharge_declined(
    *, recharge: Recharge, payment_intent_id: str, error: Any, origin: PurchaseOrigin | None
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


def _recharge_settle(
    *,
    recharge: Recharge,
    intent: Any,
    payment_method: str | None,
    key_hash: str | None,
    origin: PurchaseOrigin | None = None,
) -> Recharge:
    """Confirm the PaymentIntent if it still needs it, and record what Stripe says now.

    For an adopted earlier attempt the PaymentIntent may already be paid (credited through
    ``recharge_apply_success``, exactly once per PaymentIntent), failed or awaiting 3-D Secure.
    """
    client_secret = gateway.get(intent, "client_secret")
    status = gateway.get(intent, "status")
    confirmed_now = False
    if payment_method and status == "requires_confirmation":
        try:
            intent = gateway.payment_intent_confirm(
                payment_intent_id=intent.id,
                recharge_id=recharge.pk,
                user_id=recharge.user_id,
                client_key_hash=key_hash,
            )
        except gateway.CardError as exc:
            _recharge_declined(
                recharge=recharge, payment_intent_id=intent.id, error=exc, origin=origin
            )
            status = None
        except gateway.StripeError as exc:
            # The PaymentIntent exists; its webhook or reconciliation will settle the outcome.
            log.warning("confirm failed for recharge %s: %s", recharge.pk, exc)
            status = None
        else:
            status = gateway.get(intent, "status")
            confirmed_now = True
    error = gateway.get(intent, "last_payment_error")
    if status == "succeeded":
        recharge_apply_success(payment_intent_id=intent.id, intent=intent)
    elif (
        status == "requires_payment_method"
        and error
        and gateway.get(error, "type")
        in (
            None,
            "card_error",
        )
    ):
        # Declined at this confirm (counted), or an adopted earlier attempt's decline (counted
        # when it happened).
        _recharge_declined(
            recharge=recharge,
            payment_intent_id=intent.id,
            error=error,
            origin=origin if confirmed_now else None,
        )
    elif status == "canceled" or (status == "requires_payment_method" and (confirmed_now or error)):
        recharge_mark_failed(
            payment_intent_id=intent.id,
            message=gateway.get(error or {}, "message") or "The payment failed.",
        )
    recharge.refresh_from_db()
    recharge.client_secret = client_secret  # type: ignore[attr-defined]
    recharge.requires_action = status == "requires_action"  # type: ignore[attr-defined]
    return recharge


def _same_purchase(intent: Any, quote: Quote) -> bool:
    metadata = gateway.get(intent, "metadata") or {}
    return (
        gateway.get(intent, "amount") == gateway.to_minor(quote.price)
        and str(gateway.get(intent, "currency") or "").upper() == str(quote.price.currency)
        and gateway.get(metadata, "coins") == str(quote.coins)
    )


def _recharge_earlier_attempt(
    *, user, client_key: str, key_hash: str, customer: StripeCustomer, quote: Quote
) -> tuple[Recharge, Any] | None:
    """An earlier attempt under this client key: our row, else its PaymentIntent at Stripe
    (the row was rolled back by a crash, or rebuilt by reconciliation without the key).

    The same key for another purchase is 409 ``idempotency_conflict``, as the API promises.
    """
    recharge = Recharge.objects.filter(user=user, client_key=client_key).first()
    if recharge is not None:
        if recharge.coins != quote.coins or recharge.price != quote.price:
            raise IdempotencyConflict()
        if not recharge.payment_intent:
            return None  # cannot happen: the row and its PaymentIntent id commit together
        try:
            return recharge, gateway.payment_intent_retrieve(recharge.payment_intent)
        except gateway.StripeError as exc:
            raise PaymentProviderError() from exc
    marker = cache.get(_attempt_marker(key_hash))
    if not marker:
        return None
    try:
        intent = _attempt_intent(marker, user=user, key_hash=key_hash, customer=customer)
        # A first purchase's crash also lost our StripeCustomer row: on localstripe (no
        # idempotency keys) the retry got a new customer, so check the earlier one is theirs.
        if (
            intent is not None
            and gateway.get(intent, "customer") != customer.customer_id
            and not _customer_metadata_is(user, gateway.get(intent, "customer"))
        ):
            intent = None
    except gateway.StripeError as exc:
        log.warning("looking up an earlier attempt for user %s failed: %s", user.pk, exc)
        raise PaymentProviderError() from exc
    if intent is None:
        # The interrupted attempt never got as far as a PaymentIntent it could confirm.
        log.warning("recharge retry for user %s: interrupted attempt had no intent", user.pk)
        return None
    if not _same_purchase(intent, quote):
        raise IdempotencyConflict()
    pi_id = gateway.get(intent, "id")
    log.warning(
        "recharge retry for user %s: continuing intent %s of an interrupted attempt", user.pk, pi_id
    )
    try:
        with transaction.atomic():
            recharge = _recharge_row(
                user=user, quote=quote, client_key=client_key, payment_intent=pi_id
            )
    except IntegrityError:
        # Reconciliation (or a webhook) rebuilt it first: adopt that row and give it the key.
        recharge = Recharge.objects.get(payment_intent=pi_id)
        Recharge.objects.filter(pk=recharge.pk, client_key__isnull=True).update(
            client_key=client_key
        )
    return recharge, intent


def _attempt_intent(marker: Any, *, user, key_hash: str, customer: StripeCustomer) -> Any:
    """The PaymentIntent an interrupted attempt may have confirmed, or None (see the marker)."""
    if isinstance(marker, dict):
        if not marker.get("pi"):
            return None
        intent = gateway.payment_intent_retrieve(str(marker["pi"]))
        return intent if _is_attempt_of(intent, user=user, key_hash=key_hash) else None
    since = timezone.now() - CLIENT_KEY_LOOKBACK
    return next(
        (
            candidate
            for candidate in gateway.customer_payment_intents_since(customer.customer_id, since)
            if _is_attempt_of(candidate, user=user, key_hash=key_hash)
        ),
        None,
    )


def _customer_metadata_is(user, customer_id: Any) -> bool:
    """A Stripe customer we made for this user (``customer_create`` puts both in metadata)."""
    if not customer_id:
        return False
    metadata = gateway.get(gateway.customer_retrieve(str(customer_id)), "metadata") or {}
    return gateway.get(metadata, "user_id") == str(user.pk) and gateway.get(
        metadata, "username"
    ) == str(user.username)


def _is_attempt_of(intent: Any, *, user, key_hash: str) -> bool:
    metadata = gateway.get(intent, "metadata") or {}
    return (
        gateway.get(metadata, "app") == "applause"
        and gateway.get(metadata, "client_key_hash") == key_hash
        and gateway.get(metadata, "user_id") == str(user.pk)
    )


def _intent_problem(recharge: Recharge, intent: Any) -> tuple[str, str, str] | None:
    """Why Stripe's PaymentIntent does not pay for this recharge, as (discrepancy kind,
    expected, found); None when it does. A missing amount or currency is a mismatch."""
    amount = gateway.get(intent, "amount")
    currency = str(gateway.get(intent, "currency") or "").upper()
    try:
        amount_ok = amount is not None and int(amount) == gateway.to_minor(recharge.price)
    except (TypeError, ValueError):
        amount_ok = False
    if not amount_ok or currency != str(recharge.price.currency):
        return (
            "amount_mismatch",
            f"{recharge.price} (recharge {recharge.pk})",
            f"{amount} {currency or None}",
        )
    metadata = gateway.get(intent, "metadata") or {}
    app, user_id = gateway.get(metadata, "app"), gateway.get(metadata, "user_id")
    if app != "applause" or user_id != str(recharge.user_id):
        return (
            "metadata_mismatch",
            f"app=applause user_id={recharge.user_id} (recharge {recharge.pk})",
            f"app={app} user_id={user_id}",
        )
    return None


def _lock_wallet_and_debt(user) -> tuple[Account, Account]:
    """Lock the user's wallet and debt rows in id order (the ledger's lock order)."""
    wallet = wallet_get(user=user)
    debt = account_get(kind=AccountKind.COIN_DEBT, user=user)
    locked = {
        account.pk: account
        for account in Account.objects.select_for_update()
        .filter(pk__in=[wallet.pk, debt.pk])
        .order_by("pk")
    }
    return locked[wallet.pk], locked[debt.pk]


def coins_credit(
    *, user, coins: int, kind: str, idempotency_key: str, memo: str, reference: str, actor=None
) -> bool:
    """Issue ``coins`` to a user: coin debt is settled first, the rest lands in the wallet.

    Returns whether the transaction was new. Lifts a debt freeze once the debt is cleared.
    """
    wallet, debt = _lock_wallet_and_debt(user)
    settle = min(coins, -debt.balance)
    result = ledger_post(
        kind=kind,
        idempotency_key=idempotency_key,
        postings=[
            Posting(platform_account(AccountKind.COIN_ISSUANCE), -coins),
            Posting(debt, settle),
            Posting(wallet, coins - settle),
        ],
        actor=actor,
        memo=memo,
        reference=reference,
    )
    if result.created and settle and debt.balance + settle == 0:
        Account.objects.filter(pk=wallet.pk, frozen_reason=DEBT_FREEZE_REASON).update(
            is_frozen=False, frozen_reason=""
        )
    return result.created


@transaction.atomic
def recharge_apply_success(*, payment_intent_id: str, intent: Any) -> Recharge | None:
    """Credit a succeeded payment's coins, exactly once. The webhook and reconciliation
    both come here; the conditional status flip and the ledger's unique key
    ``recharge:<payment_intent>`` each make duplicates harmless.

    ``intent`` is the PaymentIntent as Stripe answered it (retrieved, listed or confirmed by
    us), never a webhook body. Coins are credited only when it succeeded and its amount,
    currency and metadata (ours, this user) match the recharge; a mismatch credits nothing
    and opens a discrepancy.
    """
    recharge = Recharge.objects.filter(payment_intent=payment_intent_id).first()
    if recharge is None:
        return None
    if gateway.get(intent, "id") != payment_intent_id or gateway.get(intent, "status") != (
        "succeeded"
    ):
        return recharge
    problem = _intent_problem(recharge, intent)
    if problem is not None:
        from wallets.services.reconciliation import discrepancy_record

        kind, expected, found = problem
        log.warning("payment intent %s not credited: %s (%s)", payment_intent_id, kind, found)
        discrepancy_record(
            kind=kind,
            object_type="payment_intent",
            object_id=payment_intent_id,
            expected=expected,
            found=found,
        )
        return recharge
    flipped = Recharge.objects.filter(
        pk=recharge.pk, status__in=[RechargeStatus.PENDING, RechargeStatus.FAILED]
    ).update(status=RechargeStatus.SUCCEEDED, succeeded_at=timezone.now(), failure_message="")
    if flipped:
        coins_credit(
            user=recharge.user,
            coins=recharge.coins,
            kind=TransactionKind.RECHARGE,
            idempotency_key=recharge.ledger_key,
            memo=f"Recharge #{recharge.pk}: {recharge.coins:,} coins for {recharge.price}",
            reference=f"recharge:{recharge.pk}",
        )
        recharge.refresh_from_db()
        _receipt_enqueue(recharge)
    recharge.refresh_from_db()
    return recharge


def _receipt_enqueue(recharge: Recharge) -> None:
    """The receipt email, written in the same transaction as the credit."""
    from notifications.services import email_enqueue, site_url

    email_enqueue(
        event=f"recharge_receipt:{recharge.pk}",
        user=recharge.user,
        template="recharge_receipt",
        context={
            "recharge_id": recharge.pk,
            "coins": f"{recharge.coins:,}",
            "price": f"{recharge.price.currency} {recharge.price.amount:,.2f}",
            "paid_at": recharge.succeeded_at,
            "payment_intent": recharge.payment_intent,
            "receipt_url": site_url(f"/recharges/{recharge.pk}/receipt/"),
        },
    )


@transaction.atomic
def recharge_mark_failed(
    *,
    payment_intent_id: str,
    message: str = "",
    failure_code: str = "",
    decline_reason: str = "",
    card_fingerprint: str = "",
) -> Recharge | None:
    """A pending recharge whose payment failed. Never touches a credited one.

    ``message`` and ``failure_code`` are what the buyer sees; ``decline_reason`` (Stripe's
    reason) and ``card_fingerprint`` are for staff only (the admin)."""
    Recharge.objects.filter(payment_intent=payment_intent_id, status=RechargeStatus.PENDING).update(
        status=RechargeStatus.FAILED,
        failure_message=(message or "The payment failed.")[:500],
        failure_code=failure_code[:64],
        decline_reason=decline_reason[:500],
        card_fingerprint=card_fingerprint[:64],
    )
    return Recharge.objects.filter(payment_intent=payment_intent_id).first()


@transaction.atomic
def coin_debt_write_off(*, user, reason: str, actor) -> int:
    """Staff absorb a user's coin debt (write-off account) and lift the debt freeze."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required.", fields={"reason": ["This field is required."]})
    wallet, debt = _lock_wallet_and_debt(user)
    owed = -debt.balance
    if owed <= 0:
        return 0
    ledger_post(
        kind=TransactionKind.WRITE_OFF,
        idempotency_key=f"write-off:{debt.pk}:{timezone.now().isoformat()}",
        postings=[
            Posting(debt, owed),
            Posting(platform_account(AccountKind.COIN_WRITE_OFFS), -owed),
        ],
        actor=actor,
        memo=reason,
        reference=f"user:{user.pk}",
    )
    Account.objects.filter(pk=wallet.pk, frozen_reason=DEBT_FREEZE_REASON).update(
        is_frozen=False, frozen_reason=""
    )
    return owed
