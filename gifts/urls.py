from django.urls import path

from gifts import api, goals_api, live

urlpatterns = [
    path("gifts/", api.GiftListView.as_view(), name="api-gifts"),
    path("gifts/send/", api.GiftSendView.as_view(), name="api-gift-send"),
    path("gifts/quote/", api.GiftQuoteView.as_view(), name="api-gift-quote"),
    # Before creators/<handle>/goals/ ("me" is a reserved handle).
    path("creators/me/goals/", goals_api.MyGoalsView.as_view(), name="api-my-goals"),
    path(
        "creators/<str:handle>/goals/",
        goals_api.CreatorGoalsView.as_view(),
        name="api-creator-goals",
    ),
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
