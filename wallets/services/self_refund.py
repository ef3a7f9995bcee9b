"""Fair refunds: a viewer refunds an accidental recharge of unspent coins within 48 hours."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import IdempotencyConflict, InsufficientFunds, InvalidInput, NotFound
from wallets import stripe_gateway as gateway
from wallets.models import (
    AccountKind,
    Recharge,
    RechargeRefund,
    RechargeStatus,
    RefundSource,
    TransactionKind,
)
from wallets.services.ledger import (
    Posting,
    _ensure_not_frozen,
    ledger_post,
    platform_account,
    wallet_get,
)
from wallets.services.recharges import PaymentProviderError
from wallets.services.refunds import RefundNotAllowed

if TYPE_CHECKING:
    from accounts.models import User


log = logging.getLogger(__name__)


class AlreadyRefunded(RefundNotAllowed):
    code = "already_refunded"
    default_message = "This recharge was already refunded."


class RefundWindowClosed(RefundNotAllowed):
    code = "refund_window_closed"
    default_message = "Purchases can only be refunded within 48 hours."


class CoinsAlreadySpent(RefundNotAllowed):
    code = "coins_already_spent"
    default_message = "Some of these coins were already spent, so this purchase cannot be refunded."


def self_refund_deadline(recharge: Recharge) -> datetime:
    paid_at = recharge.succeeded_at or recharge.created_at
    return paid_at + timedelta(hours=settings.SELF_REFUND_WINDOW_HOURS)


@dataclass(frozen=True)
class SelfRefundStatus:
    allowed: bool
    code: str  # "" when allowed
    message: str
    deadline: datetime | None


def self_refund_status(*, recharge: Recharge, wallet_coins: int, now=None) -> SelfRefundStatus:
    """What the receipt page shows (the service decides again under its locks)."""
    now = now or timezone.now()
    deadline = self_refund_deadline(recharge)
    if recharge.refunds.filter(source=RefundSource.SELF).exists():
        return SelfRefundStatus(False, AlreadyRefunded.code, "You refunded this purchase.", None)
    if recharge.status != RechargeStatus.SUCCEEDED or recharge.coins_refunded:
        return SelfRefundStatus(False, RefundNotAllowed.code, "", None)
    if now >= deadline:
        return SelfRefundStatus(
            False, RefundWindowClosed.code, "The 48-hour refund window has closed.", deadline
        )
    if wallet_coins < recharge.coins:
        return SelfRefundStatus(
            False,
            CoinsAlreadySpent.code,
            "Some of these coins were already spent, so this purchase can no longer be "
            "refunded. Spent coins are not refundable.",
            deadline,
        )
    return SelfRefundStatus(True, "", "", deadline)


def _request_key(user_id: int, key: str) -> str:
    key = (key or "").strip()
    if not key:
        raise InvalidInput("An idempotency key is required.", fields={"key": ["Required."]})
    if len(key) > 200:
        key = "sha256-" + hashlib.sha256(key.encode()).hexdigest()
    return f"self:{user_id}:{key}"


@transaction.atomic
def recharge_self_refund(*, user: User, recharge_id: int, request_key: str) -> RechargeRefund:
    """Refund a whole recharge to the viewer's card and take its coins back.

    Allowed within ``SELF_REFUND_WINDOW_HOURS`` of the payment, once, and only while the
    wallet still holds all of the recharge's coins: the debit is the ledger's conditional
    UPDATE, so a gift that spends them first (or at the same moment) makes this refuse with
    ``coins_already_spent`` instead of creating debt. The recharge row lock serialises double
    clicks; the same ``request_key`` returns the first refund. Stripe is called last, inside
    the transaction: if it fails, nothing is written (coins stay); Stripe's idempotency key
    (from the recharge id) means a retry never refunds twice.
    """
    key = _request_key(user.pk, request_key)
    recharge = Recharge.objects.select_for_update().filter(pk=recharge_id, user=user).first()
    if recharge is None:
        raise NotFound("No such recharge.")
    done = RechargeRefund.objects.filter(request_key=key).first()
    if done is not None:
        if done.recharge_id != recharge.pk:
            raise IdempotencyConflict()
        return done
    # A retry whose first attempt lost Stripe's answer (a timeout after Stripe refunded, so our
    # transaction rolled back) while reconciliation or a webhook found that refund in Stripe
    # and booked it as this viewer's self refund: it is this request's refund.
    orphan = recharge.refunds.filter(source=RefundSource.SELF, request_key__isnull=True).first()
    if orphan is not None:
        RechargeRefund.objects.filter(pk=orphan.pk).update(request_key=key)
        orphan.request_key = key
        return orphan
    if recharge.refunds.filter(source=RefundSource.SELF).exists():
        raise AlreadyRefunded()
    if recharge.status != RechargeStatus.SUCCEEDED or recharge.coins_refunded:
        raise RefundNotAllowed(
            "Only a paid purchase that was never refunded can be refunded here "
            f"(this one is {recharge.get_status_display().lower()})."
        )
    if timezone.now() >= self_refund_deadline(recharge):
        raise RefundWindowClosed(
            f"Purchases can only be refunded within {settings.SELF_REFUND_WINDOW_HOURS} hours."
        )
    if not recharge.payment_intent:  # a succeeded recharge always has one
        raise RefundNotAllowed("This purchase has no card payment to refund.")
    _ensure_not_frozen(wallet_get(user=user))
    self_refund_debit(recharge=recharge, user=user)
    try:
        stripe_refund = gateway.refund_create(
            payment_intent_id=recharge.payment_intent,
            amount=recharge.price,
            idempotency_key=f"applause-self-refund-{recharge.pk}",
            metadata={
                "recharge_id": str(recharge.pk),
                "coins": str(recharge.coins),
                "reason": SELF_REFUND_REASON,
            },
        )
    except gateway.StripeError as exc:
        log.warning("self refund of recharge %s failed: %s", recharge.pk, exc)
        raise PaymentProviderError(
            "The refund could not be issued right now; your coins are untouched. Please try again."
        ) from exc
    return self_refund_record(recharge=recharge, user=user, stripe_id=stripe_refund.id, key=key)


# The metadata reason of the Stripe refunds a self refund makes: reconciliation and the webhook
# recognise one whose answer was lost and book it as the viewer's self refund.
SELF_REFUND_REASON = "self refund"


def self_refund_debit(*, recharge: Recharge, user: User) -> None:
    """Take the recharge's coins back from the wallet (all of them, or ``CoinsAlreadySpent``),
    once per recharge (``AlreadyRefunded``). Inside the caller's transaction, recharge locked."""
    try:
        result = ledger_post(
            kind=TransactionKind.REFUND,
            idempotency_key=f"refund:self:{recharge.pk}",
            postings=[
                Posting(wallet_get(user=user), -recharge.coins),
                Posting(platform_account(AccountKind.COIN_ISSUANCE), recharge.coins),
            ],
            actor=user,
            memo=f"Refund of recharge #{recharge.pk} (requested by you within "
            f"{settings.SELF_REFUND_WINDOW_HOURS} h): {recharge.coins:,} coins, {recharge.price}",
            reference=f"recharge:{recharge.pk}",
        )
    except InsufficientFunds as exc:
        raise CoinsAlreadySpent() from exc
    if not result.created:
        raise AlreadyRefunded()


def self_refund_record(
    *, recharge: Recharge, user: User, stripe_id: str, key: str | None
) -> RechargeRefund:
    """The refund row of a self refund whose coins ``self_refund_debit`` took back."""
    refund = RechargeRefund.objects.create(  # type: ignore[misc]  # MoneyField takes Money
        recharge=recharge,
        stripe_id=stripe_id,
        source=RefundSource.SELF,
        amount=recharge.price,
        coins=recharge.coins,
        coins_from_wallet=recharge.coins,
        reason="refunded by the viewer",
        actor=user,
        request_key=key,
    )
    recharge.coins_refunded = recharge.coins
    recharge.amount_refunded = recharge.price
    recharge.status = RechargeStatus.REFUNDED
    recharge.save(update_fields=["coins_refunded", "amount_refunded", "status", "updated_at"])
    return refund
