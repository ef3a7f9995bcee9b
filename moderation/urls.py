from django.urls import path

from moderation import api

urlpatterns = [
    path(
        "creators/me/moderation/",
        api.MyModerationView.as_view(),
        name="api-moderation",
    ),
    path(
        "creators/me/moderation/muted/",
        api.MyMutedView.as_view(),
        name="api-moderation-muted",
    ),
    path(
        "creators/me/moderation/muted/<str:username>/",
        api.MyMutedDetailView.as_view(),
        name="api-moderation-muted-detail",
    ),
    path(
        "creators/me/moderation/held/",
        api.MyHeldView.as_view(),
        name="api-moderation-held",
    ),
    *[
        path(
            f"creators/me/moderation/messages/<int:event_id>/{action}/",
            api.MyMessageActionView.as_view(),
            {"action": action},
            name=f"api-moderation-message-{action}",
        )
        for action in ("approve", "reject", "dismiss")
    ],
    path(
        "creators/<str:handle>/live/<str:live_id>/pinned/",
        api.PinnedView.as_view(),
        name="api-creator-live-pinned",
    ),
    path("messages/<int:event_id>/report/", api.MessageReportView.as_view(), name="api-report"),
]
