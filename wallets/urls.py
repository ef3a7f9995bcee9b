from django.urls import path

from wallets import api

urlpatterns = [
    path("wallet/", api.WalletView.as_view(), name="api-wallet"),
    path("wallet/entries/", api.WalletEntriesView.as_view(), name="api-wallet-entries"),
    path("coin-packages/", api.CoinPackagesView.as_view(), name="api-coin-packages"),
    path("recharges/", api.RechargesView.as_view(), name="api-recharges"),
    path("recharges/<int:recharge_id>/", api.RechargeDetailView.as_view(), name="api-recharge"),
    path(
        "recharges/<int:recharge_id>/refund/",
        api.RechargeSelfRefundView.as_view(),
        name="api-recharge-self-refund",
    ),
    path("wallet/limits/", api.SpendingLimitsView.as_view(), name="api-wallet-limits"),
    path("webhooks/stripe/", api.StripeWebhookView.as_view(), name="api-stripe-webhook"),
]
