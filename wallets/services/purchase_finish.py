"""Recharges nobody came back for: finished without the client.

A recharge stays ``creating`` when its request died between the phases of
``wallets.services.purchase.recharge_create`` (or Stripe was away) and the client never
retried. ``recharges_finish_abandoned`` (the Celery beat's finish-abandoned-recharges, and the
start of every payment reconciliation) takes each one older than
``RECHARGE_ABANDONED_AFTER_SECONDS`` to its end: nobody is charged without coins, nothing is
credited twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from wallets import stripe_gateway as gateway
from wallets.models import Recharge, RechargeStatus
from wallets.services.purchase import (
    PHASE_FINISHED,
    PHASE_STARTED,
    _recharge_intent,
    _recharge_record,
    recharge_phase,
)
from wallets.services.stripe_calls import (
    _provider_error,
    _recharge_lock,
    finish_each,
)

log = logging.getLogger(__name__)

INTERRUPTED_MESSAGE = "The purchase was interrupted before the card was charged; nothing was paid."


def recharge_finish(*, recharge_id: int) -> str:
    """Finish one ``creating`` recharge whose client never came back (phases 2 and 3 without
    the client). Returns what happened (counted by ``recharges_finish_abandoned``):

    - ``busy``: a retry holds it right now; ``done``: it is no longer ``creating``;
    - ``failed_started``: no PaymentIntent id was written, so none was ever confirmed
      (nobody paid): failed, with ``failure_code`` ``interrupted``;
    - ``recorded_intent_created``: Stripe's answer recorded (a paid one credited, once); a
      PaymentIntent nobody confirmed or could still finish (the client never saw its
      client_secret) is canceled first, so no one can pay it later.
    Stripe unreachable raises ``PaymentProviderUnavailable``; the next run tries again.
    """
    with _recharge_lock(recharge_id, wait=0) as held:
        if not held:
            return "busy"
        recharge = Recharge.objects.select_related("user").get(pk=recharge_id)
        phase = recharge_phase(recharge)
        if phase == PHASE_FINISHED:
            return "done"
        log.warning("recharge %s: abandoned at %s, finishing it", recharge.pk, phase)
        if phase == PHASE_STARTED:
            Recharge.objects.filter(
                pk=recharge.pk, status=RechargeStatus.CREATING, payment_intent=None
            ).update(
                status=RechargeStatus.FAILED,
                failure_code="interrupted",
                failure_message=INTERRUPTED_MESSAGE,
                updated_at=timezone.now(),
            )
            return f"failed_{phase}"
        intent = _recharge_intent(recharge, payment_method=None)
        if (
            intent.status
            in (
                "requires_payment_method",
                "requires_confirmation",
                "requires_action",
            )
            and not intent.last_payment_error
        ):
            try:
                intent = gateway.payment_intent_cancel(
                    payment_intent_id=intent.id, recharge_id=recharge.pk
                )
            except gateway.StripeError as exc:
                if gateway.is_unavailable(exc):
                    raise _provider_error(exc, f"cancel of recharge {recharge.pk}") from exc
                # It moved on meanwhile (paid, or declined): record what it is now.
                intent = _recharge_intent(recharge, payment_method=None)
        _recharge_record(recharge, intent, confirmed_now=False)
        return f"recorded_{phase}"


def recharges_finish_abandoned(
    *, older_than: timedelta | None = None, limit: int = 500
) -> Counter[str]:
    """Finish every ``creating`` recharge older than ``RECHARGE_ABANDONED_AFTER_SECONDS``
    (its client never retried). Safe beside retries, webhooks and itself."""
    if older_than is None:
        older_than = timedelta(seconds=settings.RECHARGE_ABANDONED_AFTER_SECONDS)
    cutoff = timezone.now() - older_than
    ids = list(
        Recharge.objects.filter(status=RechargeStatus.CREATING, created_at__lte=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    return finish_each(ids, lambda pk: recharge_finish(recharge_id=pk), "recharge")
