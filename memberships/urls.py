from django.urls import path

from memberships import api

urlpatterns = [
    path("creators/me/tiers/", api.MyTiersView.as_view(), name="api-my-tiers"),
    path("creators/me/tiers/<int:tier_id>/", api.MyTierDetailView.as_view(), name="api-my-tier"),
    path("creators/<str:handle>/tiers/", api.CreatorTiersView.as_view(), name="api-creator-tiers"),
    path(
        "creators/<str:handle>/memberships/",
        api.CreatorMembershipsView.as_view(),
        name="api-creator-memberships",
    ),
    path(
        "creators/<str:handle>/fans/<str:username>/", api.FanView.as_view(), name="api-creator-fan"
    ),
    path("memberships/", api.MyMembershipsView.as_view(), name="api-memberships"),
    path(
        "memberships/<int:membership_id>/",
        api.MembershipDetailView.as_view(),
        name="api-membership",
    ),
]
