"""Payout transitions and their ledger moves (each one a conditional UPDATE on the status plus
a ``PayoutEvent`` and, where diamonds move, a ledger transaction keyed on the payout id), and the
money conversions between diamonds and the payout currency."""

from __future__ import annotations

import logging
import math
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from djmoney.money import Money

from payouts.models import Payout, PayoutEvent, PayoutStatus
from payouts.notices import payout_notify
from payouts.services.errors import PayoutStateError
from wallets.models import Account, AccountKind, TransactionKind
from wallets.services import Posting, account_get, ledger_post, platform_account

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)


# --- Money conversions ----------------------------------------------------------------------


def minimum_payout_diamonds() -> int:
    """The fewest diamonds worth at least ``PAYOUT_MINIMUM`` (integer math, no floats)."""
    return max(1, math.ceil(settings.PAYOUT_MINIMUM / settings.DIAMOND_VALUE))


def diamonds_value(diamonds: int) -> Money:
    """What ``diamonds`` are worth, rounded down to the cent: we never pay out a fraction."""
    amount = (Decimal(diamonds) * settings.DIAMOND_VALUE).quantize(
        Decimal("0.01"), rounding=ROUND_DOWN
    )
    return Money(amount, settings.PAYOUT_CURRENCY)


# --- Transitions and their ledger moves ------------------------------------------------------


def _transition(
    payout: Payout,
    *,
    to: str,
    allowed_from: list[str],
    actor: User | None = None,
    note: str = "",
    **fields: Any,
) -> Payout:
    """Move a payout with one conditional UPDATE; raise if someone else moved it first."""
    now = timezone.now()
    moved = Payout.objects.filter(pk=payout.pk, status__in=allowed_from).update(
        status=to, updated_at=now, **fields
    )
    if not moved:
        payout.refresh_from_db()
        raise PayoutStateError(
            f"Payout #{payout.pk} is {payout.get_status_display().lower()}; "
            f"it cannot become {PayoutStatus(to).label.lower()}."
        )
    previous = payout.status
    payout.refresh_from_db()
    PayoutEvent.objects.create(
        payout=payout, from_status=previous, to_status=to, actor=actor, note=note[:500]
    )
    payout_notify(payout=payout)
    return payout


def _accounts(payout: Payout) -> tuple[Account, Account]:
    user = payout.creator.user
    return (
        account_get(kind=AccountKind.DIAMONDS_AVAILABLE, user=user),
        account_get(kind=AccountKind.DIAMONDS_IN_PAYOUT, user=user),
    )


def _record_paid(
    payout: Payout, *, actor: User | None = None, reference: str = "", note: str = ""
) -> Payout:
    payout = _transition(
        payout,
        to=PayoutStatus.PAID,
        allowed_from=[PayoutStatus.PROCESSING, PayoutStatus.REQUESTED],
        actor=actor,
        note=note,
        paid_at=timezone.now(),
        rail_reference=reference[:255],
    )
    _available, in_payout = _accounts(payout)
    ledger_post(
        kind=TransactionKind.PAYOUT_PAID,
        idempotency_key=f"payout-paid:{payout.pk}",
        postings=[
            Posting(in_payout, -payout.diamonds),
            Posting(platform_account(AccountKind.DIAMONDS_PAID_OUT), payout.diamonds),
        ],
        actor=actor,
        memo=f"Payout #{payout.pk} paid" + (f" ({reference})" if reference else ""),
        reference=f"payout:{payout.pk}",
    )
    return payout


def _return_diamonds(
    payout: Payout, *, to: str, allowed_from: list[str], actor: User | None, code: str, reason: str
) -> Payout:
    now = timezone.now()
    payout = _transition(
        payout,
        to=to,
        allowed_from=allowed_from,
        actor=actor,
        note=reason,
        failed_at=now,
        failure_code=code[:64],
        failure_reason=reason[:500],
    )
    available, in_payout = _accounts(payout)
    ledger_post(
        kind=TransactionKind.PAYOUT_FAILED,
        idempotency_key=f"payout-failed:{payout.pk}",
        postings=[Posting(in_payout, -payout.diamonds), Posting(available, payout.diamonds)],
        actor=actor,
        memo=f"Payout #{payout.pk} {to}: {reason}"[:500],
        reference=f"payout:{payout.pk}",
    )
    return payout


def _enqueue_send(payout_ids: list[int]) -> None:
    """Queue the sends once the current transaction commits: one task for a single payout,
    one task per ``PAYOUT_SEND_TASK_SIZE`` payouts for a batch's chunk (each payout still goes
    to the rail with its own idempotency key)."""
    if not payout_ids:
        return
    ids = sorted(payout_ids)

    def send() -> None:
        from payouts.tasks import payout_send_many_task, payout_send_task

        # The payouts are committed by now: a broker that is away must not turn the answer
        # into a 500. What was not queued stays requested and the sweep sends it
        # (payouts_send_released: requested for longer than PAYOUT_SEND_SWEEP_AFTER_MINUTES).
        try:
            if len(ids) == 1:
                payout_send_task.delay(ids[0])
                return
            size = max(1, settings.PAYOUT_SEND_TASK_SIZE)
            for start in range(0, len(ids), size):
                payout_send_many_task.delay(ids[start : start + size])
        except Exception:  # the broker is away (kombu's errors have no common base we own)
            logger.warning("payout sends not queued (broker away): the sweep sends %s", ids[:20])

    transaction.on_commit(send)
