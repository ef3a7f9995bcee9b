from django.urls import path

from wallets import views

urlpatterns = [
    path("recharge/", views.recharge_page, name="recharge"),
    path("recharge/intent/", views.RechargeIntentView.as_view(), name="recharge-intent"),
    path("wallet/", views.wallet_page, name="wallet"),
    path("recharges/<int:recharge_id>/receipt/", views.receipt_page, name="recharge-receipt"),
    path("recharges/<int:recharge_id>/refund/", views.receipt_refund, name="recharge-refund"),
    path("wallet/limits/", views.limits_page, name="wallet-limits"),
    path("wallet/purchases/", views.purchases_page, name="wallet-purchases"),
]
