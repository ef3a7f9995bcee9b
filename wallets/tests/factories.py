"""Helpers for the recharge tests: packages, Stripe events signed like Stripe signs them."""

import hashlib
import hmac
import json
import time
import uuid

from django.conf import settings

from wallets import stripe_gateway as gateway
from wallets.demo import seed_packages
from wallets.models import CoinPackage


def packages() -> list[CoinPackage]:
    seed_packages()
    return list(CoinPackage.objects.order_by("coins"))


def sign(payload: bytes, *, secret: str | None = None, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    secret = settings.STRIPE_WEBHOOK_SECRET if secret is None else secret
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def event_payload(event_type: str, obj: dict, *, event_id: str | None = None) -> bytes:
    event = {
        "id": event_id or f"evt_test_{uuid.uuid4().hex[:20]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "api_version": "2017-08-15",
        "data": {"object": obj},
    }
    return json.dumps(event).encode()


def post_event(client, payload: bytes, signature: str | None = None):
    return client.generic(
        "POST",
        "/api/v1/webhooks/stripe/",
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature if signature is not None else sign(payload),
    )


def confirm_at_stripe(payment_intent_id: str | None, payment_method: str = "pm_card_visa"):
    """What the browser's Stripe.js does: attach a card and confirm, behind our back."""
    assert payment_intent_id
    client = gateway.client()
    client.v1.payment_intents.update(payment_intent_id, params={"payment_method": payment_method})
    try:
        return client.v1.payment_intents.confirm(payment_intent_id)
    except gateway.CardError:
        return client.v1.payment_intents.retrieve(payment_intent_id)


def intent_dict(payment_intent_id: str | None) -> dict:
    assert payment_intent_id
    return gateway.client().v1.payment_intents.retrieve(payment_intent_id).to_dict()
