"""Viewer protections: spending limits, and how a chargeback is shared out."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from wallets.models.ledger import Account, LedgerTransaction
from wallets.models.payments import RechargeRefund, StripeDispute


class SpendingLimits(models.Model):
    """A viewer's own limits (coins per UTC day / calendar month) and cooling-off threshold.

    ``None`` means no limit of one's own (the platform's limits still apply). A raise (or a
    removal) is stored in the ``*_next`` columns and takes effect at ``*_next_at`` (24 h
    later); a lowering replaces the current value at once and cancels a pending raise.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="spending_limits"
    )
    daily_limit = models.BigIntegerField(null=True, blank=True)
    daily_limit_next = models.BigIntegerField(null=True, blank=True)
    daily_limit_next_at = models.DateTimeField(null=True, blank=True)
    monthly_limit = models.BigIntegerField(null=True, blank=True)
    monthly_limit_next = models.BigIntegerField(null=True, blank=True)
    monthly_limit_next_at = models.DateTimeField(null=True, blank=True)
    # Purchases above this many coins need an explicit confirmation (API: ``confirm: true``).
    confirm_above = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "spending limits"
        constraints = [
            models.CheckConstraint(
                condition=(Q(daily_limit__isnull=True) | Q(daily_limit__gte=0))
                & (Q(daily_limit_next__isnull=True) | Q(daily_limit_next__gte=0))
                & (Q(monthly_limit__isnull=True) | Q(monthly_limit__gte=0))
                & (Q(monthly_limit_next__isnull=True) | Q(monthly_limit_next__gte=0))
                & (Q(confirm_above__isnull=True) | Q(confirm_above__gte=0)),
                name="spendinglimits_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"limits of user {self.user_id}"


class ChargebackAllocation(models.Model):
    """Which gift a clawed-back recharge's spent coins funded, and who bore the diamonds.

    One row per (clawback, gift transaction). A clawback is a ``RechargeRefund`` (a dispute,
    a staff refund or one made in Stripe); a dispute's rows also name the dispute (a won
    dispute reverses them). ``diamonds`` = ``diamonds_clawed`` (taken from the creator's
    pending diamonds) + ``diamonds_absorbed`` (kept by the creator, booked to the platform's
    chargeback losses). ``transaction`` is the creator's clawback journal row.
    """

    dispute = models.ForeignKey(
        StripeDispute, null=True, blank=True, on_delete=models.PROTECT, related_name="allocations"
    )
    refund = models.ForeignKey(
        RechargeRefund,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="allocations",
    )
    gift_transaction = models.ForeignKey(
        LedgerTransaction, on_delete=models.PROTECT, related_name="chargeback_allocations"
    )
    pending_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="+")
    policy = models.CharField(max_length=32)
    coins = models.BigIntegerField()
    diamonds = models.BigIntegerField()
    diamonds_clawed = models.BigIntegerField()
    diamonds_absorbed = models.BigIntegerField()
    reversed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dispute", "gift_transaction"], name="chargebackalloc_once_per_gift"
            ),
            models.UniqueConstraint(
                fields=["refund", "gift_transaction"], name="chargebackalloc_once_per_refund_gift"
            ),
            models.CheckConstraint(
                condition=Q(dispute__isnull=False) | Q(refund__isnull=False),
                name="chargebackalloc_has_a_cause",
            ),
            models.CheckConstraint(
                condition=Q(coins__gt=0)
                & Q(diamonds_clawed__gte=0)
                & Q(diamonds_absorbed__gte=0)
                & Q(diamonds=models.F("diamonds_clawed") + models.F("diamonds_absorbed")),
                name="chargebackalloc_parts_add_up",
            ),
        ]

    def __str__(self) -> str:
        cause = self.dispute_id or f"refund {self.refund_id}"
        return f"{cause}: gift tx {self.gift_transaction_id}, {self.coins} coins"
