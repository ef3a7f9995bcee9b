"""Refunds and disputes: coins are clawed back; what was already spent becomes coin debt."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone
from djmoney.money import Money

from accounts.audit import audit_record, refuse_own_account
from accounts.client_address import ClientRequest
from config.errors import DomainError, InvalidInput
from wallets import stripe_gateway as gateway
from wallets.models import (
    CREDITED_STATUSES,
    Account,
    AccountKind,
    Recharge,
    RechargeRefund,
    RechargeStatus,
    RefundSource,
    RefundStatus,
    StripeDispute,
    TransactionKind,
)
from wallets.services.ledger import Posting, ledger_post, platform_account
from wallets.services.recharges import (
    DEBT_FREEZE_REASON,
    PaymentProviderError,
    _lock_wallet_and_debt,
)

if TYPE_CHECKING:
    from accounts.models import User


log = logging.getLogger(__name__)


class RefundNotAllowed(DomainError):
    code = "refund_not_allowed"
    status = 409
    default_message = "This recharge cannot be refunded."


class RefundLimitExceeded(DomainError):
    code = "refund_limit_exceeded"
    status = 403
    default_message = "This refund is above what support may refund; ask finance."


class RefundNeedsFinance(DomainError):
    code = "refund_needs_finance"
    status = 403
    default_message = "Some of these coins were already spent; only finance can refund them."


class RefundCurrencyMismatch(ValueError):
    """A refund or dispute amount in another currency than the purchase: never converted."""


def _same_currency(recharge: Recharge, amount: Money) -> bool:
    return str(amount.currency) == str(recharge.price.currency)


def _coins_for_amount(recharge: Recharge, amount: Money) -> int:
    """Coins matching a money amount, pro rata; the last refund takes what is left."""
    if not _same_currency(recharge, amount):
        raise RefundCurrencyMismatch(f"{amount} for a purchase in {recharge.price.currency}")
    remaining_coins = recharge.coins - recharge.coins_refunded
    remaining_amount = recharge.amount_remaining
    if amount.amount >= remaining_amount.amount:
        return remaining_coins
    coins = (Decimal(recharge.coins) * amount.amount / recharge.price.amount).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    return max(0, min(int(coins), remaining_coins))


def _amount_for_coins(recharge: Recharge, coins: int) -> Money:
    remaining_coins = recharge.coins - recharge.coins_refunded
    remaining_amount = recharge.amount_remaining
    if coins >= remaining_coins:
        return remaining_amount
    exponent = gateway.currency_exponent(str(recharge.price.currency))
    value = (recharge.price.amount * coins / recharge.coins).quantize(
        Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_UP
    )
    return min(Money(value, recharge.price.currency), remaining_amount)


def _clawback(
    *, recharge: Recharge, coins: int, kind: str, key: str, actor: User | None, memo: str
) -> tuple[int, int]:
    """wallet −min(balance, N), coin debt −rest, coin issuance +N; debt freezes the wallet."""
    wallet, debt = _lock_wallet_and_debt(recharge.user)
    from_wallet = min(wallet.balance, coins)
    to_debt = coins - from_wallet
    result = ledger_post(
        kind=kind,
        idempotency_key=key,
        postings=[
            Posting(wallet, -from_wallet),
            Posting(debt, -to_debt),
            Posting(platform_account(AccountKind.COIN_ISSUANCE), coins),
        ],
        actor=actor,
        memo=memo,
        reference=f"recharge:{recharge.pk}",
    )
    if not result.created:
        return 0, 0
    if to_debt:
        Account.objects.filter(pk=wallet.pk).update(
            is_frozen=True, frozen_reason=DEBT_FREEZE_REASON
        )
    return from_wallet, to_debt


def recharge_refund_apply(
    *,
    recharge: Recharge,
    stripe_id: str,
    source: str,
    amount: Money,
    coins: int,
    reason: str = "",
    actor: User | None = None,
    request_key: str | None = None,
    support_limited: bool = False,
    dispute: StripeDispute | None = None,
) -> RechargeRefund:
    """Record a refund (or dispute) of a locked recharge and claw its coins back, once per
    Stripe object. Must run inside ``transaction.atomic`` with the recharge row locked.

    Coins the wallet cannot cover were spent: they become coin debt, and the gifts they
    funded are booked by ``CHARGEBACK_POLICY`` (``chargeback_allocate``), whatever the cause
    (a dispute, a staff refund, a refund made in Stripe)."""
    if not _same_currency(recharge, amount):
        raise RefundCurrencyMismatch(f"{amount} for a purchase in {recharge.price.currency}")
    existing = RechargeRefund.objects.filter(stripe_id=stripe_id, source=source).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            refund = RechargeRefund.objects.create(  # type: ignore[misc]  # MoneyField takes Money
                recharge=recharge,
                stripe_id=stripe_id,
                source=source,
                amount=amount,
                coins=coins,
                reason=reason[:500],
                actor=actor,
                request_key=request_key,
                support_limited=support_limited,
            )
    except IntegrityError:
        return RechargeRefund.objects.get(stripe_id=stripe_id, source=source)
    if coins > 0:
        kind = TransactionKind.DISPUTE if source == RefundSource.DISPUTE else TransactionKind.REFUND
        from_wallet, to_debt = _clawback(
            recharge=recharge,
            coins=coins,
            kind=kind,
            key=f"{kind}:{stripe_id}",
            actor=actor,
            memo=f"{refund.get_source_display()} of recharge #{recharge.pk}"
            + (f": {reason}" if reason else ""),
        )
        RechargeRefund.objects.filter(pk=refund.pk).update(
            coins_from_wallet=from_wallet, coins_to_debt=to_debt
        )
        refund.coins_from_wallet, refund.coins_to_debt = from_wallet, to_debt
        if to_debt:
            from wallets.services.chargebacks import chargeback_allocate

            chargeback_allocate(
                recharge=recharge, refund=refund, spent_coins=to_debt, dispute=dispute
            )
    recharge.coins_refunded += coins
    recharge.amount_refunded += amount
    if source == RefundSource.DISPUTE:
        recharge.status = RechargeStatus.DISPUTED
    elif recharge.coins_refunded >= recharge.coins and recharge.status == RechargeStatus.SUCCEEDED:
        recharge.status = RechargeStatus.REFUNDED
    recharge.save(update_fields=["coins_refunded", "amount_refunded", "status", "updated_at"])
    _refund_notice(recharge, refund)
    return refund


def _refund_notice(recharge: Recharge, refund: RechargeRefund) -> None:
    """Tell the viewer, in the refund's transaction, what was refunded and clawed back."""
    from notifications.services import email_enqueue, site_url

    email_enqueue(
        event=f"recharge_refund:{refund.pk}",
        user=recharge.user,
        template="recharge_refunded",
        context={
            "recharge_id": recharge.pk,
            "disputed": refund.source == RefundSource.DISPUTE,
            "coins": f"{refund.coins:,}",
            "price": f"{refund.amount.currency} {refund.amount.amount:,.2f}",
            "coins_clawed": f"{refund.coins_from_wallet:,}",
            "coins_debt": f"{refund.coins_to_debt:,}" if refund.coins_to_debt else "",
            "wallet_url": site_url("/wallet/"),
        },
    )


