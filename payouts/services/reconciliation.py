"""Reconciliation against the rail: Stripe's transfers compared with our payouts; a lost
answer is recorded paid, anything else becomes a discrepancy for staff."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payouts import rails
from payouts.models import Payout, PayoutStatus, Rail
from payouts.services.errors import PayoutStateError
from payouts.services.transitions import _record_paid
from wallets.models import ReconciliationRun
from wallets.services import advisory_lock, discrepancy_record

log = logging.getLogger(__name__)


def _discrepancy(
    *,
    kind: str,
    object_ref: str,
    payout: Payout | None,
    expected: str,
    found: str,
    run: ReconciliationRun | None,
) -> bool:
    """One open discrepancy per problem (``wallets``' generic queue, shared with payments)."""
    object_type, _, object_id = object_ref.partition(":")
    if not object_id:
        object_type, object_id = "transfer", object_ref
    if payout is not None and object_type == "transfer":
        found = f"{found} (payout #{payout.pk})"
    _row, created = discrepancy_record(
        kind=kind,
        object_type=object_type,
        object_id=object_id,
        expected=expected,
        found=found,
        run=run,
    )
    return created


@dataclass
class PayoutReconciliation:
    run: ReconciliationRun | None
    transfers: int = 0
    recovered: int = 0
    discrepancies: int = 0

    @property
    def summary(self) -> str:
        if self.run is None:
            return "payouts: another reconciliation is running; skipped"
        if self.run.status == "failed":
            return f"payouts: FAILED ({self.run.error[:300] or 'see the log'})"
        return (
            f"payouts: {self.transfers} transfers checked, {self.recovered} payouts recorded "
            f"paid, {self.discrepancies} new discrepancies"
        )


def payouts_reconcile(*, days: int | None = None) -> PayoutReconciliation:
    """Compare Stripe payouts with the transfers the rail reports over the last ``days``.

    A transfer for a payout still processing is its lost answer: recorded paid through the
    same service as the sender. Anything else that disagrees becomes a discrepancy for staff.
    """
    with advisory_lock("applause:reconcile:payouts") as acquired:
        if not acquired:
            return PayoutReconciliation(run=None)
        return _reconcile(days=days or settings.PAYOUT_RECONCILE_DAYS)


def _reconcile(*, days: int) -> PayoutReconciliation:
    window_start = timezone.now() - timedelta(days=days)
    now = timezone.now()
    run = ReconciliationRun.objects.create(
        kind="payouts", started_at=now, window_start=window_start, window_end=now
    )
    outcome = PayoutReconciliation(run=run)
    seen: dict[int, list[rails.Transfer]] = {}
    try:
        for transfer in rails.transfers_since(int(window_start.timestamp())):
            outcome.transfers += 1
            if transfer.payout_id is None:
                outcome.discrepancies += _discrepancy(
                    run=outcome.run,
                    kind="transfer_without_payout",
                    object_ref=transfer.id,
                    payout=None,
                    expected="a payout id in the transfer's metadata",
                    found=f"{transfer.amount_minor} {transfer.currency} to {transfer.destination}",
                )
                continue
            seen.setdefault(transfer.payout_id, []).append(transfer)
        payouts = Payout.objects.select_related("creator").in_bulk(list(seen))
        for payout_id, transfers in seen.items():
            payout = payouts.get(payout_id)
            outcome.recovered += _reconcile_one(payout_id, payout, transfers, outcome)
        # Paid here, nothing at the rail: created inside the window, so its transfer would be.
        listed = {t.id for ts in seen.values() for t in ts}
        for payout in Payout.objects.filter(
            rail=Rail.STRIPE, status=PayoutStatus.PAID, created_at__gte=window_start
        ).exclude(rail_reference__in=listed):
            outcome.discrepancies += _discrepancy(
                run=outcome.run,
                kind="payout_missing_at_rail",
                object_ref=f"payout:{payout.pk}",
                payout=payout,
                expected=f"transfer {payout.rail_reference or '?'} of {payout.amount}",
                found="no such transfer at Stripe",
            )
    except rails.RailUnavailable as exc:
        run.error = str(exc)[:10000]
        run.status = "failed"
        log.warning("payout reconciliation stopped: %s", exc)
    else:
        run.status = "done"
    run.counts = {
        "transfers": outcome.transfers,
        "recovered": outcome.recovered,
        "discrepancies": outcome.discrepancies,
    }
    run.finished_at = timezone.now()
    run.save()
    return outcome


def _reconcile_one(
    payout_id: int,
    payout: Payout | None,
    transfers: list[rails.Transfer],
    outcome: PayoutReconciliation,
) -> int:
    first = transfers[0]
    if payout is None:
        outcome.discrepancies += _discrepancy(
            run=outcome.run,
            kind="transfer_without_payout",
            object_ref=first.id,
            payout=None,
            expected=f"payout #{payout_id}",
            found="no such payout",
        )
        return 0
    if len(transfers) > 1:
        outcome.discrepancies += _discrepancy(
            run=outcome.run,
            kind="duplicate_transfer",
            object_ref=f"payout:{payout.pk}",
            payout=payout,
            expected="one transfer",
            found=", ".join(t.id for t in transfers),
        )
    expected_minor = rails.to_minor(payout.amount.amount, str(payout.amount.currency))
    if (
        first.amount_minor != expected_minor
        or first.currency != str(payout.amount.currency)
        or (payout.destination and first.destination != payout.destination)
    ):
        outcome.discrepancies += _discrepancy(
            run=outcome.run,
            kind="transfer_mismatch",
            object_ref=first.id,
            payout=payout,
            expected=f"{expected_minor} {payout.amount.currency} to {payout.destination}",
            found=f"{first.amount_minor} {first.currency} to {first.destination}",
        )
        return 0
    if first.reversed:
        outcome.discrepancies += _discrepancy(
            run=outcome.run,
            kind="transfer_reversed",
            object_ref=first.id,
            payout=payout,
            expected="transfer kept",
            found="transfer reversed at Stripe",
        )
    if payout.status in (PayoutStatus.PROCESSING, PayoutStatus.REQUESTED):
        try:
            with transaction.atomic():
                locked = (
                    Payout.objects.select_for_update(skip_locked=True)
                    .filter(pk=payout.pk, status__in=[PayoutStatus.PROCESSING])
                    .first()
                )
                if locked is None:
                    return 0  # a sender holds it right now and will record the answer
                _record_paid(locked, reference=first.id, note="found at Stripe by reconciliation")
            return 1
        except PayoutStateError:
            return 0
    if payout.status in (PayoutStatus.FAILED, PayoutStatus.CANCELLED):
        outcome.discrepancies += _discrepancy(
            run=outcome.run,
            kind="transfer_for_returned_payout",
            object_ref=first.id,
            payout=payout,
            expected=f"no transfer (payout {payout.status}, diamonds returned)",
            found=f"transfer {first.id} of {first.amount_minor} {first.currency}",
        )
    elif payout.status == PayoutStatus.PAID and payout.rail_reference != first.id:
        outcome.discrepancies += _discrepancy(
            run=outcome.run,
            kind="transfer_reference_mismatch",
            object_ref=first.id,
            payout=payout,
            expected=payout.rail_reference,
            found=first.id,
        )
    return 0
