"""Stripe's webhook."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from config.api import error_body, error_responses
from config.errors import InvalidInput
from wallets import stripe_gateway as gateway
from wallets.services import stripe_webhook_receive


class StripeWebhookView(APIView):
    """Stripe calls this; the signature is the authentication (no session, no CSRF)."""

    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type[BaseThrottle]] = []

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            200: inline_serializer(
                name="WebhookAck",
                fields={"received": serializers.BooleanField(), "result": serializers.CharField()},
            ),
            **error_responses({400: ["invalid_signature"]}, {500: ["webhook_processing_failed"]}),
        },
        auth=[],
        summary="Stripe webhook (Stripe-Signature verified)",
        description=(
            "400: the body is not a Stripe event or the signature is missing, forged or stale "
            "(nothing stored). 500 `webhook_processing_failed`: a verified event could not be "
            "applied; it is logged with its id and stored unprocessed, Stripe delivers it "
            "again, and reconciliation opens a `webhook_event_failed` discrepancy for staff."
        ),
    )
    def post(self, request: Request) -> Response:
        payload = request.body
        try:
            event = stripe_webhook_receive(
                payload=payload, signature=request.headers.get("Stripe-Signature")
            )
        except gateway.SignatureVerificationError:
            return Response(
                error_body("invalid_signature", "The Stripe-Signature header is not valid."),
                status=400,
            )
        except ValueError:
            # Only a body that is not a Stripe event; an error applying a verified event is
            # WebhookProcessingFailed (500, so Stripe retries).
            raise InvalidInput("The body is not a Stripe event.")
        return Response({"received": True, "result": event.result})
