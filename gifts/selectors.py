"""Reads about gifts: the catalog, leaderboards, a creator's recent gifts and daily totals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max, QuerySet, Sum
from django.utils import timezone

from gifts.models import Gift, GiftEvent, GiftTally

PERIODS = ("day", "week", "all")


def gifts_available(*, now: datetime | None = None, country: str | None = None) -> list[Gift]:
    gifts = list(Gift.objects.available(now).order_by("sort_order", "coins", "pk"))
    if country:
        gifts = [g for g in gifts if not g.countries or country.upper() in g.countries]
    return gifts


def catalog_last_modified() -> datetime | None:
    return Gift.objects.aggregate(last=Max("updated_at"))["last"]


def utc_today(now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(UTC).date()


def period_start(period: str, today: date) -> date | None:
    """First UTC day of ``period``: today, this week (from Monday), or None for all time."""
    if period == "day":
        return today
    if period == "week":
        return today - timedelta(days=today.weekday())
    return None


def leaderboard(*, creator_id: int, period: str = "day", now: datetime | None = None) -> list:
    """Top gifters of a creator: ``[{"username", "coins"}]``, biggest first, briefly cached.

    Reads the per-(creator, day, sender) tallies that every gift upserts, so the work grows
    with the number of distinct gifters in the period, not with the number of gift events.
    """
    if period not in PERIODS:
        raise ValueError(period)
    today = utc_today(now)
    cache_key = f"leaderboard:{creator_id}:{period}:{today.isoformat()}"
    cached = cache.get(cache_key)
    if cached is not None:
        return cached
    rows = GiftTally.objects.filter(creator_id=creator_id)
    start = period_start(period, today)
    if period == "day":
        rows = rows.filter(day=today)
    elif start is not None:
        rows = rows.filter(day__gte=start, day__lte=today)
    top = (
        rows.values("sender__username")
        .annotate(total=Sum("coins"))
        .order_by("-total", "sender__username")[: settings.LEADERBOARD_SIZE]
    )
    result = [{"username": r["sender__username"], "coins": r["total"]} for r in top]
    cache.set(cache_key, result, settings.LEADERBOARD_CACHE_SECONDS)
    return result


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


def creators_popular(*, days: int = 7, limit: int = 12, now: datetime | None = None) -> list:
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
