from django.urls import path

from payouts import views

urlpatterns = [
    path("creator/payout-method/", views.payout_method_edit, name="payout-method"),
    path("creator/payout-method/return/", views.payout_method_return, name="payout-method-return"),
]
