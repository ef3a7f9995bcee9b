"""Coins a viewer spends on creators per UTC day, for their own spending limits.

Gifts count here (``gifts.services``: the platform's ``DAILY_GIFT_LIMIT`` and the viewer's own
limits), and so do membership months (``memberships``: the viewer's own limits only), in the
same ``DailyGiftSpend`` row per (user, day): a month paid today leaves that much less of the
viewer's own daily and monthly limit for gifts, and the other way round.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from django.db import connection
from django.db.models import Q, Sum
from django.utils import timezone

from gifts.models import DailyGiftSpend
from wallets.services import SpendingLimitExceeded, spending_limits_effective
from wallets.services.limits import EffectiveLimits


def spend_day(now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(UTC).date()


def own_limit_refusal(
    *, limits: EffectiveLimits, today: int, month: int, coins: int
) -> SpendingLimitExceeded | None:
    """Whether spending ``coins`` more goes over the viewer's own limits, given what was spent
    today and this month (``None``: it fits)."""
    if limits.daily is not None and today + coins > limits.daily:
        return SpendingLimitExceeded(
            f"This would go over your own daily limit of {limits.daily:,} coins.",
            fields={"coins": [f"Over your daily limit of {limits.daily} coins."]},
        )
    if limits.monthly is not None and month + coins > limits.monthly:
        return SpendingLimitExceeded(
            f"This would go over your own monthly limit of {limits.monthly:,} coins.",
            fields={"coins": [f"Over your monthly limit of {limits.monthly} coins."]},
        )
    return None


def spent_today_and_month(*, user_ids: list[int], now: datetime) -> dict[int, tuple[int, int]]:
    """``{user: (coins today, coins this month)}`` spent on creators (one query)."""
    if not user_ids:
        return {}
    day = spend_day(now)
    rows = (
        DailyGiftSpend.objects.filter(
            user_id__in=set(user_ids), day__gte=day.replace(day=1), day__lte=day
        )
        .values("user_id")
        .annotate(today=Sum("coins", filter=Q(day=day), default=0), month=Sum("coins"))
    )
    return {r["user_id"]: (int(r["today"]), int(r["month"])) for r in rows}


def creator_spending_add(*, coins_by_user: dict[int, int], now: datetime | None = None) -> None:
    """Count coins spent on creators today (one upsert for any number of users). The caller
    checked the viewers' own limits first (``creator_spending_check``), under the lock of
    their wallets."""
    coins_by_user = {u: c for u, c in coins_by_user.items() if c > 0}
    if not coins_by_user:
        return
    users = sorted(coins_by_user)
    day = spend_day(now)
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":  # make run's SQLite: one row at a time
            for user_id in users:
                cursor.execute(
                    "INSERT INTO gifts_dailygiftspend (user_id, day, coins) VALUES (%s, %s, %s) "
                    "ON CONFLICT (user_id, day) DO UPDATE "
                    "SET coins = gifts_dailygiftspend.coins + excluded.coins",
                    [user_id, day, coins_by_user[user_id]],
                )
            return
        cursor.execute(
            "INSERT INTO gifts_dailygiftspend (user_id, day, coins) "
            "SELECT u, %s, c FROM unnest(%s::bigint[], %s::bigint[]) AS s(u, c) "
            "ON CONFLICT (user_id, day) DO UPDATE "
            "SET coins = gifts_dailygiftspend.coins + excluded.coins",
            [day, users, [coins_by_user[u] for u in users]],
        )


def creator_spending_check(*, user_id: int, coins: int, now: datetime | None = None) -> None:
    """Refuse (``SpendingLimitExceeded``, 403) spending ``coins`` on a creator over the viewer's
    own daily or monthly limit; one indexed read when they set none."""
    now = now or timezone.now()
    limits = spending_limits_effective(user_id=user_id, now=now)
    if limits.daily is None and limits.monthly is None:
        return
    today, month = spent_today_and_month(user_ids=[user_id], now=now).get(user_id, (0, 0))
    refusal = own_limit_refusal(limits=limits, today=today, month=month, coins=coins)
    if refusal is not None:
        raise refusal
