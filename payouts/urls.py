from django.urls import path

from payouts import api

urlpatterns = [
    path("payouts/", api.PayoutListView.as_view(), name="api-payouts"),
    path("payouts/method/", api.PayoutMethodView.as_view(), name="api-payout-method"),
]
