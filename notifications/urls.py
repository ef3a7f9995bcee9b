from django.urls import path

from notifications import api

urlpatterns = [
    path("webhooks/endpoints/", api.EndpointListView.as_view(), name="api-webhook-endpoints"),
    path(
        "webhooks/endpoints/<int:endpoint_id>/",
        api.EndpointDetailView.as_view(),
        name="api-webhook-endpoint",
    ),
    path(
        "webhooks/endpoints/<int:endpoint_id>/deliveries/",
        api.DeliveryListView.as_view(),
        name="api-webhook-deliveries",
    ),
    path(
        "webhooks/endpoints/<int:endpoint_id>/deliveries/<int:delivery_id>/replay/",
        api.DeliveryReplayView.as_view(),
        name="api-webhook-replay",
    ),
]