@transaction.atomic
def recharge_refund(
    *,
    recharge: Recharge,
    reason: str,
    actor: User,
    coins: int | None = None,
    amount: Money | None = None,
    idempotency_key: str | None = None,
    support_limit: int | None = None,
    allow_debt: bool = True,
    request: ClientRequest | None = None,
) -> RechargeRefund:
    """Staff refund, full or partial (by coins or by amount), through Stripe, with clawback.

    Idempotent per ``idempotency_key`` (the admin form sends one). Audited
    (``recharge_refund``) in the same transaction. ``recharge_refund_by_staff`` decides the
    two limits from the actor's role:

    - ``support_limit``: coins a support member may refund, cumulative per recharge and per
      member over a rolling 24 h (``RefundLimitExceeded``). Race-safe: the recharge row and
      the member's user row are locked before counting, so two refunds at once are counted
      one after the other.
    - ``allow_debt=False``: refuse a refund the wallet cannot cover (coins already spent:
      it would create coin debt and claw back creators; ``RefundNeedsFinance``). The wallet
      row stays locked until the refund commits, so a gift cannot spend the coins between
      the check and the clawback.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required.", fields={"reason": ["This field is required."]})
    # Staff never refund their own purchases (callers check first, outside their transaction,
    # so the refusal's audit row survives; this is the backstop).
    refuse_own_account(actor=actor, owner=recharge.user, action="recharge_refund", obj=recharge)
    recharge = Recharge.objects.select_for_update().get(pk=recharge.pk)
    if idempotency_key:
        done = RechargeRefund.objects.filter(request_key=idempotency_key).first()
        if done is not None:
            return done
    if recharge.status != RechargeStatus.SUCCEEDED or not recharge.payment_intent:
        raise RefundNotAllowed(
            f"Only a succeeded recharge can be refunded (this one is {recharge.status})."
        )
    if recharge.refunds.filter(status=RefundStatus.REQUESTED).exists():
        raise RefundNotAllowed(
            "The viewer's own refund of this recharge is waiting for Stripe; try again shortly."
        )
    remaining_coins = recharge.coins - recharge.coins_refunded
    remaining_amount = recharge.amount_remaining
    if coins is not None and amount is not None:
        raise InvalidInput("Give coins or an amount, not both.")
    if coins is None and amount is None:
        coins, amount = remaining_coins, remaining_amount
    elif coins is not None:
        if (
            isinstance(coins, bool)
            or not isinstance(coins, int)
            or not 0 < coins <= remaining_coins
        ):
            raise InvalidInput(
                f"Coins must be between 1 and {remaining_coins}.",
                fields={"coins": [f"Must be between 1 and {remaining_coins}."]},
            )
        amount = _amount_for_coins(recharge, coins)
    else:
        if amount is None:  # unreachable (one of the two is given): narrows the type
            raise InvalidInput("Give coins or an amount.")
        if str(amount.currency) != str(recharge.price.currency) or not (
            0 < amount.amount <= remaining_amount.amount
        ):
            raise InvalidInput(
                f"The amount must be more than zero and at most {remaining_amount}.",
                fields={"amount": [f"At most {remaining_amount}."]},
            )
        coins = _coins_for_amount(recharge, amount)
    if amount.amount <= 0:
        raise InvalidInput("That refund is too small.", fields={"coins": ["Too small."]})
    if support_limit is not None:
        _support_limit_check(recharge=recharge, actor=actor, coins=coins, limit=support_limit)
    if not allow_debt:
        wallet, _ = _lock_wallet_and_debt(recharge.user)
        if wallet.balance < coins:
            raise RefundNeedsFinance(
                f"The viewer has only {wallet.balance:,} of these {coins:,} coins left (the "
                "rest was spent): refunding would put them into coin debt and claw back the "
                "creators they gifted. Ask finance for this one."
            )
    before = {"status": recharge.status, "coins_refunded": recharge.coins_refunded}
    key = idempotency_key or f"{recharge.pk}-{recharge.refunds.count() + 1}"
    try:
        stripe_refund = gateway.refund_create(
            payment_intent_id=recharge.payment_intent,
            amount=amount,
            idempotency_key=f"applause-refund-{key}",
            metadata={"recharge_id": str(recharge.pk), "coins": str(coins), "reason": reason[:400]},
        )
    except gateway.StripeError as exc:
        log.warning("refund of recharge %s failed: %s", recharge.pk, exc)
        raise PaymentProviderError(f"Stripe refused the refund: {exc.user_message or exc}") from exc
    refund = recharge_refund_apply(
        recharge=recharge,
        stripe_id=stripe_refund.id,
        source=RefundSource.STAFF,
        amount=amount,
        coins=coins,
        reason=reason,
        actor=actor,
        request_key=idempotency_key,
        support_limited=support_limit is not None,
    )
    recharge.refresh_from_db()
    audit_record(
        actor=actor,
        action="recharge_refund",
        obj=recharge,
        before=before,
        after={
            "status": recharge.status,
            "coins_refunded": recharge.coins_refunded,
            "refund": refund.pk,
            "amount": str(refund.amount),
            "coins_to_debt": refund.coins_to_debt,
        },
        reason=reason,
        request=request,
    )
    return refund


def _support_limit_check(*, recharge: Recharge, actor: User, coins: int, limit: int) -> None:
    """Support's refund cap, cumulative per recharge and per member over a rolling day.

    The caller holds the recharge row lock (per-recharge refunds queue there); the member's
    user row is locked here, always after a recharge row, so one member's refunds of
    different recharges are counted one after the other too."""
    from accounts.models import User

    User.objects.select_for_update().filter(pk=actor.pk).first()
    limited = RechargeRefund.objects.filter(support_limited=True)
    on_recharge = limited.filter(recharge=recharge).aggregate(total=Sum("coins"))["total"] or 0
    if on_recharge + coins > limit:
        raise RefundLimitExceeded(
            f"Support can refund up to {limit:,} coins of one purchase; {on_recharge:,} of this "
            f"one are already refunded by support. Ask finance for this one."
        )
    since = timezone.now() - timedelta(days=1)
    today = (
        limited.filter(actor=actor, created_at__gte=since).aggregate(total=Sum("coins"))["total"]
        or 0
    )
    if today + coins > limit:
        raise RefundLimitExceeded(
            f"Support can refund up to {limit:,} coins in 24 hours; you refunded {today:,} "
            f"already. Ask finance for this one."
        )


def _refund_coins_hint(recharge: Recharge, stripe_refund: gateway.Refund, amount: Money) -> int:
    hinted = stripe_refund.metadata.get("coins", "")
    if stripe_refund.metadata.get("recharge_id") == str(recharge.pk) and hinted.isdigit():
        return min(int(hinted), recharge.coins - recharge.coins_refunded)
    return _coins_for_amount(recharge, amount)


@transaction.atomic
def recharge_refund_from_stripe(
    *, recharge: Recharge, stripe_refund: gateway.Refund
) -> RechargeRefund | None:
    """Apply a refund Stripe made that we have not recorded (dashboard, lost answer)."""
    if stripe_refund.status not in ("succeeded", "pending"):
        return None
    recharge = Recharge.objects.select_for_update().get(pk=recharge.pk)
    refund_id = stripe_refund.id
    known = RechargeRefund.objects.filter(stripe_id=refund_id).first()
    if known is not None:
        return known
    if recharge.status not in CREDITED_STATUSES:
        return None
    amount = stripe_refund.money
    if not _same_currency(recharge, amount):
        # Stripe refunds in the charge's currency; anything else is not ours to guess at
        # (reconciliation opens a discrepancy for a refund it cannot apply).
        log.warning(
            "refund %s is %s, recharge %s is in %s",
            refund_id,
            amount,
            recharge.pk,
            recharge.price.currency,
        )
        return None
    booked = _self_refund_found(recharge=recharge, stripe_refund=stripe_refund, amount=amount)
    if booked is _DUPLICATE:
        return None  # reconciliation opens a discrepancy for staff
    if booked is not None:
        found: RechargeRefund = booked
        return found
    coins = _refund_coins_hint(recharge, stripe_refund, amount)
    return recharge_refund_apply(
        recharge=recharge,
        stripe_id=refund_id,
        source=RefundSource.STRIPE,
        amount=amount,
        coins=coins,
        reason="refund found in Stripe",
    )


# A second Stripe refund for one self refund row (only a Stripe without idempotency keys
# makes one): never applied by itself.
_DUPLICATE: Any = object()


def _self_refund_found(*, recharge: Recharge, stripe_refund: gateway.Refund, amount: Money) -> Any:
    """The viewer's self refund this Stripe refund belongs to, finished with it: a
    ``requested`` one (its request died, or Stripe's answer was lost: the refund's metadata
    names the row) becomes ``succeeded``; one from before refunds had phases (no row) is
    booked as that self refund, with its own ledger key, so the viewer's retry finds it.
    None when it is not one (or the coins are no longer all in the wallet: then it is booked
    like any refund found in Stripe, with a clawback); ``_DUPLICATE`` for a second Stripe
    refund of a row that already has one."""
    from wallets.services.self_refund import (
        SELF_REFUND_REASON,
        self_refund_complete,
        self_refund_debit,
        self_refund_record,
    )

    metadata = stripe_refund.metadata
    if metadata.get("reason") != SELF_REFUND_REASON or metadata.get("recharge_id") != str(
        recharge.pk
    ):
        return None
    row_id = metadata.get("refund_id") or ""
    if row_id.isdigit():
        row = RechargeRefund.objects.filter(
            pk=int(row_id), recharge=recharge, source=RefundSource.SELF
        ).first()
        if row is None or row.status == RefundStatus.FAILED:
            return None
        if row.status == RefundStatus.REQUESTED:
            return self_refund_complete(refund=row, stripe_id=stripe_refund.id)
        log.error(
            "refund %s at Stripe duplicates self refund %s (%s)",
            stripe_refund.id,
            row.pk,
            row.stripe_id,
        )
        return _DUPLICATE
    if (
        recharge.status != RechargeStatus.SUCCEEDED
        or recharge.coins_refunded
        or amount != recharge.price
        or recharge.refunds.filter(source=RefundSource.SELF).exists()
    ):
        return None
    try:
        with transaction.atomic():
            self_refund_debit(recharge=recharge, user=recharge.user)
            return self_refund_record(
                recharge=recharge,
                user=recharge.user,
                stripe_id=stripe_refund.id,
                key=None,
            )
    except RefundNotAllowed:
        return None


def recharge_refunds_sync(*, recharge: Recharge) -> int:
    """Apply every refund Stripe has for this recharge's payment and we do not. Returns count."""
    if not recharge.payment_intent:
        return 0
    applied = 0
    for stripe_refund in gateway.refunds_for_payment_intent(recharge.payment_intent):
        if RechargeRefund.objects.filter(stripe_id=stripe_refund.id).exists():
            continue
        if recharge_refund_from_stripe(recharge=recharge, stripe_refund=stripe_refund):
            applied += 1
    return applied
