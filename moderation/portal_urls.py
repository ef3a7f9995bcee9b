from django.urls import path

from moderation import views

# Listed before gifts' pages in config/urls.py: ``creator/live/`` is the control room here
# (GET) and still the dashboard's go-live switch (POST).
urlpatterns = [
    path("creator/live/", views.control_room, name="creator-control-room"),
    path(
        "creator/live/messages/<int:event_id>/<str:action>/",
        views.message_action,
        name="creator-live-message",
    ),
    path("creator/live/mute/", views.mute, name="creator-live-mute"),
    path("creator/live/rules/", views.rules, name="creator-live-rules"),
]
