"""Viewers' own spending controls: daily and monthly coin limits and a cooling-off threshold.

The limits cap, separately, the coins a viewer *buys* (``recharge_create``) and the coins a
viewer *gifts* (``gifts.services.gift_send``) per UTC day and per UTC calendar month. They can
only make the platform's limits (``DAILY_PURCHASE_LIMIT``, ``DAILY_GIFT_LIMIT``) stricter.
A lower limit applies at once; a higher one (or removing one) after
``SPENDING_LIMIT_RAISE_DELAY_HOURS`` (24 h), so a moment's impulse cannot lift it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from config.errors import DomainError, InvalidInput
from wallets.models import AccountKind, Entry, Recharge, RechargeStatus, SpendingLimits

if TYPE_CHECKING:
    from accounts.models import User


LIMIT_MAX = 10**12
UNSET: Any = object()


class SpendingLimitExceeded(DomainError):
    code = "spending_limit_exceeded"
    status = 403
    default_message = "This would go over the spending limit you set yourself."


class ConfirmationRequired(DomainError):
    code = "confirmation_required"
    status = 409
    default_message = "This purchase is above your confirmation threshold: send confirm=true."


@dataclass(frozen=True)
class EffectiveLimits:
    daily: int | None
    monthly: int | None
    confirm_above: int | None
    daily_next: int | None = None
    daily_next_at: datetime | None = None
    monthly_next: int | None = None
    monthly_next_at: datetime | None = None


NO_LIMITS = EffectiveLimits(None, None, None)


def _effective(row: SpendingLimits | None, now: datetime) -> EffectiveLimits:
    if row is None:
        return NO_LIMITS
    values: dict[str, Any] = {"confirm_above": row.confirm_above}
    for period in ("daily", "monthly"):
        current = getattr(row, f"{period}_limit")
        next_value = getattr(row, f"{period}_limit_next")
        next_at = getattr(row, f"{period}_limit_next_at")
        if next_at is not None and next_at <= now:
            current, next_value, next_at = next_value, None, None
        values[period] = current
        values[f"{period}_next"] = next_value
        values[f"{period}_next_at"] = next_at
    return EffectiveLimits(**values)


def spending_limits_effective(*, user_id: int, now: datetime | None = None) -> EffectiveLimits:
    """The limits in force now (a matured raise counts as applied). One indexed read."""
    row = SpendingLimits.objects.filter(user_id=user_id).first()
    return _effective(row, now or timezone.now())


def _clean_limit(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= LIMIT_MAX:
        raise InvalidInput(
            f"{name} must be a whole number of coins from 0 to {LIMIT_MAX}, or null.",
            fields={name: ["Must be a whole number of coins (0 or more), or null for none."]},
        )
    return value


def _is_lower(new: int | None, current: int | None) -> bool:
    """Whether ``new`` is stricter than ``current`` (None is no limit at all)."""
    if new is None:
        return False
    return current is None or new < current


@transaction.atomic
def spending_limits_set(
    *,
    user: User,
    daily_limit: Any = UNSET,
    monthly_limit: Any = UNSET,
    confirm_above: Any = UNSET,
    now: datetime | None = None,
) -> SpendingLimits:
    """Change the viewer's own limits. Lowering applies now; raising (or removing) in 24 h.

    Arguments left out stay as they are. The row is locked, so two changes at once queue.
    """
    now = now or timezone.now()
    delay = timedelta(hours=settings.SPENDING_LIMIT_RAISE_DELAY_HOURS)
    try:
        with transaction.atomic():
            SpendingLimits.objects.get_or_create(user=user)
    except IntegrityError:
        pass
    row = SpendingLimits.objects.select_for_update().get(user=user)
    current = _effective(row, now)
    for period, value in (("daily", daily_limit), ("monthly", monthly_limit)):
        # Fold a matured raise into the current value first.
        setattr(row, f"{period}_limit", getattr(current, period))
        setattr(row, f"{period}_limit_next", getattr(current, f"{period}_next"))
        setattr(row, f"{period}_limit_next_at", getattr(current, f"{period}_next_at"))
        if value is UNSET:
            continue
        value = _clean_limit(f"{period}_limit", value)
        in_force = getattr(current, period)
        if value == in_force:
            setattr(row, f"{period}_limit_next", None)  # cancels a pending raise
            setattr(row, f"{period}_limit_next_at", None)
        elif _is_lower(value, in_force):
            setattr(row, f"{period}_limit", value)
            setattr(row, f"{period}_limit_next", None)
            setattr(row, f"{period}_limit_next_at", None)
        else:
            setattr(row, f"{period}_limit_next", value)
            setattr(row, f"{period}_limit_next_at", now + delay)
    if confirm_above is not UNSET:
        row.confirm_above = _clean_limit("confirm_above", confirm_above)
    row.save()
    return row


# --- Periods and what was spent in them -----------------------------------------------------


def day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def month_first_day(day: date) -> date:
    return day.replace(day=1)


def coins_bought_since(*, user: User, since: datetime) -> int:
    total = (
        Recharge.objects.filter(user=user, created_at__gte=since)
        .exclude(status=RechargeStatus.FAILED)
        .aggregate(total=Sum("coins"))["total"]
    )
    return int(total or 0)


def coins_gifted_since(*, user: User, since: datetime) -> int:
    total = Entry.objects.filter(
        account__kind=AccountKind.WALLET,
        account__user=user,
        transaction__kind__in=["gift", "membership"],  # what counts towards the own limits
        created_at__gte=since,
    ).aggregate(total=Sum("amount"))["total"]
    return -int(total or 0)


def purchase_limits_check(*, user: User, coins: int, now: datetime | None = None) -> None:
    """Refuse a purchase that would take today's or this month's coins bought over the
    viewer's own limit. The caller holds the user's purchase lock (the Stripe customer row),
    so two purchases at once are counted one after the other."""
    now = now or timezone.now()
    limits = spending_limits_effective(user_id=user.pk, now=now)
    for period, limit, since in (
        ("daily", limits.daily, day_start(now)),
        ("monthly", limits.monthly, month_start(now)),
    ):
        if limit is None:
            continue
        bought = coins_bought_since(user=user, since=since)
        if bought + coins > limit:
            left = max(0, limit - bought)
            raise SpendingLimitExceeded(
                f"This purchase would go over your own {period} limit of {limit:,} coins "
                f"({left:,} left this {'day' if period == 'daily' else 'month'}).",
                fields={"coins": [f"Over your {period} limit of {limit} coins."]},
            )


def purchase_confirmation_check(
    *, user: User, coins: int, confirmed: bool, portal: bool, now: datetime | None = None
) -> None:
    """Cooling-off: above the viewer's own ``confirm_above`` (or, in the portal, above
    ``COOLING_OFF_ABOVE`` when they set none) a purchase needs ``confirm: true``."""
    limits = spending_limits_effective(user_id=user.pk, now=now)
    threshold = limits.confirm_above
    if threshold is None and portal:
        threshold = settings.COOLING_OFF_ABOVE
    if threshold is not None and coins > threshold and not confirmed:
        raise ConfirmationRequired(
            f"You are buying {coins:,} coins, more than {threshold:,}. "
            "Please confirm that you want to go ahead.",
            fields={"confirm": ["Required (true) for purchases above your threshold."]},
        )
