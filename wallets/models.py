# mypy: disable-error-code="django-manager-missing"
# (djmoney swaps in dynamically built managers on models with a MoneyField; the stubs plugin
# cannot see them, and the default manager type is what we use anyway.)
"""The ledger: accounts, journal transactions and immutable entries (see LEDGER.md)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from djmoney.models.fields import MoneyField
from djmoney.money import Money


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


class ImmutableQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError(f"{self.model.__name__} rows are immutable.")

    def delete(self):
        raise PermissionError(f"{self.model.__name__} rows are immutable.")

    delete.queryset_only = True  # type: ignore[attr-defined]


class ImmutableModel(models.Model):
    """Refuses updates and deletes in the model layer (a PostgreSQL trigger backs this up)."""

    objects = ImmutableQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError(f"{type(self).__name__} rows are immutable.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError(f"{type(self).__name__} rows are immutable.")


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
    reference = models.CharField(max_length=100, blank=True, db_index=True)
    reverses = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversals"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["kind", "created_at"], name="ledgertx_kind_created")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.idempotency_key}"


class Entry(ImmutableModel):
    transaction = models.ForeignKey(
        LedgerTransaction, on_delete=models.PROTECT, related_name="entries"
    )
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
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


# --- Coin packages and recharges ------------------------------------------------------------


class CoinPackage(models.Model):
    """A coin bundle on sale: coins (+ bonus) for a price per currency (``CoinPackagePrice``)."""

    coins = models.BigIntegerField()
    bonus_coins = models.BigIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    available_from = models.DateTimeField(null=True, blank=True)
    available_until = models.DateTimeField(null=True, blank=True)
    sort_order = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["sort_order", "coins", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(coins__gt=0), name="coinpackage_coins_positive"),
            models.CheckConstraint(
                condition=Q(bonus_coins__gte=0), name="coinpackage_bonus_non_negative"
            ),
        ]

    def __str__(self) -> str:
        bonus = f" + {self.bonus_coins} bonus" if self.bonus_coins else ""
        return f"{self.coins} coins{bonus}"

    @property
    def total_coins(self) -> int:
        return self.coins + self.bonus_coins


class CoinPackagePrice(models.Model):
    package = models.ForeignKey(CoinPackage, on_delete=models.CASCADE, related_name="prices")
    price: Money = MoneyField(max_digits=12, decimal_places=2, default_currency="USD")  # type: ignore[assignment]
    price_currency: str

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["package", "price_currency"], name="coinpackageprice_one_per_currency"
            ),
            models.CheckConstraint(condition=Q(price__gt=0), name="coinpackageprice_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.package}: {self.price}"


class PriceChangeStatus(models.TextChoices):
    PENDING = "pending", "Awaiting a second finance member"
    APPROVED = "approved", "Approved and in effect"
    REJECTED = "rejected", "Rejected"


class CoinPackagePriceChange(models.Model):
    """A proposed price of a coin package in one currency (new or changed). Prices change only
    through these: one finance member proposes, a different one approves, and only then does
    the ``CoinPackagePrice`` row change (``wallets.services.packages``)."""

    package = models.ForeignKey(CoinPackage, on_delete=models.PROTECT, related_name="+")
    price: Money = MoneyField(max_digits=12, decimal_places=2, default_currency="USD")  # type: ignore[assignment]
    price_currency: str
    # The price when it was proposed (null: the package had none in this currency).
    previous_amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    reason = models.CharField(max_length=500)
    status = models.CharField(
        max_length=16, choices=PriceChangeStatus.choices, default=PriceChangeStatus.PENDING
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="pricechange_positive"),
            # The checker is never the maker, whatever the code does.
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=models.F("requested_by")),
                name="pricechange_four_eyes",
            ),
            # One open proposal per package and currency: a second must wait or replace it.
            models.UniqueConstraint(
                fields=["package", "price_currency"],
                condition=Q(status="pending"),
                name="pricechange_one_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"Price change #{self.pk}: {self.package} → {self.price} ({self.status})"


class StripeCustomer(models.Model):
    """The Stripe Customer of a user, created once and reused for every payment."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="stripe_customer"
    )
    customer_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.customer_id


class RechargeStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REFUNDED = "refunded", "Refunded"
    DISPUTED = "disputed", "Disputed"


# Statuses of a recharge whose coins were credited (exactly once) by the ledger.
CREDITED_STATUSES = [RechargeStatus.SUCCEEDED, RechargeStatus.REFUNDED, RechargeStatus.DISPUTED]


class Recharge(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="recharges"
    )
    package = models.ForeignKey(
        CoinPackage, null=True, blank=True, on_delete=models.PROTECT, related_name="recharges"
    )
    coins = models.BigIntegerField()
    price: Money = MoneyField(max_digits=12, decimal_places=2, default_currency="USD")  # type: ignore[assignment]
    price_currency: str
    payment_intent = models.CharField(max_length=255, unique=True, null=True, blank=True)
    # The client's Idempotency-Key (API or portal): a retry after a crash that lost the
    # idempotency record finds this recharge, or its PaymentIntent at Stripe, by it.
    client_key = models.CharField(max_length=255, null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=RechargeStatus.choices, default=RechargeStatus.PENDING
    )
    failure_message = models.CharField(max_length=500, blank=True)
    # What the buyer is told about a failure ("card_declined"), and for staff only: Stripe's
    # own reason (code / decline code / message) and the card's fingerprint (card testing).
    failure_code = models.CharField(max_length=64, blank=True, default="", db_default="")
    # Database defaults too: the set-based writers (bench seeds, bulk SQL) insert rows without
    # naming every column.
    decline_reason = models.CharField(max_length=500, blank=True, default="", db_default="")
    card_fingerprint = models.CharField(max_length=64, blank=True, default="", db_default="")
    # Net coins taken back by refunds and disputes (a won dispute gives them back).
    coins_refunded = models.BigIntegerField(default=0)
    # Net money refunded, always in the purchase's currency (a CHECK below holds the two
    # currency columns together): every new row sets it, see ``recharge_row_new``.
    amount_refunded: Money = MoneyField(  # type: ignore[assignment]
        max_digits=12, decimal_places=2, default_currency="USD", default=0
    )
    amount_refunded_currency: str
    created_at = models.DateTimeField(default=timezone.now)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(coins__gt=0), name="recharge_coins_positive"),
            models.CheckConstraint(
                condition=Q(coins_refunded__gte=0) & Q(coins_refunded__lte=models.F("coins")),
                name="recharge_coins_refunded_in_range",
            ),
            models.UniqueConstraint(
                fields=["user", "client_key"], name="recharge_unique_user_client_key"
            ),
            # Refunds are in the purchase's currency, between nothing and the whole price.
            models.CheckConstraint(
                condition=Q(amount_refunded_currency=models.F("price_currency"))
                & Q(amount_refunded__gte=0)
                & Q(amount_refunded__lte=models.F("price")),
                name="recharge_amount_refunded_in_purchase_currency",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="recharge_user_newest"),
            models.Index(fields=["status", "created_at"], name="recharge_status_created"),
        ]

    def __str__(self) -> str:
        return f"Recharge #{self.pk} ({self.coins} coins, {self.status})"

    @property
    def ledger_key(self) -> str:
        return f"recharge:{self.payment_intent}"

    @property
    def amount_remaining(self) -> Money:
        """What is still refundable, in the purchase's currency."""
        return Money(self.price.amount - self.amount_refunded.amount, self.price.currency)


def recharge_row_new(**fields) -> Recharge:
    """Create a Recharge with ``amount_refunded`` zero in the purchase's currency.

    djmoney's ``default`` cannot depend on another column, so every creation goes through
    here (the CHECK ``recharge_amount_refunded_in_purchase_currency`` refuses any other).
    """
    price = fields["price"]
    assert isinstance(price, Money), price
    fields.setdefault("amount_refunded", Money(0, price.currency))
    return Recharge.objects.create(**fields)


