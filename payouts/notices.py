"""Payout emails: one per payout and status a creator should hear about, in the transition's
own transaction (the outbox row commits with the status change or not at all)."""

from __future__ import annotations

from payouts.models import Payout, PayoutStatus, Rail
from payouts.selectors import payout_status_words

# Requested is internal (about to be sent); cancelled by staff is told by staff.
NOTIFIED_STATUSES = {
    PayoutStatus.AWAITING_APPROVAL,
    PayoutStatus.PROCESSING,
    PayoutStatus.PAID,
    PayoutStatus.FAILED,
}


def _money(value) -> str:
    return f"{value.currency} {value.amount:,.2f}"


def _destination(payout: Payout) -> str:
    if payout.rail == Rail.STRIPE:
        return "your Stripe account"
    return f"the bank account ending {payout.destination[-4:]}" if payout.destination else "bank"


def payout_notify(*, payout: Payout) -> None:
    if payout.status not in NOTIFIED_STATUSES:
        return
    from notifications.services import email_enqueue, site_url

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
