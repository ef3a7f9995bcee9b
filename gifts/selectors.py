"""Reads about gifts: the catalog, leaderboards, a creator's recent gifts and daily totals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, QuerySet, Sum
from django.utils import timezone

from gifts.models import Gift, GiftEvent, GiftTally

if TYPE_CHECKING:
    from creators.models import Creator

PERIODS = ("day", "week", "month", "all")
# coins: most coins in the period; days: most distinct (UTC) days with a gift in the period,
# so one coin a day for a month outranks one big night (ties: more coins first).
METRICS = ("coins", "days")
LEVEL_MAX = 50
LEVEL_CACHE_SECONDS = 60


def gifts_available(*, now: datetime | None = None, country: str | None = None) -> list[Gift]:
    gifts = list(Gift.objects.available(now).order_by("sort_order", "coins", "pk"))
    if country:
        gifts = [g for g in gifts if not g.countries or country.upper() in g.countries]
    return gifts


def catalog_last_modified() -> datetime | None:
    last: datetime | None = Gift.objects.aggregate(last=Max("updated_at"))["last"]
    return last


def utc_today(now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(UTC).date()


def period_start(period: str, today: date) -> date | None:
    """First UTC day of ``period``: today, this week (from Monday), or None for all time."""
    if period == "day":
        return today
    if period == "week":
        return today - timedelta(days=today.weekday())
    if period == "month":
        return today.replace(day=1)
    return None


def leaderboard(
    *, creator_id: int, period: str = "day", metric: str = "coins", now: datetime | None = None
) -> list[dict[str, Any]]:
    """Top gifters of a creator, briefly cached: ``[{"username", "coins"}]`` biggest first, or
    with ``metric="days"`` ``[{"username", "days"}]`` (distinct days with a gift).

    Reads the per-(creator, day, sender) tallies that every gift upserts, so the work grows
    with the number of distinct gifters in the period, not with the number of gift events
    (one tally row per sender and day: counting rows counts days).
    """
    if period not in PERIODS:
        raise ValueError(period)
    if metric not in METRICS:
        raise ValueError(metric)
    today = utc_today(now)
    cache_key = f"leaderboard:{creator_id}:{period}:{metric}:{today.isoformat()}"
    cached: list[dict[str, Any]] | None = cache.get(cache_key)
    if cached is not None:
        return cached
    rows = GiftTally.objects.filter(creator_id=creator_id)
    start = period_start(period, today)
    if period == "day":
        rows = rows.filter(day=today)
    elif start is not None:
        rows = rows.filter(day__gte=start, day__lte=today)
    grouped = rows.values("sender__username").annotate(total=Sum("coins"), days=Count("id"))
    order = ("-days", "-total") if metric == "days" else ("-total",)
    top = grouped.order_by(*order, "sender__username")[: settings.LEADERBOARD_SIZE]
    result = [{"username": r["sender__username"], metric: r[_COLUMN[metric]]} for r in top]
    cache.set(cache_key, result, settings.LEADERBOARD_CACHE_SECONDS)
    return result


_COLUMN: dict[str, Literal["total", "days"]] = {"coins": "total", "days": "days"}


# --- Levels ---------------------------------------------------------------------------------


def level_threshold(level: int) -> int:
    """Lifetime coins a viewer needs for ``level`` (the published curve): 10 × (level − 1)³.
    Level 2 at 10 coins, 5 at 640, 10 at 7,290, 20 at 68,590, 50 at 1,176,490."""
    return 10 * (level - 1) ** 3


def level_for(coins: int) -> int:
    """The level (1..50) that ``coins`` reach on the curve."""
    level = 1
    while level < LEVEL_MAX and coins >= level_threshold(level + 1):
        level += 1
    return level


def lifetime_gifted(*, user_id: int) -> int:
    """Coins a viewer gave in gifts, all creators, minus coins of gifts taken back by a
    chargeback (the only thing that lowers a level). From the tallies: no gift-path write."""
    from wallets.models import ChargebackAllocation

    gifted = GiftTally.objects.filter(sender_id=user_id).aggregate(total=Sum("coins"))["total"]
    clawed = ChargebackAllocation.objects.filter(
        dispute__recharge__user_id=user_id, reversed=False, gift_transaction__kind="gift"
    ).aggregate(total=Sum("coins"))["total"]
    return max(0, (gifted or 0) - (clawed or 0))


def viewer_level(*, user_id: int) -> int:
    """The viewer's supporter level (1..50), cached for ``LEVEL_CACHE_SECONDS``."""
    key = f"level:{user_id}"
    level: int | None = cache.get(key)
    if level is None:
        level = level_for(lifetime_gifted(user_id=user_id))
        cache.set(key, level, LEVEL_CACHE_SECONDS)
    return level


def creator_support(*, creator_id: int, user_id: int) -> tuple[int, int]:
    """(coins gifted, distinct days with a gift) from one viewer to one creator, all time."""
    row = GiftTally.objects.filter(creator_id=creator_id, sender_id=user_id).aggregate(
        coins=Sum("coins"), days=Count("id")
    )
    return row["coins"] or 0, row["days"] or 0


def creator_recent_gifts(*, creator_id: int, limit: int = 20) -> QuerySet[GiftEvent]:
    return (
        GiftEvent.objects.filter(creator_id=creator_id)
        .select_related("sender", "gift")
        .order_by("-created_at", "-pk")[:limit]
    )


def creator_daily_diamonds(
    *, creator_id: int, days: int = 14, now: datetime | None = None
) -> list[tuple[date, int]]:
    """Diamonds earned per UTC day over the last ``days`` days (oldest first, zeros filled)."""
    today = utc_today(now)
    first = today - timedelta(days=days - 1)
    totals = dict(
        GiftTally.objects.filter(creator_id=creator_id, day__gte=first, day__lte=today)
        .values("day")
        .annotate(total=Sum("diamonds"))
        .values_list("day", "total")
    )
    return [
        (first + timedelta(days=i), totals.get(first + timedelta(days=i), 0)) for i in range(days)
    ]


def creators_popular(
    *, days: int = 7, limit: int = 12, now: datetime | None = None
) -> list[tuple[Creator, int]]:
    """Creators by coins received over the last ``days`` UTC days: ``[(creator, coins)]``."""
    from creators.models import Creator

    today = utc_today(now)
    top = list(
        GiftTally.objects.filter(day__gte=today - timedelta(days=days - 1), day__lte=today)
        .values("creator_id")
        .annotate(total=Sum("coins"))
        .order_by("-total", "creator_id")[:limit]
    )
    by_id = Creator.objects.filter(pk__in=[r["creator_id"] for r in top], is_active=True).in_bulk()
    return [(by_id[r["creator_id"]], r["total"]) for r in top if r["creator_id"] in by_id]