class RefundSource(models.TextChoices):
    STAFF = "staff", "Staff refund"
    STRIPE = "stripe", "Found in Stripe"
    DISPUTE = "dispute", "Dispute"
    DISPUTE_WON = "dispute_won", "Dispute won (coins returned)"
    SELF = "self", "Refunded by the viewer"


class RechargeRefund(models.Model):
    """One clawback (or, for a won dispute, a give-back) applied to a recharge."""

    recharge = models.ForeignKey(Recharge, on_delete=models.PROTECT, related_name="refunds")
    # The Stripe refund (re_...) or dispute (dp_...) id; one application per Stripe object.
    stripe_id = models.CharField(max_length=255)
    source = models.CharField(max_length=16, choices=RefundSource.choices)
    amount: Money = MoneyField(max_digits=12, decimal_places=2, default_currency="USD")  # type: ignore[assignment]
    coins = models.BigIntegerField()
    coins_from_wallet = models.BigIntegerField(default=0)
    coins_to_debt = models.BigIntegerField(default=0)
    reason = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The staff form's idempotency key: a double submit refunds once.
    request_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    # Made by a support member (not finance): counts against SUPPORT_REFUND_LIMIT_COINS, per
    # recharge and per member over a rolling day (wallets.services.refunds).
    support_limited = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["stripe_id", "source"], name="rechargerefund_once_per_stripe_object"
            ),
        ]
        indexes = [
            models.Index(
                fields=["actor", "created_at"],
                condition=Q(support_limited=True),
                name="rechargerefund_support_day",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.stripe_id}: {self.coins} coins"


class StripeEvent(models.Model):
    """Every webhook event, stored once (the unique id makes redeliveries harmless)."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=255, blank=True, db_index=True)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    result = models.CharField(max_length=255, blank=True)

    class Meta:
        indexes = [
            # A stored event is unprocessed only when applying it failed (the row and its
            # effects commit together otherwise): reconciliation lists these.
            models.Index(
                fields=["received_at"],
                condition=Q(processed_at__isnull=True),
                name="stripeevent_unprocessed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type}"


class StripeDispute(models.Model):
    dispute_id = models.CharField(max_length=255, unique=True)
    recharge = models.ForeignKey(Recharge, on_delete=models.PROTECT, related_name="disputes")
    status = models.CharField(max_length=40)
    amount: Money = MoneyField(max_digits=12, decimal_places=2, default_currency="USD")  # type: ignore[assignment]
    coins = models.BigIntegerField(default=0)
    clawed_back = models.BooleanField(default=False)
    closed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.dispute_id} ({self.status})"


# --- Reconciliation (payments here; payouts reuse these models) -----------------------------


class ReconciliationRun(models.Model):
    kind = models.CharField(max_length=32)  # "payments", "payouts"
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, default="running")  # running/done/skipped/failed
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} reconciliation #{self.pk} ({self.status})"

    @property
    def duration(self):
        return self.finished_at - self.started_at if self.finished_at else None


class DiscrepancyStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class Discrepancy(models.Model):
    """Something our books and the payment provider disagree on, for staff to decide."""

    run = models.ForeignKey(
        ReconciliationRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=255)
    expected = models.CharField(max_length=500, blank=True)
    found = models.CharField(max_length=500, blank=True)
    status = models.CharField(
        max_length=16, choices=DiscrepancyStatus.choices, default=DiscrepancyStatus.OPEN
    )
    note = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "discrepancies"
        ordering = ["-id"]
        constraints = [
            # One open item per problem: hourly runs do not pile up copies.
            models.UniqueConstraint(
                fields=["kind", "object_type", "object_id"],
                condition=Q(status="open"),
                name="discrepancy_one_open_per_object",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_type}:{self.object_id} ({self.status})"


# --- Viewer protections: spending limits, chargeback allocations ---------------------------


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
