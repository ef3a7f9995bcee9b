"""Webhook endpoints for creators' apps: GET, POST webhooks/endpoints/; DELETE …/{id}/;
the delivery log and replay."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import StrictInput, error_responses
from notifications.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from notifications.webhooks import (
    EVENT_TYPES,
    PREFIXES,
    webhook_delivery_replay,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_get,
)

EVENTS_HELP = (
    f"Event types ({', '.join(EVENT_TYPES)}) or a prefix pattern (gift.*, goal.*, "
    "membership.*, payout.*)."
)


class EndpointInput(StrictInput):
    url = serializers.URLField(max_length=500)
    events = serializers.ListField(
        child=serializers.ChoiceField(
            choices=[*EVENT_TYPES, *(f"{prefix}.*" for prefix in PREFIXES)]
        ),
        min_length=1,
        max_length=20,
        help_text=EVENTS_HELP,
    )


class EndpointOutput(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    events = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class EndpointCreatedOutput(EndpointOutput):
    secret = serializers.CharField(
        help_text="The signing secret, shown only in this answer: keep it to verify deliveries."
    )


class EndpointListOutput(serializers.Serializer):
    results = EndpointOutput(many=True)
    next = serializers.CharField(allow_null=True)


class EndpointListView(APIView):
    @extend_schema(
        responses={200: EndpointListOutput, **error_responses(401)},
        summary="My webhook endpoints (the secret is never shown again)",
    )
    def get(self, request):
        endpoints = WebhookEndpoint.objects.filter(owner=request.user).order_by("id")
        return Response({"results": EndpointOutput(endpoints, many=True).data, "next": None})

    @extend_schema(
        request=EndpointInput,
        responses={
            201: EndpointCreatedOutput,
            **error_responses(
                {400: ["webhook_url_refused"]},
                401,
                {403: ["not_a_creator"]},
                {409: ["too_many_endpoints"]},
            ),
        },
        summary="Subscribe an app to events",
        description="Deliveries are POSTs with a JSON body `{id, type, created, data}` and an "
        "`Applause-Signature: t=<unix>,v1=<hex HMAC-SHA256 of 't.body' with the secret>` "
        "header; answer 2xx within WEBHOOK_TIMEOUT seconds. Failed deliveries are retried with "
        "backoff for WEBHOOK_RETRY_HOURS; an endpoint failing that long is disabled and you are "
        "emailed. Production accepts only https URLs on public addresses "
        "(400 `webhook_url_refused`).",
    )
    def post(self, request):
        data = EndpointInput(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_create(user=request.user, **data.validated_data)
        return Response(EndpointCreatedOutput(endpoint).data, status=201)


class EndpointDetailView(APIView):
    @extend_schema(
        responses={204: None, **error_responses(401, 404)},
        summary="Delete a webhook endpoint (its pending deliveries are dropped)",
    )
    def delete(self, request, endpoint_id: int):
        webhook_endpoint_delete(user=request.user, endpoint_id=endpoint_id)
        return Response(status=204)


class DeliveryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.CharField(source="event.public_id")
    type = serializers.CharField(source="event.type")
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    next_attempt_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)


class DeliveryListOutput(serializers.Serializer):
    results = DeliveryOutput(many=True)
    next = serializers.CharField(allow_null=True)


class DeliveryListView(APIView):
    @extend_schema(
        responses={200: DeliveryListOutput, **error_responses(401, 404)},
        summary="An endpoint's delivery log, newest first (the last 100)",
    )
    def get(self, request, endpoint_id: int):
        endpoint = webhook_endpoint_get(user=request.user, endpoint_id=endpoint_id)
        deliveries = (
            WebhookDelivery.objects.filter(endpoint=endpoint)
            .select_related("event")
            .order_by("-id")[:100]
        )
        return Response({"results": DeliveryOutput(deliveries, many=True).data, "next": None})


class DeliveryReplayView(APIView):
    @extend_schema(
        request=None,
        responses={202: DeliveryOutput, **error_responses(401, 404)},
        summary="Deliver an event again (turns a disabled endpoint back on)",
    )
    def post(self, request, endpoint_id: int, delivery_id: int):
        delivery = webhook_delivery_replay(
            user=request.user, endpoint_id=endpoint_id, delivery_id=delivery_id
        )
        return Response(DeliveryOutput(delivery).data, status=202)
