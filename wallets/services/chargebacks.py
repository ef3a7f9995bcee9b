"""Chargebacks that don't ruin creators: who bears a clawback of coins already gifted.

When a dispute or a refund (by staff, or one made in Stripe's dashboard) claws back a
recharge and the wallet cannot cover it, the shortfall is coins the viewer already spent
(they become the viewer's coin debt). ``chargeback_allocate`` is the one policy for every
such clawback: it traces which gifts (and membership months, booked the same way) those
coins funded and books the creators' side by ``CHARGEBACK_POLICY``:

- ``absorb``: the creators keep their diamonds; the platform books them to its
  ``chargeback_losses`` account.
- ``clawback_pending``: the diamonds are taken back from each creator's *pending* diamonds
  (still on hold), never below zero; whatever pending cannot cover is absorbed as above.
  Available, in-payout and paid-out diamonds are never touched.

Tracing is FIFO: the viewer's gifts since the recharge was paid, oldest first, take the
spent coins until they are covered (coins of a gift already traced by another dispute are
skipped). Each gift's diamonds are pro rata to the coins traced to it (rounded down).
One clawback transaction per creator (key ``chargeback:<dispute or refund id>:<pending
account>``) with a memo the creator's statement shows, naming the cause (a chargeback, or a
refund to the buyer); a won dispute reverses its own.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.conf import settings
from django.db.models import Sum

from wallets.models import (
    Account,
    AccountKind,
    ChargebackAllocation,
    Entry,
    LedgerTransaction,
    Recharge,
    RechargeRefund,
    RefundSource,
    StripeDispute,
    TransactionKind,
)
from wallets.services.ledger import Posting, account_balance, ledger_post, platform_account

ABSORB = "absorb"
# Spending that credits a creator's pending diamonds: a chargeback traces both alike.
SPENDING_KINDS = [TransactionKind.GIFT, TransactionKind.MEMBERSHIP]
CLAWBACK_PENDING = "clawback_pending"


def _trace_gifts(*, recharge: Recharge, spent_coins: int) -> list[tuple[int, int]]:
    """(gift transaction id, coins traced to it), oldest gift first, up to ``spent_coins``."""
    wallet = Account.objects.filter(kind=AccountKind.WALLET, user_id=recharge.user_id).first()
    if wallet is None:
        return []
    since = recharge.succeeded_at or recharge.created_at
    gifts = list(
        Entry.objects.filter(
            account=wallet, transaction__kind__in=SPENDING_KINDS, created_at__gte=since
        )
        .order_by("id")
        .values_list("transaction_id", "amount")
    )
    traced_before = dict(
        ChargebackAllocation.objects.filter(
            gift_transaction_id__in=[tx for tx, _ in gifts], reversed=False
        )
        .values("gift_transaction_id")
        .annotate(coins=Sum("coins"))
        .values_list("gift_transaction_id", "coins")
    )
    remaining, traced = spent_coins, []
    for tx, amount in gifts:
        if remaining <= 0:
            break
        free = -amount - traced_before.get(tx, 0)
        take = min(free, remaining)
        if take > 0:
            traced.append((tx, take))
            remaining -= take
    return traced


def _cause(refund: RechargeRefund, who: str, recharge: Recharge) -> str:
    if refund.source == RefundSource.DISPUTE:
        return f"Chargeback on recharge #{recharge.pk} by {who}"
    by = "by Applause support" if refund.source == RefundSource.STAFF else "through Stripe"
    return f"Refund of recharge #{recharge.pk} to {who} ({by})"


def chargeback_allocate(
    *,
    recharge: Recharge,
    refund: RechargeRefund,
    spent_coins: int,
    dispute: StripeDispute | None = None,
) -> list[ChargebackAllocation]:
    """Book the creators' side of a clawback's spent coins (a dispute's, or a refund's).
    Runs inside the clawback's transaction (recharge row locked); idempotent per clawback."""
    if spent_coins <= 0 or refund.allocations.exists():
        return []
    if dispute is not None and dispute.allocations.exists():
        return []  # booked before allocations named their refund
    policy = settings.CHARGEBACK_POLICY
    traced = _trace_gifts(recharge=recharge, spent_coins=spent_coins)
    if not traced:
        return []
    gift_coins = {
        tx: -amount
        for tx, amount in Entry.objects.filter(
            transaction_id__in=[tx for tx, _ in traced],
            account__kind=AccountKind.WALLET,
        ).values_list("transaction_id", "amount")
    }
    credits = {
        tx: (account_id, amount)
        for tx, account_id, amount in Entry.objects.filter(
            transaction_id__in=[tx for tx, _ in traced],
            account__kind=AccountKind.DIAMONDS_PENDING,
        ).values_list("transaction_id", "account_id", "amount")
    }
    by_creator: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for tx, coins in traced:
        if tx not in credits:
            continue
        account_id, diamonds = credits[tx]
        by_creator[account_id].append((tx, coins, diamonds * coins // gift_coins[tx]))

    issuance = platform_account(AccountKind.DIAMOND_ISSUANCE)
    losses = platform_account(AccountKind.CHARGEBACK_LOSSES)
    who = recharge.user.username
    cause = _cause(refund, who, recharge)
    allocations: list[ChargebackAllocation] = []
    # Creators in account-id order: the pending rows are locked in the ledger's lock order.
    for account_id in sorted(by_creator):
        parts = by_creator[account_id]
        owed = sum(d for _, _, d in parts)
        if owed <= 0:
            continue
        clawed_total = 0
        pending = Account.objects.get(pk=account_id)
        if policy == CLAWBACK_PENDING:
            # Locks the hot pending row (releases and payouts queue on it; gifts only append,
            # which can only raise the balance we read).
            pending = Account.objects.select_for_update().get(pk=account_id)
            clawed_total = max(0, min(owed, account_balance(pending)))
        absorbed_total = owed - clawed_total
        coins_total = sum(c for _, c, _ in parts)
        if clawed_total and absorbed_total:
            outcome = (
                f"{clawed_total:,} diamonds taken back from your pending earnings; the other "
                f"{absorbed_total:,} are absorbed by Applause"
            )
        elif clawed_total:
            outcome = f"{clawed_total:,} diamonds taken back from your pending earnings"
        else:
            outcome = f"your {absorbed_total:,} diamonds are untouched (absorbed by Applause)"
        taken = "charged back" if refund.source == RefundSource.DISPUTE else "refunded"
        memo = (
            f"{cause}: {coins_total:,} coins of {len(parts)} gift(s) to you were {taken}; "
            f"{outcome}."
        )
        reference = (
            f"dispute:{dispute.dispute_id}" if dispute is not None else f"refund:{refund.pk}"
        )
        result = ledger_post(
            kind=TransactionKind.CLAWBACK,
            idempotency_key=f"chargeback:{refund.stripe_id}:{account_id}",
            postings=[
                Posting(pending, -clawed_total),
                Posting(issuance, owed),
                Posting(losses, -absorbed_total),
            ],
            memo=memo[:500],
            reference=reference[:100],
        )
        _creator_notice(pending, refund=refund, coins=coins_total, clawed=clawed_total)
        # Oldest gifts are clawed first; the rest of each gift is absorbed.
        left = clawed_total
        for tx, coins, diamonds in parts:
            clawed = min(diamonds, left)
            left -= clawed
            allocations.append(
                ChargebackAllocation.objects.create(
                    dispute=dispute,
                    refund=refund,
                    gift_transaction_id=tx,
                    pending_account_id=account_id,
                    transaction=result.transaction,
                    policy=policy,
                    coins=coins,
                    diamonds=diamonds,
                    diamonds_clawed=clawed,
                    diamonds_absorbed=diamonds - clawed,
                )
            )
    return allocations


def _creator_notice(pending: Account, *, refund: RechargeRefund, coins: int, clawed: int) -> None:
    """Tell the creator, in the same transaction, what the clawback cost them (maybe 0)."""
    from notifications.services import email_enqueue, site_url

    value = (Decimal(clawed) * settings.DIAMOND_VALUE).quantize(Decimal("0.01"))
    if pending.user is None:  # a creator's pending account always has its owner
        return
    email_enqueue(
        event=f"chargeback_creator:{refund.stripe_id}",
        user=pending.user,
        template="chargeback_creator",
        context={
            "coins": f"{coins:,}",
            "diamonds": f"{clawed:,}",
            "cost": clawed > 0,
            "refunded": refund.source != RefundSource.DISPUTE,
            "value": f"{settings.PAYOUT_CURRENCY} {value}",
            "dashboard_url": site_url("/creator/"),
        },
    )


def chargeback_reverse(*, dispute: StripeDispute) -> int:
    """A won dispute: give the creators back what was clawed, and undo the absorbed loss."""
    rows = list(dispute.allocations.filter(reversed=False))
    by_tx: dict[int, list[ChargebackAllocation]] = defaultdict(list)
    for row in rows:
        by_tx[row.transaction_id].append(row)
    issuance = platform_account(AccountKind.DIAMOND_ISSUANCE)
    losses = platform_account(AccountKind.CHARGEBACK_LOSSES)
    for tx_id, parts in sorted(by_tx.items()):
        original = LedgerTransaction.objects.get(pk=tx_id)
        pending = Account.objects.get(pk=parts[0].pending_account_id)
        clawed = sum(p.diamonds_clawed for p in parts)
        absorbed = sum(p.diamonds_absorbed for p in parts)
        ledger_post(
            kind=TransactionKind.REVERSAL,
            idempotency_key=f"chargeback-reversal:{tx_id}",
            postings=[
                Posting(pending, clawed),
                Posting(issuance, -(clawed + absorbed)),
                Posting(losses, absorbed),
            ],
            memo=f"Dispute {dispute.dispute_id} won: the chargeback is undone"
            + (f"; {clawed:,} diamonds returned to your pending earnings." if clawed else "."),
            reference=f"dispute:{dispute.dispute_id}"[:100],
            reverses=original,
        )
    ChargebackAllocation.objects.filter(pk__in=[r.pk for r in rows]).update(reversed=True)
    return len(rows)
