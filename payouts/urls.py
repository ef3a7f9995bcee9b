from django.urls import path

from payouts import api

urlpatterns = [
    path("payouts/", api.PayoutListView.as_view(), name="api-payouts"),
    path("payouts/method/", api.PayoutMethodView.as_view(), name="api-payout-method"),
    path("payouts/instant/", api.InstantQuoteView.as_view(), name="api-payout-instant"),
    path("payouts/next/", api.NextPayoutView.as_view(), name="api-payout-next"),
    path(
        "payouts/<int:payout_id>/statement/",
        api.StatementView.as_view(),
        name="api-payout-statement",
    ),
    path(
        "payouts/trace/<int:transaction_id>/",
        api.TraceView.as_view(),
        name="api-payout-trace",
    ),
]
