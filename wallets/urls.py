from django.urls import path

from wallets import api

urlpatterns = [
    path("wallet/", api.WalletView.as_view(), name="api-wallet"),
    path("wallet/entries/", api.WalletEntriesView.as_view(), name="api-wallet-entries"),
]
