"""The wallets API's shapes: one serializer per object, the same for every view that answers
with it (a wallet, a ledger entry, a coin package, a recharge, a self refund, money), and the
inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from djmoney.money import Money
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from config.api import StrictInput
from wallets import stripe_gateway as gateway
from wallets.models import (
    RECHARGE_PUBLIC_CHOICES,
    Account,
    CoinPackage,
    Entry,
    Recharge,
    TransactionKind,
)
from wallets.selectors import transaction_owner_description


class MoneyOutput(serializers.Serializer[Money]):
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()

    def to_representation(self, money: Money) -> dict[str, str]:
        # As many decimals as the currency has (Stripe's exponent), whatever the field says.
        exponent = gateway.currency_exponent(str(money.currency))
        return {"amount": f"{money.amount:.{exponent}f}", "currency": str(money.currency)}


class WalletOutput(serializers.Serializer[Account | None]):
    coins = serializers.IntegerField(source="balance")
    frozen = serializers.BooleanField(source="is_frozen")

    def to_representation(self, wallet: Account | None) -> dict[str, Any]:
        if wallet is None:  # no wallet yet: nothing in it, nothing frozen
            return {"coins": 0, "frozen": False}
        return dict(super().to_representation(wallet))


def wallet_data(wallet: Account | None) -> dict[str, Any]:
    """A wallet's answer; also for a user who has none yet (DRF's ``.data`` skips None)."""
    return WalletOutput().to_representation(wallet)


class EntryOutput(serializers.Serializer[Entry]):
    id = serializers.IntegerField()
    kind = serializers.CharField(source="transaction.kind")
    coins = serializers.IntegerField(source="amount")
    balance_after = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    memo = serializers.SerializerMethodField(
        help_text="What happened, in words for the wallet's owner (staff notes stay with staff)."
    )

    def get_memo(self, entry: Entry) -> str:
        return transaction_owner_description(entry.transaction)


class EntryFilter(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=TransactionKind.choices, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


# --- Coin packages and recharges ------------------------------------------------------------


class StrictIntegerField(serializers.IntegerField):
    """A JSON number that is a whole number: "500" or 500.5 or true are refused."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            if isinstance(data, float) and data.is_integer():
                data = int(data)
            else:
                self.fail("invalid")
        return super().to_internal_value(data)


@dataclass(frozen=True)
class PackageOnSale:
    """A coin package on sale, with its price in the asked currency."""

    package: CoinPackage
    price: Money
    best_value: bool


class CoinPackageOutput(serializers.Serializer[PackageOnSale]):
    id = serializers.IntegerField(source="package.pk")
    coins = serializers.IntegerField(source="package.coins")
    bonus_coins = serializers.IntegerField(source="package.bonus_coins")
    total_coins = serializers.IntegerField(source="package.total_coins")
    price = MoneyOutput()
    best_value = serializers.BooleanField()


class CoinPackageListOutput(serializers.Serializer[Any]):
    results = CoinPackageOutput(many=True)
    custom = inline_serializer(
        name="CustomAmount",
        fields={
            "min_coins": serializers.IntegerField(),
            "max_coins": serializers.IntegerField(),
            "unit_price": inline_serializer(
                name="UnitPrice",
                fields={
                    "amount": serializers.DecimalField(max_digits=12, decimal_places=6),
                    "currency": serializers.CharField(),
                },
            ),
        },
    )


class CurrencyQuery(serializers.Serializer[Any]):
    currency = serializers.ChoiceField(choices=list(settings.CURRENCIES), default="USD")


class RechargeInput(StrictInput):
    package = StrictIntegerField(required=False, min_value=1, max_value=2**62)
    coins = StrictIntegerField(
        required=False, min_value=settings.CUSTOM_COINS_MIN, max_value=settings.CUSTOM_COINS_MAX
    )
    currency = serializers.ChoiceField(choices=list(settings.CURRENCIES))
    payment_method = serializers.CharField(required=False, max_length=255)
    confirm = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Set to true to go ahead with a purchase above your cooling-off threshold "
        "(`confirm_above` in wallet/limits/); without it such a purchase is refused with 409 "
        "`confirmation_required`. Ignored when you set no threshold.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("package" in attrs) == ("coins" in attrs):
            raise serializers.ValidationError(
                {"package": ["Give either a package id or a number of coins."]}
            )
        return attrs


class RechargeOutput(serializers.Serializer[Recharge]):
    id = serializers.IntegerField()
    # ``creating`` (a recharge whose Stripe answer is not recorded yet) is shown as pending.
    status = serializers.ChoiceField(choices=RECHARGE_PUBLIC_CHOICES, source="public_status")
    coins = serializers.IntegerField()
    price = MoneyOutput()
    coins_refunded = serializers.IntegerField()
    failure_message = serializers.CharField(allow_blank=True)
    failure_code = serializers.CharField(
        allow_blank=True,
        help_text="Why it failed, in a word: `card_declined` for any declined card (the "
        "message stays generic on purpose); empty otherwise.",
    )
    created_at = serializers.DateTimeField()
    succeeded_at = serializers.DateTimeField(allow_null=True)


# A new recharge: the recharge, and what Stripe.js needs to confirm its payment. (A comment,
# not a docstring: spectacular would print a docstring into the schema.)
class RechargeCreateOutput(RechargeOutput):
    payment_intent = serializers.CharField()
    client_secret = serializers.CharField()
    publishable_key = serializers.CharField()
    requires_action = serializers.BooleanField()

    def to_representation(self, recharge: Recharge) -> dict[str, Any]:
        # client_secret and requires_action are the service's answer on this object (not
        # columns): empty when a retry found the recharge further on.
        return {
            **RechargeOutput(context=self.context).to_representation(recharge),
            "payment_intent": recharge.payment_intent,
            "client_secret": getattr(recharge, "client_secret", ""),
            "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
            "requires_action": bool(getattr(recharge, "requires_action", False)),
        }


# --- Viewer protections: self refund, spending limits ---------------------------------------


class SelfRefund(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    coins = serializers.IntegerField()
    amount = MoneyOutput()
    created_at = serializers.DateTimeField()


class RechargeSelfRefundOutput(serializers.Serializer[Any]):
    recharge = RechargeOutput()
    refund = SelfRefund()
    wallet = WalletOutput()


class LimitsPending(serializers.Serializer[Any]):
    limit = serializers.IntegerField(allow_null=True)
    effective_at = serializers.DateTimeField()


class SpendingLimitsOutput(serializers.Serializer[Any]):
    daily_limit = serializers.IntegerField(allow_null=True)
    monthly_limit = serializers.IntegerField(allow_null=True)
    confirm_above = serializers.IntegerField(allow_null=True)
    daily_limit_pending = LimitsPending(allow_null=True)
    monthly_limit_pending = LimitsPending(allow_null=True)
    bought_today = serializers.IntegerField()
    bought_this_month = serializers.IntegerField()
    gifted_today = serializers.IntegerField()
    gifted_this_month = serializers.IntegerField()


class NullableCoins(StrictIntegerField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, allow_null=True, min_value=0, max_value=10**12, **kwargs)


class SpendingLimitsInput(StrictInput):
    daily_limit = NullableCoins(help_text="Coins per UTC day; null for none of your own.")
    monthly_limit = NullableCoins(help_text="Coins per UTC calendar month; null for none.")
    confirm_above = NullableCoins(
        help_text="Purchases above this many coins need `confirm: true`; null for none."
    )
