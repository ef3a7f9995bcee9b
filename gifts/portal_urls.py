from django.urls import path

from gifts import live, views

urlpatterns = [
    path("creators/", views.creator_directory, name="creator-directory"),
    path("creators/<str:handle>/", views.creator_page, name="creator-page"),
    path("creator/live/", views.creator_live_toggle, name="creator-live"),
    path("creator/", views.creator_dashboard, name="creator-dashboard"),
    path("overlay/<str:handle>/<str:live_id>/", live.overlay_page, name="live-overlay"),
]
