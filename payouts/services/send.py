"""Sending a payout to its rail (safe to run twice and beside itself), and the destination
hold that keeps a payout from a freshly changed destination."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from payouts import rails
from payouts.models import Payout, PayoutEvent, PayoutMethod, PayoutStatus, Rail
from payouts.services.transitions import _enqueue_send, _record_paid, _return_diamonds, _transition


def payout_send(*, payout_id: int) -> Payout:
    """Send one payout to its rail. Safe to run twice and beside itself.

    Step 1 marks it processing (and counts the attempt) and commits, so staff see it is on its
    way. Step 2 holds the payout's row lock across the rail call and records the answer in the
    same transaction: a concurrent sender skips it, and a crash before the commit leaves it
    processing for the next run, which asks the rail first and sends with the same key.
    ``RailUnavailable`` propagates (the task retries); a refusal fails the payout.
    """
    with transaction.atomic():
        payout = (
            Payout.objects.select_for_update(skip_locked=True)
            .select_related("creator")
            .filter(pk=payout_id)
            .first()
        )
        if payout is None:
            return Payout.objects.get(pk=payout_id)
        if payout.status == PayoutStatus.REQUESTED:
            stopped = payout_send_check(payout)
            if stopped is not None:
                return stopped
            payout = _transition(
                payout,
                to=PayoutStatus.PROCESSING,
                allowed_from=[PayoutStatus.REQUESTED],
                sent_at=timezone.now(),
            )
        if payout.status != PayoutStatus.PROCESSING or payout.rail != Rail.STRIPE:
            # Manual payouts wait in processing for the staff's bank run.
            return payout
        Payout.objects.filter(pk=payout.pk).update(attempts=F("attempts") + 1)

    with transaction.atomic():
        payout = (
            Payout.objects.select_for_update(skip_locked=True)
            .select_related("creator")
            .filter(pk=payout_id, status=PayoutStatus.PROCESSING)
            .first()
        )
        if payout is None:
            return Payout.objects.get(pk=payout_id)
        if payout.attempts <= 1:
            # No transfer can exist yet: check again right before the rail call (the method row
            # stays locked until we commit, so it cannot change in between).
            stopped = payout_send_check(payout)
            if stopped is not None:
                return stopped
        try:
            transfer = None
            if payout.attempts > 1:
                transfer = rails.transfer_find(payout_id=payout.pk)
            if transfer is None:
                transfer = rails.transfer_create(
                    payout_id=payout.pk,
                    amount_minor=rails.to_minor(payout.amount.amount, str(payout.amount.currency)),
                    currency=str(payout.amount.currency),
                    destination=payout.destination,
                )
        except rails.RailError as exc:
            return _return_diamonds(
                payout,
                to=PayoutStatus.FAILED,
                allowed_from=[PayoutStatus.PROCESSING],
                actor=None,
                code=exc.failure_code,
                reason=f"The payout provider refused the transfer: {exc.message}",
            )
        return _record_paid(payout, reference=transfer.id, note="Stripe transfer created")


def payout_send_check(payout: Payout) -> Payout | None:
    """Whether a payout may go to its rail now; called by the sender, not only the batch.

    Between the batch (or staff approval) and the send, the creator's method may have changed.
    Inside the sender's transaction, with the method row locked so it cannot change until the
    send commits:

    - the destination is no longer the creator's (changed or removed): the payout fails and its
      diamonds return; the next batch pays the new destination once it is verified and held;
    - the method is not verified any more: the same;
    - the destination was set less than ``PAYOUT_DESTINATION_HOLD_HOURS`` ago: the payout
      stays where it is with ``held_until`` (the hourly ``payouts_send_released`` sends it).

    Returns the payout when it must not go now, None when it may.
    """
    method = PayoutMethod.objects.select_for_update().filter(creator_id=payout.creator_id).first()
    if method is None or method.rail != payout.rail or method.destination != payout.destination:
        return _return_diamonds(
            payout,
            to=PayoutStatus.FAILED,
            allowed_from=[PayoutStatus.REQUESTED, PayoutStatus.PROCESSING],
            actor=None,
            code="destination_changed",
            reason="Not sent: the payout method changed after this payout was made.",
        )
    if not method.is_verified:
        return _return_diamonds(
            payout,
            to=PayoutStatus.FAILED,
            allowed_from=[PayoutStatus.REQUESTED, PayoutStatus.PROCESSING],
            actor=None,
            code="method_unverified",
            reason="Not sent: the payout method is not verified.",
        )
    until = method.destination_held_until
    if until is None:
        return None
    if payout.held_until != until:
        changed = method.destination_changed_at
        Payout.objects.filter(pk=payout.pk).update(held_until=until, updated_at=timezone.now())
        PayoutEvent.objects.create(
            payout=payout,
            from_status=payout.status,
            to_status=payout.status,
            note=f"held until {until:%Y-%m-%d %H:%M} UTC: payout destination set "
            f"{changed:%Y-%m-%d %H:%M} UTC",
        )
        payout.refresh_from_db()
    return payout


def payouts_send_released() -> int:
    """Send the payouts whose destination hold has passed, and the requested ones whose send
    was never queued (the broker was away when they were made: still ``requested`` after
    ``PAYOUT_SEND_SWEEP_AFTER_MINUTES``). Beat, hourly; returns how many. Sending twice is
    harmless (the rail's idempotency key is the payout id)."""
    now = timezone.now()
    lost_after = now - timedelta(minutes=settings.PAYOUT_SEND_SWEEP_AFTER_MINUTES)
    released = Q(held_until__lte=now) & (
        Q(status=PayoutStatus.REQUESTED) | Q(status=PayoutStatus.PROCESSING, rail=Rail.STRIPE)
    )
    never_queued = Q(
        held_until__isnull=True, status=PayoutStatus.REQUESTED, created_at__lte=lost_after
    )
    due = list(Payout.objects.filter(released | never_queued).values_list("pk", flat=True))
    with transaction.atomic():
        _enqueue_send(due)
    return len(due)
