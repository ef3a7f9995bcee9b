from django.urls import path

from creators import api

urlpatterns = [
    path("creators/", api.CreatorCreateView.as_view(), name="api-creators"),
    path("creators/me/earnings/", api.EarningsView.as_view(), name="api-creator-earnings"),
    path("creators/<str:handle>/", api.CreatorDetailView.as_view(), name="api-creator"),
]
