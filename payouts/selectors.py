"""Reads for the payout API, the creator dashboard and the admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from djmoney.money import Money

from payouts.models import OPEN_STATUSES, Payout, PayoutMethod, PayoutStatus
from wallets.models import Account, AccountKind

# Failure codes in words a creator understands (the raw reason stays for staff).
FAILURE_WORDS = {
    "account_invalid": "Your Stripe account cannot receive transfers. Finish Stripe onboarding.",
    "invalidrequesterror": "The payout provider refused the transfer. We'll look into it.",
    "insufficient_funds": "A temporary problem on our side. The money will go out next time.",
    "cancelled": "Cancelled by our payments team. The diamonds are back in your balance.",
    "staff": "The bank transfer did not go through. Please check your bank details.",
}
DEFAULT_FAILURE_WORDS = "The payout did not go through. The diamonds are back in your balance."


def payout_failure_words(payout: Payout) -> str:
    if payout.status not in (PayoutStatus.FAILED, PayoutStatus.CANCELLED):
        return ""
    return FAILURE_WORDS.get(payout.failure_code, DEFAULT_FAILURE_WORDS)


def payouts_for_user(*, user, status: str | None = None) -> QuerySet[Payout]:
    payouts = Payout.objects.filter(creator__user=user).order_by("-created_at", "-id")
    if status:
        payouts = payouts.filter(status=status)
    return payouts


def payout_method_for_user(*, user) -> PayoutMethod | None:
    return PayoutMethod.objects.filter(creator__user=user).first()


def next_payout_run(now: datetime | None = None) -> datetime | None:
    """When the payout batch next runs, from the beat row staff can edit (or the default)."""
    now = now or timezone.now()
    try:
        from django_celery_beat.models import PeriodicTask

        task = (
            PeriodicTask.objects.select_related("crontab")
            .filter(task="payouts.tasks.payout_batch_task", enabled=True)
            .first()
        )
        if task is not None and task.crontab is not None:
            remaining = task.crontab.schedule.remaining_estimate(now)
            return now + remaining
    except Exception:  # the schedule is a nicety on the dashboard, never an error
        pass
    days_ahead = (0 - now.weekday()) % 7  # Monday 06:00 UTC by default
    candidate = (now + timedelta(days=days_ahead)).replace(
        hour=6, minute=0, second=0, microsecond=0
    )
    return candidate if candidate > now else candidate + timedelta(days=7)


@dataclass
class PayoutPanel:
    method: PayoutMethod | None
    diamonds_available: int
    available_value: Money
    minimum: Money
    next_run: datetime | None
    next_payout_estimate: Money | None
    blocked_because: str
    payouts: list[Payout]


def payout_panel(*, user, limit: int = 10) -> PayoutPanel:
    from payouts.services import diamonds_value, minimum_payout_diamonds

    method = payout_method_for_user(user=user)
    available = (
        Account.objects.filter(kind=AccountKind.DIAMONDS_AVAILABLE, user=user)
        .values_list("balance", flat=True)
        .first()
        or 0
    )
    payouts = list(payouts_for_user(user=user)[:limit])
    for payout in payouts:
        payout.failure_words = payout_failure_words(payout)  # type: ignore[attr-defined]
    has_open = any(p.status in OPEN_STATUSES for p in payouts)
    minimum = Money(settings.PAYOUT_MINIMUM, settings.PAYOUT_CURRENCY)
    blocked = ""
    if method is None:
        blocked = "Add a payout method to get paid."
    elif not method.is_verified:
        blocked = "Your payout method is waiting for verification."
    elif has_open:
        blocked = "A payout is already on its way."
    elif available < minimum_payout_diamonds():
        blocked = f"Payouts start once your available earnings reach {minimum}."
    return PayoutPanel(
        method=method,
        diamonds_available=available,
        available_value=diamonds_value(available),
        minimum=minimum,
        next_run=next_payout_run(),
        next_payout_estimate=None if blocked else diamonds_value(available),
        blocked_because=blocked,
        payouts=payouts,
    )
