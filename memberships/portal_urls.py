from django.urls import path

from memberships import views

urlpatterns = [
    path("creators/<str:handle>/join/", views.membership_join_form, name="membership-join-form"),
    path("wallet/memberships/", views.memberships_page, name="wallet-memberships"),
    path(
        "wallet/memberships/<int:membership_id>/cancel/",
        views.membership_cancel_form,
        name="membership-cancel-form",
    ),
    path("creator/tiers/", views.tier_save_form, name="tier-create-form"),
    path("creator/tiers/<int:tier_id>/", views.tier_save_form, name="tier-save-form"),
]
