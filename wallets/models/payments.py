# mypy: disable-error-code="django-manager-missing"
# (djmoney swaps in dynamically built managers on models with a MoneyField; the stubs plugin
# cannot see them, and the default manager type is what we use anyway.)
"""Stripe payments: customers, recharges, refunds, webhook events and disputes."""

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from djmoney.models.fields import MoneyField
from djmoney.money import Money

from wallets.models.packages import CoinPackage


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
    # Committed before anything is asked of Stripe (phase 1 of ``recharge_create``); the API
    # shows it as pending. A retry, or ``recharges_finish_abandoned``, takes it further.
    CREATING = "creating", "Creating"
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REFUNDED = "refunded", "Refunded"
    DISPUTED = "disputed", "Disputed"


# The statuses clients see (the API's enum): ``creating`` is shown as pending.
RECHARGE_PUBLIC_CHOICES = [c for c in RechargeStatus.choices if c[0] != RechargeStatus.CREATING]

# Statuses of a recharge whose coins were credited (exactly once) by the ledger.
CREDITED_STATUSES = [RechargeStatus.SUCCEEDED, RechargeStatus.REFUNDED, RechargeStatus.DISPUTED]


class Recharge(models.Model):
    # Set by ``recharge_create`` on the recharge it returns (not columns): what Stripe.js
    # needs to confirm the payment (``wallets.api.serializers.RechargeCreateOutput``).
    client_secret: str
    requires_action: bool

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="recharges"
    )
    package = models.ForeignKey(
        CoinPackage, null=True, blank=True, on_delete=models.PROTECT, related_name="recharges"
    )
    coins = models.BigIntegerField()
    price: Money = MoneyField(max_digits=12, decimal_places=2, default_currency="USD")  # type: ignore[assignment,no-untyped-call]  # djmoney: untyped, reads as Money
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
    amount_refunded: Money = MoneyField(  # type: ignore[assignment,no-untyped-call]  # djmoney: untyped, reads as Money
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
    def public_status(self) -> str:
        """What the API and the pages show: ``creating`` (Stripe not answered yet) is pending."""
        return RechargeStatus.PENDING if self.status == RechargeStatus.CREATING else self.status

    def get_public_status_display(self) -> str:
        return str(RechargeStatus(self.public_status).label)

    @property
    def amount_remaining(self) -> Money:
        """What is still refundable, in the purchase's currency."""
        return Money(self.price.amount - self.amount_refunded.amount, self.price.currency)


def recharge_row_new(**fields: Any) -> Recharge:
    """Create a Recharge with ``amount_refunded`` zero in the purchase's currency.

    djmoney's ``default`` cannot depend on another column, so every creation goes through
    here (the CHECK ``recharge_amount_refunded_in_purchase_currency`` refuses any other).
    """
    price = fields["price"]
    if not isinstance(price, Money):
        raise TypeError(f"a recharge's price is Money, not {price!r}")
    fields.setdefault("amount_refunded", Money(0, price.currency))
    return Recharge.objects.create(**fields)


class RefundSource(models.TextChoices):
    STAFF = "staff", "Staff refund"
    STRIPE = "stripe", "Found in Stripe"
    DISPUTE = "dispute", "Dispute"
    DISPUTE_WON = "dispute_won", "Dispute won (coins returned)"
    SELF = "self", "Refunded by the viewer"


class RefundStatus(models.TextChoices):
    """A self refund goes through atomic phases (``wallets.services.self_refund``): the row is
    committed ``requested`` (the coins already taken back) before Stripe is asked, and only
    then ``succeeded`` (or ``failed``: Stripe refused it, the coins went back). Every other
    refund is recorded once Stripe made it: ``succeeded`` from the start."""

    REQUESTED = "requested", "Requested (waiting for Stripe)"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed (nothing was refunded)"


class RechargeRefund(models.Model):
    """One clawback (or, for a won dispute, a give-back) applied to a recharge."""

    recharge = models.ForeignKey(Recharge, on_delete=models.PROTECT, related_name="refunds")
    # The Stripe refund (re_...) or dispute (dp_...) id; one application per Stripe object.
    # Empty while a self refund is ``requested`` (Stripe not asked yet, or its answer lost).
    stripe_id = models.CharField(max_length=255, blank=True)
    source = models.CharField(max_length=16, choices=RefundSource.choices)
    status = models.CharField(
        max_length=16, choices=RefundStatus.choices, default=RefundStatus.SUCCEEDED
    )
    amount: Money = MoneyField(max_digits=12, decimal_places=2, default_currency="USD")  # type: ignore[assignment,no-untyped-call]  # djmoney: untyped, reads as Money
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
                fields=["stripe_id", "source"],
                condition=~Q(stripe_id=""),
                name="rechargerefund_once_per_stripe_object",
            ),
            # One self refund per recharge that is not failed (a retry continues it).
            models.UniqueConstraint(
                fields=["recharge"],
                condition=Q(source="self") & ~Q(status="failed"),
                name="rechargerefund_one_self_refund",
            ),
        ]
        indexes = [
            models.Index(
                fields=["actor", "created_at"],
                condition=Q(support_limited=True),
                name="rechargerefund_support_day",
            ),
            models.Index(
                fields=["created_at"],
                condition=Q(status="requested"),
                name="rechargerefund_requested",
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
    amount: Money = MoneyField(max_digits=12, decimal_places=2, default_currency="USD")  # type: ignore[assignment,no-untyped-call]  # djmoney: untyped, reads as Money
    coins = models.BigIntegerField(default=0)
    clawed_back = models.BooleanField(default=False)
    closed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.dispute_id} ({self.status})"
