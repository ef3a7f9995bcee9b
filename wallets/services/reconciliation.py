"""Payment reconciliation: our Recharges against Stripe's PaymentIntents and Refunds.

A payment that succeeded without a credit (a lost webhook) is credited through the webhook's
own service; a refund we did not apply is applied; anything else that disagrees becomes a
``Discrepancy`` for staff, never an automatic guess (``wallets.services.discrepancies``, which
payouts reuse, as they reuse ``wallets.services.locks.advisory_lock``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.models import Min
from django.utils import timezone

from config.keyset import keyset
from wallets import stripe_gateway as gateway
from wallets.models import (
    CREDITED_STATUSES,
    LedgerTransaction,
    Recharge,
    RechargeRefund,
    RechargeStatus,
    ReconciliationRun,
    StripeEvent,
)
from wallets.services.bulk import bulk_supported
from wallets.services.discrepancies import discrepancy_record
from wallets.services.disputes import recharge_for_charge
from wallets.services.locks import advisory_lock
from wallets.services.recharges import recharge_apply_success, recharge_mark_failed
from wallets.services.reconcile_bulk import (
    OPEN_STATUSES,
    PageRecords,
    page_read,
    receipts_missing,
    recharge_receipts_write,
    recharges_credit_page,
)
from wallets.services.refunds import recharge_refund_from_stripe

log = logging.getLogger(__name__)

DEFAULT_WINDOW = timedelta(days=3)


def _is_ours(intent: gateway.PaymentIntent) -> bool:
    return intent.metadata.get("app") == "applause"


def _reconcile_intent(
    intent: gateway.PaymentIntent, run: ReconciliationRun, counts: Counter[str]
) -> None:
    pi_id = intent.id
    status = intent.status
    recharge = Recharge.objects.filter(payment_intent=pi_id).first()
    if recharge is None:
        # A PaymentIntent of ours whose id was never written is one whose create's answer was
        # lost (a crash or Stripe away mid-call): recharge_create confirms only a written id,
        # so it was never confirmed. A paid one without a recharge is therefore nothing a
        # crash can make: staff look at it.
        if _is_ours(intent) and status == "succeeded":
            _, created = discrepancy_record(
                kind="payment_without_recharge",
                object_type="payment_intent",
                object_id=pi_id,
                expected="a recharge for this payment",
                found=f"succeeded {intent.amount} {intent.currency}",
                run=run,
            )
            counts["discrepancies"] += created
        return
    if status == "succeeded":
        if recharge.status in OPEN_STATUSES:
            applied = recharge_apply_success(payment_intent_id=pi_id, intent=intent)
            if applied is not None and applied.status == RechargeStatus.SUCCEEDED:
                counts["credited"] += 1
        elif not LedgerTransaction.objects.filter(idempotency_key=recharge.ledger_key).exists():
            _, created = discrepancy_record(
                kind="credited_status_without_ledger_credit",
                object_type="recharge",
                object_id=str(recharge.pk),
                expected=f"ledger transaction {recharge.ledger_key}",
                found="none",
                run=run,
            )
            counts["discrepancies"] += created
        return
    if recharge.status in CREDITED_STATUSES:
        _, created = discrepancy_record(
            kind="credited_but_payment_not_succeeded",
            object_type="recharge",
            object_id=str(recharge.pk),
            expected="payment succeeded",
            found=f"payment intent {pi_id} is {status}",
            run=run,
        )
        counts["discrepancies"] += created
    elif recharge.status in (RechargeStatus.CREATING, RechargeStatus.PENDING) and (
        status == "canceled"
    ):
        recharge_mark_failed(payment_intent_id=pi_id, message="The payment was canceled.")
        counts["marked_failed"] += 1


def _refund_agrees(stripe_refund: gateway.Refund, known: RechargeRefund | None) -> bool:
    """Nothing to do: not a refund that took money back, or one we applied at its amount."""
    if stripe_refund.status not in ("succeeded", "pending"):
        return True
    if known is None:
        return False
    return stripe_refund.money == known.amount


def _reconcile_refund(
    stripe_refund: gateway.Refund,
    run: ReconciliationRun,
    counts: Counter[str],
    known: RechargeRefund | None,
) -> None:
    """A refund that disagrees (``_refund_agrees``); ``known``: our row for it, if any."""
    refund_id = stripe_refund.id
    if known is not None:
        amount = stripe_refund.money
        if amount != known.amount:
            _, created = discrepancy_record(
                kind="refund_amount_mismatch",
                object_type="refund",
                object_id=refund_id,
                expected=str(known.amount),
                found=str(amount),
                run=run,
            )
            counts["discrepancies"] += created
        return
    recharge = recharge_for_charge(
        payment_intent_id=stripe_refund.payment_intent,
        charge_id=stripe_refund.charge,
    )
    if recharge is None:
        return  # not a payment of ours
    applied = recharge_refund_from_stripe(recharge=recharge, stripe_refund=stripe_refund)
    if applied is not None:
        counts["refunds_applied"] += 1
        return
    _, created = discrepancy_record(
        kind="refund_not_applicable",
        object_type="refund",
        object_id=refund_id,
        expected="a refund of a credited recharge",
        found=f"recharge {recharge.pk} is {recharge.status}",
        run=run,
    )
    counts["discrepancies"] += created


def _reconcile_failed_events(run: ReconciliationRun, counts: Counter[str]) -> None:
    """Webhook events whose application raised (stored unprocessed by the webhook): each is a
    discrepancy until a redelivery applies it and staff close it."""
    failed = StripeEvent.objects.filter(processed_at__isnull=True)
    # Oldest first, in keyset pages (no server-side cursor: PgBouncer's transaction pooling).
    for event in keyset(failed, order=("received_at", "pk"), size=RECONCILE_PAGE):
        counts["failed_events"] += 1
        _, created = discrepancy_record(
            kind="webhook_event_failed",
            object_type="stripe_event",
            object_id=event.event_id,
            expected=f"{event.type} for {event.object_id or '?'} applied",
            found=event.result or "not applied",
            run=run,
        )
        counts["discrepancies"] += created


# PaymentIntents read from the database together (one query for their recharges, one for
# their ledger credits) and credited together in one transaction. Stripe lists 100 at a time
# (the gateway pages through them); our page is five of those. Measured on 10,000 lost
# payments, durable, quiet machine (make bench BENCH=reconcile): 100 a page 4.43 s, rerun
# 1.11 s; 500 a page 2.78 s, rerun 0.53 s; 1,000 no faster (2.96 s, 0.48 s). A page's
# transaction locks at most 500 wallets (in id order) for ~0.1 s.
RECONCILE_PAGE = 500


_Item = TypeVar("_Item")


def _pages(items: Iterator[_Item], size: int) -> Iterator[list[_Item]]:
    page: list[_Item] = []
    for item in items:
        page.append(item)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def _disagreeing(
    page: list[gateway.PaymentIntent], records: PageRecords
) -> list[gateway.PaymentIntent]:
    """The PaymentIntents of ``page`` that disagree with our records; those that agree (the
    steady state: nearly all of them) are skipped here, after one read of the page's
    recharges and ledger credits (``records``)."""
    todo = []
    for intent in page:
        pi_id = intent.id
        status = intent.status
        recharge = records.recharges.get(pi_id)
        if recharge is None:
            agrees = not _is_ours(intent)
        elif status == "succeeded":
            agrees = (
                recharge.status not in OPEN_STATUSES
                and recharge.ledger_key in records.credited_keys
            )
        else:
            agrees = recharge.status not in CREDITED_STATUSES and not (
                recharge.status in (RechargeStatus.CREATING, RechargeStatus.PENDING)
                and status == "canceled"
            )
        if not agrees:
            todo.append(intent)
    return todo


def _reconcile_page(
    page: list[gateway.PaymentIntent], run: ReconciliationRun, counts: Counter[str]
) -> list[str]:
    """One page: one read, the plain lost payments credited set-based in one transaction,
    the rest one by one through the per-item services. Returns the errors."""
    counts["payment_intents"] += len(page)
    records = page_read(intent.id for intent in page)
    todo = _disagreeing(page, records)
    if todo and bulk_supported():
        try:
            credited, todo = recharges_credit_page(intents=todo, records=records)
        except (OperationalError, InterfaceError):
            raise  # the database is away: the whole run is retried (its task)
        except Exception:  # e.g. a constraint: the per-item path decides each one
            log.exception("set-based credit of a page; crediting it one by one")
        else:
            counts["credited"] += credited
    errors = []
    for intent in todo:
        try:
            _reconcile_intent(intent, run, counts)
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:  # one bad object must not stop the run
            log.exception("reconcile payment intent %s", intent.id)
            errors.append(f"{intent.id}: {exc}")
    return errors


def _reconcile_refund_page(
    page: list[gateway.Refund], run: ReconciliationRun, counts: Counter[str]
) -> list[str]:
    """One page of Stripe's refunds: one read of ours, those that agree skipped, the rest
    (a refund made in Stripe's dashboard, a lost answer, an amount that differs) one by one
    through the refund services. Returns the errors."""
    counts["refunds"] += len(page)
    ids = [r.id for r in page]
    known: dict[str, RechargeRefund] = {}
    for row in RechargeRefund.objects.filter(stripe_id__in=ids):  # newest first
        known.setdefault(row.stripe_id, row)
    errors = []
    for refund_id, stripe_refund in zip(ids, page, strict=True):
        if _refund_agrees(stripe_refund, known.get(refund_id)):
            continue
        try:
            _reconcile_refund(stripe_refund, run, counts, known.get(refund_id))
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:
            log.exception("reconcile refund %s", refund_id)
            errors.append(f"{refund_id}: {exc}")
    return errors


def _receipts_missing(since: datetime, before: datetime, counts: Counter[str]) -> None:
    """Receipts of recharges credited in the window, before this run, that were never
    written (a page's receipts task lost after its commit): written now."""
    if not bulk_supported():
        return  # SQLite credits one by one, each with its receipt
    missing = receipts_missing(since=since, before=before)
    for i in range(0, len(missing), 500):
        counts["receipts_written"] += recharge_receipts_write(recharge_ids=missing[i : i + 500])


def _finish_abandoned(counts: Counter[str]) -> None:
    """Recharges left ``creating`` and self refunds left ``requested`` by clients that never
    retried (see ``wallets.services.purchase``, ``wallets.services.self_refund``): finished
    before Stripe's lists are compared."""
    from wallets.services.purchase_finish import recharges_finish_abandoned
    from wallets.services.self_refund import self_refunds_finish_abandoned

    for prefix, finish in (
        ("abandoned_", recharges_finish_abandoned),
        ("abandoned_self_refund_", self_refunds_finish_abandoned),
    ):
        try:
            finished = finish()
        except Exception:  # a bad row must not stop the run
            log.exception("finishing abandoned %s", prefix)
            continue
        for outcome, n in finished.items():
            counts[f"{prefix}{outcome}"] += n


def reconcile_window_start(*, now: datetime) -> datetime:
    """Where the next run's listing starts: the end of the last clean run (``done`` without an
    error; its ``window_end`` is stored on its ``ReconciliationRun`` row) less
    ``RECONCILE_OVERLAP_SECONDS``, earlier still to the oldest recharge that waits for its
    payment (creating or pending: a payment created long ago may succeed now), never earlier
    than ``DEFAULT_WINDOW`` ago, which is also the start when no run was clean yet. A failed
    run, a skipped one or one with errors leaves it where it was."""
    earliest = now - DEFAULT_WINDOW
    last = (
        ReconciliationRun.objects.filter(
            kind="payments", status="done", error="", window_end__isnull=False
        )
        .order_by("-window_end")
        .first()
    )
    if last is None or last.window_end is None:
        return earliest
    overlap = timedelta(seconds=settings.RECONCILE_OVERLAP_SECONDS)
    start = last.window_end - overlap
    waiting = Recharge.objects.filter(
        status__in=[RechargeStatus.CREATING, RechargeStatus.PENDING], created_at__gte=earliest
    ).aggregate(oldest=Min("created_at"))["oldest"]
    if waiting is not None:
        start = min(start, waiting - overlap)
    return max(start, earliest)


def payments_reconcile(*, window: timedelta | None = None) -> ReconciliationRun:
    """One reconciliation of recent payments: those created since ``reconcile_window_start``
    (the last clean run), or in the last ``window`` when given. Real Stripe is asked for that
    window only (``created[gte]``); localstripe, which refuses the filter, is paged through
    whole and filtered here. Idempotent; safe beside webhooks (every fix goes through
    exactly-once writes) and beside itself (an advisory lock: a second run at the same time is
    recorded as skipped)."""
    now = timezone.now()
    start = now - window if window is not None else reconcile_window_start(now=now)
    run = ReconciliationRun.objects.create(
        kind="payments", started_at=now, window_start=start, window_end=now
    )
    counts: Counter[str] = Counter()
    with advisory_lock("applause:reconcile:payments") as acquired:
        if not acquired:
            run.status = "skipped"
            run.finished_at = timezone.now()
            run.save()
            return run
        errors: list[str] = []
        _finish_abandoned(counts)
        try:
            for page in _pages(gateway.payment_intents_since(start), RECONCILE_PAGE):
                errors += _reconcile_page(page, run, counts)
            for refunds in _pages(gateway.refunds_since(start), RECONCILE_PAGE):
                errors += _reconcile_refund_page(refunds, run, counts)
        except gateway.StripeError as exc:
            errors.append(f"stripe: {exc}")
            run.status = "failed"
        else:
            run.status = "done"
        try:
            _receipts_missing(start, now, counts)
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:  # not clean: the window stays, the next run tries again
            log.exception("writing missing receipts")
            errors.append(f"receipts: {exc}")
        _reconcile_failed_events(run, counts)
        run.error = "\n".join(errors)[:10000]
        run.counts = dict(counts)
        run.finished_at = timezone.now()
        run.save()
    return run
