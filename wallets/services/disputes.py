"""Disputes (chargebacks): a dispute opened at Stripe claws the coins back like a refund; a
dispute won gives them back. ``recharge_for_charge`` finds the recharge a Stripe charge paid."""

from __future__ import annotations

import logging

from django.db import transaction

from wallets import stripe_gateway as gateway
from wallets.models import (
    CREDITED_STATUSES,
    Recharge,
    RechargeRefund,
    RechargeStatus,
    RefundSource,
    StripeDispute,
    TransactionKind,
)
from wallets.services.recharges import coins_credit
from wallets.services.refunds import _coins_for_amount, _same_currency, recharge_refund_apply

log = logging.getLogger(__name__)


def recharge_for_charge(*, payment_intent_id: str | None, charge_id: str | None) -> Recharge | None:
    if payment_intent_id:
        return Recharge.objects.filter(payment_intent=payment_intent_id).first()
    if charge_id:
        try:
            charge = gateway.charge_retrieve(charge_id)
        except gateway.StripeError:
            return None
        if charge.payment_intent:
            return Recharge.objects.filter(payment_intent=charge.payment_intent).first()
    return None


def _dispute_row(recharge: Recharge, dispute: gateway.Dispute) -> StripeDispute:
    dispute_id = dispute.id
    amount = gateway.from_minor(dispute.amount, dispute.currency or str(recharge.price.currency))
    row, _ = StripeDispute.objects.get_or_create(  # type: ignore[misc]  # MoneyField takes Money
        dispute_id=dispute_id,
        defaults={
            "recharge": recharge,
            "status": dispute.status or "needs_response",
            "amount": amount,
        },
    )
    return StripeDispute.objects.select_for_update().get(pk=row.pk)


def _dispute_clawback(recharge: Recharge, row: StripeDispute) -> None:
    remaining = recharge.amount_remaining
    disputed = row.amount
    # A dispute is in the charge's currency; one without a usable amount takes it all back.
    if disputed.amount > 0 and _same_currency(recharge, disputed):
        amount = min(disputed, remaining)
    else:
        amount = remaining
    coins = _coins_for_amount(recharge, amount)
    # Coins already spent (the part the wallet cannot cover) funded gifts: the creators'
    # side of that is decided by CHARGEBACK_POLICY, as for every clawback (chargebacks.py).
    applied = recharge_refund_apply(
        recharge=recharge,
        stripe_id=row.dispute_id,
        source=RefundSource.DISPUTE,
        amount=amount,
        coins=coins,
        reason=f"chargeback {row.dispute_id}",
        dispute=row,
    )
    row.coins = applied.coins
    row.clawed_back = True


def _dispute_locked(dispute: gateway.Dispute) -> tuple[Recharge, StripeDispute] | None:
    """The disputed recharge, its row locked, and our row for the dispute (made on first
    sight); None when the charge is not one of our recharges."""
    recharge = recharge_for_charge(
        payment_intent_id=dispute.payment_intent,
        charge_id=dispute.charge,
    )
    if recharge is None:
        return None
    recharge = Recharge.objects.select_for_update().get(pk=recharge.pk)
    return recharge, _dispute_row(recharge, dispute)


@transaction.atomic
def recharge_dispute_open(*, dispute: gateway.Dispute) -> StripeDispute | None:
    """``charge.dispute.created``: the disputed coins are clawed back at once."""
    locked = _dispute_locked(dispute)
    if locked is None:
        return None
    recharge, row = locked
    if row.closed or row.clawed_back or recharge.status not in CREDITED_STATUSES:
        return row
    _dispute_clawback(recharge, row)
    row.status = dispute.status or row.status
    row.save()
    return row


@transaction.atomic
def recharge_dispute_close(*, dispute: gateway.Dispute) -> StripeDispute | None:
    """``charge.dispute.closed``: won gives the coins back (debt first), lost keeps them."""
    locked = _dispute_locked(dispute)
    if locked is None:
        return None
    recharge, row = locked
    if row.closed:
        return row
    status = dispute.status or "lost"
    if status == "won":
        if row.clawed_back and row.coins:
            coins_credit(
                user=recharge.user,
                coins=row.coins,
                kind=TransactionKind.DISPUTE_WON,
                idempotency_key=f"dispute_won:{row.dispute_id}",
                memo=f"Dispute {row.dispute_id} won: coins of recharge #{recharge.pk} returned",
                reference=f"recharge:{recharge.pk}",
            )
            clawed = RechargeRefund.objects.get(
                stripe_id=row.dispute_id, source=RefundSource.DISPUTE
            )
            RechargeRefund.objects.create(  # type: ignore[misc]  # MoneyField takes Money
                recharge=recharge,
                stripe_id=row.dispute_id,
                source=RefundSource.DISPUTE_WON,
                amount=clawed.amount,
                coins=row.coins,
                reason="dispute won",
            )
            recharge.coins_refunded -= row.coins
            recharge.amount_refunded -= clawed.amount
            from wallets.services.chargebacks import chargeback_reverse

            chargeback_reverse(dispute=row)
        if recharge.status == RechargeStatus.DISPUTED:
            recharge.status = (
                RechargeStatus.REFUNDED
                if recharge.coins_refunded >= recharge.coins
                else RechargeStatus.SUCCEEDED
            )
        recharge.save(update_fields=["coins_refunded", "amount_refunded", "status", "updated_at"])
    elif not row.clawed_back and recharge.status in CREDITED_STATUSES:
        _dispute_clawback(recharge, row)
    row.status = status
    row.closed = True
    row.save()
    return row
