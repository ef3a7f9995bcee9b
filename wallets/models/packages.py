# mypy: disable-error-code="django-manager-missing"
# (djmoney swaps in dynamically built managers on models with a MoneyField; the stubs plugin
# cannot see them, and the default manager type is what we use anyway.)
"""Coin packages, their prices per currency, and scheduled price changes."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from djmoney.models.fields import MoneyField
from djmoney.money import Money


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
    price: Money = MoneyField(max_digits=12, decimal_places=2, default_currency="USD")  # type: ignore[assignment,no-untyped-call]  # djmoney: untyped, reads as Money
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
    price: Money = MoneyField(max_digits=12, decimal_places=2, default_currency="USD")  # type: ignore[assignment,no-untyped-call]  # djmoney: untyped, reads as Money
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
