"""Reads for the payout API, the creator dashboard and the admin."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from djmoney.money import Money

from payouts.models import OPEN_STATUSES, Payout, PayoutMethod, PayoutStatus, Rail, TaxFormStatus
from wallets.models import Account, AccountKind

if TYPE_CHECKING:
    from accounts.models import User


logger = logging.getLogger(__name__)

# Failure codes in words a creator understands (the raw reason stays for staff).
FAILURE_WORDS = {
    "account_invalid": "Your Stripe account cannot receive transfers. Finish Stripe onboarding.",
    "invalidrequesterror": "The payout provider refused the transfer. We'll look into it.",
    "insufficient_funds": "A temporary problem on our side. The money will go out next time.",
    "cancelled": "Cancelled by our payments team. The diamonds are back in your balance.",
    "staff": "The bank transfer did not go through. Please check your bank details.",
    "destination_changed": "Not sent: your payout method changed after this payout was made. "
    "The diamonds are back in your balance.",
    "method_unverified": "Not sent: your payout method is not verified. "
    "The diamonds are back in your balance.",
}
DEFAULT_FAILURE_WORDS = "The payout did not go through. The diamonds are back in your balance."


def payout_failure_words(payout: Payout) -> str:
    if payout.status not in (PayoutStatus.FAILED, PayoutStatus.CANCELLED):
        return ""
    return FAILURE_WORDS.get(payout.failure_code, DEFAULT_FAILURE_WORDS)


def payouts_for_user(*, user: User, status: str | None = None) -> QuerySet[Payout]:
    payouts = Payout.objects.filter(creator__user=user).order_by("-created_at", "-id")
    if status:
        payouts = payouts.filter(status=status)
    return payouts


def payout_method_for_user(*, user: User) -> PayoutMethod | None:
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
            remaining: timedelta = task.crontab.schedule.remaining_estimate(now)
            return now + remaining
    except Exception:  # the schedule is a nicety on the dashboard, never an error
        logger.warning("payout schedule unreadable: estimating Monday 06:00", exc_info=True)
    days_ahead = (0 - now.weekday()) % 7  # Monday 06:00 UTC by default
    candidate = (now + timedelta(days=days_ahead)).replace(
        hour=6, minute=0, second=0, microsecond=0
    )
    return candidate if candidate > now else candidate + timedelta(days=7)


# --- Status in words -------------------------------------------------------------------------

# Business days we promise (documented in docs/statements-and-live.md): staff review, and how
# long each rail takes from our send to the creator's bank account.
APPROVAL_BUSINESS_DAYS = 2
RAIL_BUSINESS_DAYS: dict[str, int] = {Rail.STRIPE: 2, Rail.MANUAL: 3}
METHOD_PAGE = "/creator/payout-method/"
SUPPORT_EMAIL = "payouts@applause.example"


def add_business_days(start: datetime, days: int) -> datetime:
    """``days`` working days (Monday to Friday) after ``start``."""
    moment = start
    while days > 0:
        moment += timedelta(days=1)
        if moment.weekday() < 5:
            days -= 1
    return moment


@dataclass(frozen=True)
class StatusWords:
    expected_at: datetime | None
    status_reason: str
    next_step: str


def _money(value: Money) -> str:
    return f"{value.currency} {value.amount:,.2f}"


def _next_payout_date(method: PayoutMethod | None, now: datetime) -> datetime | None:
    run = next_payout_run(now)
    if run is None or method is None or not method.is_verified:
        return None
    return add_business_days(run, RAIL_BUSINESS_DAYS.get(method.rail, 3))


def payout_status_words(
    payout: Payout, *, method: PayoutMethod | None = None, now: datetime | None = None
) -> StatusWords:
    """Why a payout is where it is, when the money should arrive, and what the creator can do.

    ``method`` is the creator's current payout method (pass it to save a query per payout).
    """
    now = now or timezone.now()
    if method is None:
        method = PayoutMethod.objects.filter(creator_id=payout.creator_id).first()
    rail_days = RAIL_BUSINESS_DAYS.get(payout.rail, 3)
    rail_words = "Stripe" if payout.rail == Rail.STRIPE else "bank transfer"
    status = payout.status
    if status == PayoutStatus.PAID:
        return StatusWords(payout.paid_at, f"Paid by {rail_words}.", "")
    if status == PayoutStatus.AWAITING_APPROVAL:
        expected = add_business_days(
            max(now, payout.created_at), APPROVAL_BUSINESS_DAYS + rail_days
        )
        tax_missing = method is None or method.tax_form_status == TaxFormStatus.MISSING
        if "tax form" in payout.hold_reason and tax_missing:
            threshold = Money(settings.PAYOUT_TAX_FORM_THRESHOLD, settings.PAYOUT_CURRENCY)
            return StatusWords(
                expected,
                f"Held: tax form missing. Your payouts this year pass {_money(threshold)}, "
                "so we need a W-9 (US persons) or W-8BEN (everyone else) before we can pay.",
                f"Send your W-9 or W-8BEN to {SUPPORT_EMAIL}. We release the payout within "
                f"{APPROVAL_BUSINESS_DAYS} business days of receiving it; the date shown assumes "
                "you send it today.",
            )
        if method is not None and not method.is_verified:
            return StatusWords(
                None,
                "Held: your payout method is not verified. It changed after this payout was "
                "made, so we hold it until the new details are confirmed.",
                f"Finish setting up your payout method ({METHOD_PAGE}). If you did not change "
                f"it, contact {SUPPORT_EMAIL} at once.",
            )
        limit = Money(settings.PAYOUT_APPROVAL_ABOVE, settings.PAYOUT_CURRENCY)
        return StatusWords(
            expected,
            f"Awaiting approval: payouts above {_money(limit)} (or held for review) are checked "
            "by our payments team before they go out.",
            f"Nothing to do. Review takes up to {APPROVAL_BUSINESS_DAYS} business days.",
        )
    if status in (PayoutStatus.REQUESTED, PayoutStatus.PROCESSING) and (
        payout.held_until is not None and payout.held_until > now
    ):
        hours = settings.PAYOUT_DESTINATION_HOLD_HOURS
        return StatusWords(
            add_business_days(payout.held_until, rail_days),
            f"Held until {payout.held_until:%Y-%m-%d %H:%M} UTC: your payout method was set or "
            f"changed less than {hours} hours ago. For your security, money never goes to a new "
            f"destination until {hours} hours have passed.",
            "Nothing to do: it goes out by itself when the hold ends. If you did not change your "
            f"payout method, contact {SUPPORT_EMAIL} at once.",
        )
    if status in (PayoutStatus.REQUESTED, PayoutStatus.PROCESSING):
        start = payout.sent_at or payout.approved_at or payout.created_at
        expected = add_business_days(start, rail_days)
        if payout.rail == Rail.MANUAL and status == PayoutStatus.PROCESSING:
            reason = "On its way: in our next bank run (we send bank transfers on working days)."
        else:
            reason = f"On its way by {rail_words}."
        return StatusWords(expected, reason, "Nothing to do.")
    # Failed or cancelled: the diamonds are back in available.
    again = _next_payout_date(method, now)
    back = "The diamonds are back in your available balance"
    if status == PayoutStatus.CANCELLED:
        return StatusWords(
            again,
            "Cancelled by our payments team.",
            f"{back} and go out with the next weekly payout. Questions: {SUPPORT_EMAIL}.",
        )
    code = payout.failure_code
    if code == "account_invalid":
        return StatusWords(
            again,
            "Failed: your payout method is not verified. Stripe cannot send money to your "
            "account until onboarding is complete."
            if payout.rail == Rail.STRIPE
            else "Failed: your payout method is not verified.",
            f"Finish setting up your payout method ({METHOD_PAGE}). {back} and go out with the "
            "first weekly payout after it is verified.",
        )
    if code in ("destination_changed", "method_unverified"):
        return StatusWords(
            again,
            FAILURE_WORDS[code],
            "It goes out with the first weekly payout after your payout method is verified and "
            f"its {settings.PAYOUT_DESTINATION_HOLD_HOURS}-hour hold has passed. If you did not "
            f"change it, contact {SUPPORT_EMAIL} at once.",
        )
    if code == "staff":
        return StatusWords(
            again,
            "Failed: your bank returned the transfer (for example a closed account or a name "
            "that does not match the account).",
            f"Check the account holder and IBAN on your payout method page ({METHOD_PAGE}) and "
            f"save them again. {back} and go out once the details are verified.",
        )
    if code == "insufficient_funds":
        return StatusWords(
            again,
            "Failed: a temporary problem on our side.",
            f"Nothing to do. {back} and go out with the next weekly payout.",
        )
    return StatusWords(
        again,
        "Failed: the payout provider refused the transfer.",
        f"{back}. We look into every refusal; if it happens again, contact {SUPPORT_EMAIL}.",
    )


# --- The dashboard panel and the next payout estimate ------------------------------------------


@dataclass
class NextPayout:
    diamonds_available: int
    available_value: Money
    minimum: Money
    next_run: datetime | None
    expected_at: datetime | None
    estimate: Money | None
    blocked_because: str
    next_step: str
    warning: str = ""


def next_payout_estimate(
    *, user: User, method: PayoutMethod | None = None, has_open: bool | None = None
) -> NextPayout:
    """The next payout: how much and when, or what blocks it and what to do about it."""
    from payouts.services import diamonds_value, minimum_payout_diamonds

    if method is None:
        method = payout_method_for_user(user=user)
    available = (
        Account.objects.filter(kind=AccountKind.DIAMONDS_AVAILABLE, user=user)
        .values_list("balance", flat=True)
        .first()
        or 0
    )
    if has_open is None:
        has_open = Payout.objects.filter(creator__user=user, status__in=OPEN_STATUSES).exists()
    minimum = Money(settings.PAYOUT_MINIMUM, settings.PAYOUT_CURRENCY)
    value = diamonds_value(available)
    run = next_payout_run()
    blocked, step, warning = "", "", ""
    if method is None:
        blocked, step = "Add a payout method.", f"Set up payouts at {METHOD_PAGE}."
    elif not method.is_verified and method.rail == Rail.STRIPE:
        blocked = "Finish Stripe onboarding: your payout method is not verified yet."
        step = f"Open {METHOD_PAGE} and complete Stripe's questions."
    elif not method.is_verified:
        blocked = "Your bank details are waiting for verification by our team."
        step = "Nothing to do: we verify new bank details within 1 business day."
    elif has_open:
        blocked = "A payout is already on its way."
        step = "The next one follows once it is paid."
    elif available < minimum_payout_diamonds():
        blocked = f"Reach {_money(minimum)}: you have {_money(value)} available."
        step = "Diamonds become available after the hold period; keep going live."
    if not blocked and method is not None:
        from payouts.services.batch import _paid_this_year

        year = _paid_this_year([method.creator_id]).get(method.creator_id, 0)
        if (
            method.tax_form_status == TaxFormStatus.MISSING
            and year + value.amount > settings.PAYOUT_TAX_FORM_THRESHOLD
        ):
            warning = (
                "This payout will wait for your tax form (W-9 or W-8BEN): send it to "
                f"{SUPPORT_EMAIL} now to avoid a delay."
            )
    expected = None
    if not blocked and run is not None and method is not None:
        expected = add_business_days(run, RAIL_BUSINESS_DAYS.get(method.rail, 3))
    held_until = method.destination_held_until if method is not None else None
    if (
        not blocked
        and method is not None
        and held_until is not None
        and run is not None
        and held_until > run
    ):
        warning = (
            f"Your payout method was set or changed recently: payouts to it wait until "
            f"{held_until:%Y-%m-%d %H:%M} UTC ({settings.PAYOUT_DESTINATION_HOLD_HOURS}-hour "
            f"security hold). If you did not change it, contact {SUPPORT_EMAIL} at once."
        )
        expected = add_business_days(held_until, RAIL_BUSINESS_DAYS.get(method.rail, 3))
    return NextPayout(
        diamonds_available=available,
        available_value=value,
        minimum=minimum,
        next_run=run,
        expected_at=expected,
        estimate=None if blocked else value,
        blocked_because=blocked,
        next_step=step,
        warning=warning,
    )


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
    next_payout: NextPayout
    has_open: bool = False  # a payout on its way: "Cash out now" waits for it


def payout_panel(*, user: User, limit: int = 10) -> PayoutPanel:
    method = payout_method_for_user(user=user)
    payouts = list(payouts_for_user(user=user)[:limit])
    now = timezone.now()
    for payout in payouts:
        payout.failure_words = payout_failure_words(payout)
        payout.words = payout_status_words(payout, method=method, now=now)
        payout.is_held = (
            payout.status in (PayoutStatus.REQUESTED, PayoutStatus.PROCESSING)
            and payout.held_until is not None
            and payout.held_until > now
        )
    has_open = Payout.objects.filter(creator__user=user, status__in=OPEN_STATUSES).exists()
    estimate = next_payout_estimate(user=user, method=method, has_open=has_open)
    return PayoutPanel(
        method=method,
        diamonds_available=estimate.diamonds_available,
        available_value=estimate.available_value,
        minimum=estimate.minimum,
        next_run=estimate.next_run,
        next_payout_estimate=estimate.estimate,
        blocked_because=estimate.blocked_because,
        payouts=payouts,
        next_payout=estimate,
        has_open=has_open,
    )
