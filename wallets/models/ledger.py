"""The ledger: accounts, journal transactions and immutable entries (see LEDGER.md)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import ImmutableModel


class Unit(models.TextChoices):
    COIN = "COIN", "coins"
    DIAMOND = "DIAMOND", "diamonds"


class AccountKind(models.TextChoices):
    WALLET = "wallet", "Coin wallet"
    COIN_DEBT = "coin_debt", "Coin debt"
    COIN_ISSUANCE = "coin_issuance", "Coin issuance"
    ADJUSTMENTS = "adjustments", "Coin adjustments"
    COINS_SPENT = "coins_spent", "Coins spent"
    COIN_WRITE_OFFS = "coin_write_offs", "Coin write-offs"
    DIAMONDS_PENDING = "diamonds_pending", "Diamonds pending"
    DIAMONDS_AVAILABLE = "diamonds_available", "Diamonds available"
    DIAMONDS_IN_PAYOUT = "diamonds_in_payout", "Diamonds in payout"
    DIAMOND_ISSUANCE = "diamond_issuance", "Diamond issuance"
    DIAMONDS_PAID_OUT = "diamonds_paid_out", "Diamonds paid out"
    DIAMOND_ADJUSTMENTS = "diamond_adjustments", "Diamond adjustments"
    # Diamonds creators keep although the coins that funded them were charged back.
    CHARGEBACK_LOSSES = "chargeback_losses", "Chargeback losses (absorbed)"
    # Coins of gifts toward all-or-nothing goals, held until the goal's deadline (gifts app).
    GOAL_HOLDING = "goal_holding", "Goal holding (all-or-nothing)"


UNIT_OF_KIND = {
    AccountKind.WALLET: Unit.COIN,
    AccountKind.COIN_DEBT: Unit.COIN,
    AccountKind.COIN_ISSUANCE: Unit.COIN,
    AccountKind.ADJUSTMENTS: Unit.COIN,
    AccountKind.COINS_SPENT: Unit.COIN,
    AccountKind.COIN_WRITE_OFFS: Unit.COIN,
    AccountKind.DIAMONDS_PENDING: Unit.DIAMOND,
    AccountKind.DIAMONDS_AVAILABLE: Unit.DIAMOND,
    AccountKind.DIAMONDS_IN_PAYOUT: Unit.DIAMOND,
    AccountKind.DIAMOND_ISSUANCE: Unit.DIAMOND,
    AccountKind.DIAMONDS_PAID_OUT: Unit.DIAMOND,
    AccountKind.DIAMOND_ADJUSTMENTS: Unit.DIAMOND,
    AccountKind.CHARGEBACK_LOSSES: Unit.DIAMOND,
    AccountKind.GOAL_HOLDING: Unit.COIN,
}

# Accounts owned by a user; the others are the platform's (one each).
USER_KINDS = {
    AccountKind.WALLET,
    AccountKind.COIN_DEBT,
    AccountKind.DIAMONDS_PENDING,
    AccountKind.DIAMONDS_AVAILABLE,
    AccountKind.DIAMONDS_IN_PAYOUT,
}
NON_NEGATIVE_KINDS = [
    AccountKind.WALLET,
    AccountKind.DIAMONDS_PENDING,
    AccountKind.DIAMONDS_AVAILABLE,
    AccountKind.DIAMONDS_IN_PAYOUT,
]
NON_POSITIVE_KINDS = [AccountKind.COIN_DEBT]
# Hot accounts take many concurrent credits: they are appended to, never updated per posting.
# Their ``balance`` column is a checkpoint covering entries created before ``checkpoint_at``.
HOT_KINDS = {
    AccountKind.COIN_ISSUANCE,
    AccountKind.ADJUSTMENTS,
    AccountKind.COINS_SPENT,
    AccountKind.COIN_WRITE_OFFS,
    AccountKind.DIAMONDS_PENDING,
    AccountKind.DIAMOND_ISSUANCE,
    AccountKind.DIAMONDS_PAID_OUT,
    AccountKind.DIAMOND_ADJUSTMENTS,
    AccountKind.CHARGEBACK_LOSSES,
    AccountKind.GOAL_HOLDING,
}


class Account(models.Model):
    kind = models.CharField(max_length=32, choices=AccountKind.choices)
    unit = models.CharField(max_length=8, choices=Unit.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_accounts",
    )
    balance = models.BigIntegerField(default=0)
    is_hot = models.BooleanField(default=False)
    checkpoint_at = models.DateTimeField(null=True, blank=True)
    is_frozen = models.BooleanField(default=False)
    frozen_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(balance__gte=0) | ~Q(kind__in=NON_NEGATIVE_KINDS),
                name="account_balance_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(balance__lte=0) | ~Q(kind__in=NON_POSITIVE_KINDS),
                name="account_debt_non_positive",
            ),
            models.UniqueConstraint(
                fields=["kind", "user"],
                condition=Q(user__isnull=False),
                name="account_unique_kind_per_user",
            ),
            models.UniqueConstraint(
                fields=["kind"],
                condition=Q(user__isnull=True),
                name="account_unique_platform_kind",
            ),
        ]

    def __str__(self) -> str:
        owner = self.user.username if self.user_id and self.user else "platform"
        return f"{self.get_kind_display()} ({owner})"


class TransactionKind(models.TextChoices):
    RECHARGE = "recharge", "Recharge"
    GRANT = "grant", "Grant"
    ADJUSTMENT = "adjustment", "Adjustment"
    GIFT = "gift", "Gift"
    # A membership month (join, renewal or gifted): booked like a gift (memberships app).
    MEMBERSHIP = "membership", "Membership"
    RELEASE = "release", "Earnings released"
    PAYOUT_CREATED = "payout_created", "Payout created"
    PAYOUT_PAID = "payout_paid", "Payout paid"
    PAYOUT_FAILED = "payout_failed", "Payout returned"
    REFUND = "refund", "Refund"
    DISPUTE = "dispute", "Dispute"
    DISPUTE_WON = "dispute_won", "Dispute won"
    WRITE_OFF = "write_off", "Write-off"
    DEBT_SETTLEMENT = "debt_settlement", "Debt settled"
    CLAWBACK = "clawback", "Earnings clawback"
    REVERSAL = "reversal", "Reversal"
    # All-or-nothing goals at their deadline: the held coins become the creator's diamonds
    # (met) or go back to the gifters (missed).
    GOAL_MET = "goal_met", "Goal met"
    GOAL_REFUND = "goal_refund", "Goal missed: refund"


class LedgerTransaction(ImmutableModel):
    """One journal row per money movement; its entries sum to zero per unit."""

    kind = models.CharField(max_length=32, choices=TransactionKind.choices)
    idempotency_key = models.CharField(max_length=255, unique=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    memo = models.CharField(max_length=500, blank=True)
    # Indexed by ledgertx_reference (a plain btree: nothing looks references up by prefix,
    # so no varchar_pattern_ops twin) and ledgertx_reverses (only the few reversals: a NULL
    # is not worth an index entry per journal row). Issue #15: fewer index inserts per gift.
    reference = models.CharField(max_length=100, blank=True)
    reverses = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reversals",
        db_index=False,
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["kind", "created_at"], name="ledgertx_kind_created"),
            models.Index(fields=["reference"], name="ledgertx_reference"),
            models.Index(
                fields=["reverses"],
                condition=Q(reverses__isnull=False),
                name="ledgertx_reverses",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.idempotency_key}"


class Entry(ImmutableModel):
    transaction = models.ForeignKey(
        LedgerTransaction, on_delete=models.PROTECT, related_name="entries"
    )
    # No index of its own: entry_account_newest and entry_account_created_amount lead with
    # the account (issue #15: four entries per gift, one index insert fewer each).
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    amount = models.BigIntegerField()
    # Set for cold (row-locked) accounts: the account's balance right after this entry.
    balance_after = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "entries"
        constraints = [
            models.CheckConstraint(condition=~Q(amount=0), name="entry_amount_non_zero"),
        ]
        indexes = [
            models.Index(fields=["account", "-id"], name="entry_account_newest"),
            models.Index(
                fields=["account", "created_at"],
                include=["amount"],
                name="entry_account_created_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount:+d} → account {self.account_id}"
