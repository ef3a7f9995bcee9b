"""Stripe webhooks: verified, stored once, applied idempotently."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import DomainError, database_error
from wallets import stripe_gateway as gateway
from wallets.models import CREDITED_STATUSES, Recharge, StripeEvent
from wallets.services.discrepancies import discrepancy_record
from wallets.services.disputes import (
    recharge_dispute_close,
    recharge_dispute_open,
    recharge_for_charge,
)
from wallets.services.recharges import recharge_apply_success, recharge_mark_failed
from wallets.services.refunds import recharge_refunds_sync

log = logging.getLogger(__name__)


def _payment_succeeded(obj: Any) -> str:
    """Never trust the body (a leaked or default signing secret would let anyone write one):
    the PaymentIntent as Stripe has it now decides, checked against our recharge."""
    pi_id = str(gateway.get(obj, "id") or "")
    recharge = Recharge.objects.filter(payment_intent=pi_id).first() if pi_id else None
    if recharge is None:
        return "unknown payment"
    intent = gateway.payment_intent_retrieve(pi_id)
    status = intent.status
    if status != "succeeded":
        log.warning("payment_intent.succeeded for %s, but Stripe says %s", pi_id, status)
        discrepancy_record(
            kind="succeeded_event_not_succeeded",
            object_type="payment_intent",
            object_id=pi_id,
            expected="payment intent succeeded",
            found=f"Stripe says {status}",
        )
        return f"not credited (Stripe says {status})"
    applied = recharge_apply_success(payment_intent_id=pi_id, intent=intent)
    if applied is None or applied.status not in CREDITED_STATUSES:
        return "not credited (mismatch)"
    return "credited"


def _payment_failed(obj: Any) -> str:
    pi_id = obj["id"]
    if not Recharge.objects.filter(payment_intent=pi_id).exists():
        return "unknown payment"
    # Events can arrive out of order (a failed attempt reported after a retry succeeded):
    # the PaymentIntent's current state at Stripe decides.
    intent = gateway.payment_intent_retrieve(pi_id)
    status = intent.status
    if status == "succeeded":
        recharge_apply_success(payment_intent_id=pi_id, intent=intent)
        return "credited (re-read)"
    if status in ("requires_payment_method", "canceled"):
        error = intent.last_payment_error
        message = (error.message if error else None) or (
            "The payment was canceled." if status == "canceled" else "The payment failed."
        )
        recharge_mark_failed(payment_intent_id=pi_id, message=message)
        return "failed"
    return f"ignored ({status})"


def _refunded(obj: Any) -> str:
    pi_id = gateway.get(obj, "payment_intent")
    charge_id = obj["id"] if gateway.get(obj, "object") == "charge" else gateway.get(obj, "charge")
    recharge = recharge_for_charge(payment_intent_id=pi_id, charge_id=charge_id)
    if recharge is None:
        return "unknown payment"
    return f"{recharge_refunds_sync(recharge=recharge)} refunds applied"


def _dispute_opened(obj: Any) -> str:
    dispute = gateway.Dispute.from_stripe(obj)
    return "clawed back" if recharge_dispute_open(dispute=dispute) else "unknown payment"


def _dispute_closed(obj: Any) -> str:
    row = recharge_dispute_close(dispute=gateway.Dispute.from_stripe(obj))
    return f"closed ({row.status})" if row else "unknown payment"


HANDLERS = {
    "payment_intent.succeeded": _payment_succeeded,
    "payment_intent.payment_failed": _payment_failed,
    "payment_intent.canceled": _payment_failed,
    "charge.refunded": _refunded,
    "charge.refund.updated": _refunded,
    "refund.created": _refunded,
    "refund.updated": _refunded,
    "charge.dispute.created": _dispute_opened,
    "charge.dispute.closed": _dispute_closed,
}


class WebhookProcessingFailed(DomainError):
    """Applying a verified event raised: our fault, not Stripe's, so 500 (Stripe retries)."""

    code = "webhook_processing_failed"
    status = 500
    default_message = "The event could not be applied; it was logged and will be retried."


def stripe_webhook_receive(*, payload: bytes, signature: str | None) -> StripeEvent:
    """Verify, store once and apply one webhook event.

    Raises ``ValueError`` / ``gateway.SignatureVerificationError`` for a bad body or signature
    (nothing is written: the sender's fault, 400). The event row and its effects commit
    together: a concurrent copy of the same event waits on the unique event id, then finds it
    processed. When applying a verified event raises (a bug, Stripe unreachable), nothing of
    it is applied; the event is logged with its id, stored unprocessed with the error (so
    ``payments_reconcile`` opens a ``webhook_event_failed`` discrepancy for it) and
    ``WebhookProcessingFailed`` (500) makes Stripe deliver it again.
    """
    event = gateway.webhook_event(payload, signature)
    try:
        event_id = str(event["id"])
        event_type = str(event["type"])
        obj = event["data"]["object"]
    except (KeyError, TypeError) as exc:
        raise ValueError("The body is not a Stripe event.") from exc
    try:
        return _webhook_apply(event_id=event_id, event_type=event_type, obj=obj, payload=payload)
    except Exception as exc:
        if database_error(exc) is not None:
            # The database is down, restarting or busy (the chaos run found 258 answers of 500
            # here): nothing was applied and nothing can be noted; the API's handler answers
            # 503 with Retry-After, and Stripe delivers the event again.
            raise
        log.exception("stripe webhook event %s (%s) failed", event_id, event_type)
        _webhook_failure_note(
            event_id=event_id, event_type=event_type, obj=obj, payload=payload, error=exc
        )
        raise WebhookProcessingFailed() from exc


@transaction.atomic
def _webhook_apply(*, event_id: str, event_type: str, obj: Any, payload: bytes) -> StripeEvent:
    try:
        with transaction.atomic():
            stored = StripeEvent.objects.create(
                event_id=event_id,
                type=event_type,
                object_id=str(gateway.get(obj, "id") or "")[:255],
                payload=json.loads(payload),
            )
    except IntegrityError:
        stored = StripeEvent.objects.select_for_update().get(event_id=event_id)
        if stored.processed_at is not None:
            return stored
    handler = HANDLERS.get(event_type)
    stored.result = (handler(obj) if handler else "ignored")[:255]
    stored.processed_at = timezone.now()
    stored.save(update_fields=["result", "processed_at"])
    return stored


def _webhook_failure_note(
    *, event_id: str, event_type: str, obj: Any, payload: bytes, error: Exception
) -> None:
    """Keep a failed event, unprocessed, with what went wrong (best effort: the database may
    be what failed; Stripe's retry and reconciliation's polling still stand)."""
    result = f"failed: {type(error).__name__}: {error}"[:255]
    try:
        with transaction.atomic():
            stored, created = StripeEvent.objects.get_or_create(
                event_id=event_id,
                defaults={
                    "type": event_type,
                    "object_id": str(gateway.get(obj, "id") or "")[:255],
                    "payload": json.loads(payload),
                    "result": result,
                },
            )
            if not created and stored.processed_at is None:
                StripeEvent.objects.filter(pk=stored.pk, processed_at__isnull=True).update(
                    result=result
                )
    except Exception:
        log.exception("could not record the failure of stripe webhook event %s", event_id)
