from django.urls import path

from gifts import live, views

urlpatterns = [
    path("creators/<str:handle>/", views.creator_page, name="creator-page"),
    path("creator/", views.creator_dashboard, name="creator-dashboard"),
    path("overlay/<str:handle>/<str:live_id>/", live.overlay_page, name="live-overlay"),
]
