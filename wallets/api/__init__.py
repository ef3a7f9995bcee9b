"""The wallets API, one module per resource (``wallet``, ``recharges``, ``limits``,
``webhooks``); every object has one response shape, in ``serializers``."""

from wallets.api.limits import SpendingLimitsView, spending_limits_json
from wallets.api.recharges import (
    CoinPackagesView,
    RechargeDetailView,
    RechargeSelfRefundView,
    RechargesView,
    recharge_create_from_request,
)
from wallets.api.serializers import MoneyOutput
from wallets.api.wallet import WalletEntriesView, WalletView
from wallets.api.webhooks import StripeWebhookView

__all__ = [
    "CoinPackagesView",
    "MoneyOutput",
    "RechargeDetailView",
    "RechargeSelfRefundView",
    "RechargesView",
    "SpendingLimitsView",
    "StripeWebhookView",
    "WalletEntriesView",
    "WalletView",
    "recharge_create_from_request",
    "spending_limits_json",
]
