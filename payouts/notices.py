"""Payout emails: one per payout and status a creator should hear about, in the transition's
own transaction (the outbox row commits with the status change or not at all)."""

from __future__ import annotations

from djmoney.money import Money

from payouts.models import Payout, PayoutStatus, Rail
from payouts.selectors import payout_status_words

# Requested is internal (about to be sent); cancelled by staff is told by staff.
NOTIFIED_STATUSES = {
    PayoutStatus.AWAITING_APPROVAL,
    PayoutStatus.PROCESSING,
    PayoutStatus.PAID,
    PayoutStatus.FAILED,
}


def _money(value: Money) -> str:
    return f"{value.currency} {value.amount:,.2f}"


def _destination(payout: Payout) -> str:
    if payout.rail == Rail.STRIPE:
        return "your Stripe account"
    return f"the bank account ending {payout.destination[-4:]}" if payout.destination else "bank"


WEBHOOK_TYPES = {
    PayoutStatus.AWAITING_APPROVAL: "payout.held",
    PayoutStatus.PROCESSING: "payout.sent",
    PayoutStatus.PAID: "payout.paid",
    PayoutStatus.FAILED: "payout.failed",
}


def payout_notify(*, payout: Payout) -> None:
    """The creator's email and their apps' webhook event about this payout's new status."""
    if payout.status not in NOTIFIED_STATUSES:
        return
    from notifications.services import email_enqueue, site_url
    from notifications.webhooks import webhook_event_emit

    webhook_event_emit(
        user_id=payout.creator.user_id,
        type=WEBHOOK_TYPES[PayoutStatus(payout.status)],
        key=f"payout.{payout.status}:{payout.pk}",
        data={
            "id": payout.pk,
            "status": str(payout.status),
            "diamonds": payout.diamonds,
            "amount": {
                "amount": str(payout.amount.amount),
                "currency": str(payout.amount.currency),
            },
            "fee": {"amount": str(payout.fee.amount), "currency": str(payout.fee.currency)},
            "is_instant": payout.is_instant,
            "hold_reason": payout.hold_reason,
        },
    )

    words = payout_status_words(payout)
    fee = getattr(payout, "fee", None)
    email_enqueue(
        event=f"payout_{payout.status}:{payout.pk}",
        user=payout.creator.user,
        template="payout",
        context={
            "status": str(payout.status),
            "payout_id": payout.pk,
            "amount": _money(payout.amount),
            "fee": _money(fee) if fee is not None and fee.amount else "",
            "diamonds": f"{payout.diamonds:,}",
            "destination": _destination(payout),
            "status_reason": words.status_reason,
            "expected_at": words.expected_at,
            "next_step": words.next_step,
            "statement_url": site_url(f"/creator/payouts/{payout.pk}/statement/"),
        },
    )
