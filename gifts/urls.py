from django.urls import path

from gifts import api, live

urlpatterns = [
    path("gifts/", api.GiftListView.as_view(), name="api-gifts"),
    path("gifts/send/", api.GiftSendView.as_view(), name="api-gift-send"),
    path(
        "creators/<str:handle>/leaderboard/",
        api.LeaderboardView.as_view(),
        name="api-creator-leaderboard",
    ),
    path(
        "creators/<str:handle>/live/<str:live_id>/events/",
        live.LiveEventsView.as_view(),
        name="api-creator-live-events",
    ),
]
