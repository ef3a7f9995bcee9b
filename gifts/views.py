"""Portal pages that combine creators and gifts: a creator's page and the creator dashboard."""

from datetime import date
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import select_template
from django.views.decorators.http import require_POST

from config.api import signed_in_user
from creators.selectors import (
    creator_earnings,
    creator_find,
    creator_live_session,
    creator_of,
    creators_live_now,
    creators_search,
)
from creators.services import creator_live_end, creator_live_start
from gifts import feed_hooks
from gifts.goals import goals_progress
from gifts.quote import creator_value_text, gift_quote
from gifts.selectors import (
    PERIODS,
    creator_daily_diamonds,
    creator_recent_gifts,
    creators_popular,
    gifts_available,
    leaderboard,
)
from wallets.selectors import wallet_find

PERIOD_LABELS = {"day": "Today", "week": "This week", "month": "This month", "all": "All time"}


def _initials(name: str) -> str:
    parts = [p for p in name.replace("_", " ").replace(".", " ").split() if p]
    return "".join(p[0] for p in parts[:2]).upper() or "?"


def _hue(name: str) -> int:
    return sum(ord(c) for c in name) * 37 % 360


def creator_page(request: HttpRequest, handle: str) -> HttpResponse:
    creator = creator_find(handle=handle)
    if creator is None or not creator.is_active:
        raise Http404("No such creator.")
    period = request.GET.get("period", "day")
    if period not in PERIODS:
        period = "day"
    viewer = request.user if request.user.is_authenticated else None
    wallet = wallet_find(user=viewer) if viewer else None
    live = creator_live_session(creator_id=creator.pk)
    gifts = gifts_available()
    goals = goals_progress(
        creator_id=creator.pk, live_id=live.live_id if live else None, open_only=True, limit=5
    )
    first_gift = next(iter(gifts), None)
    leaders = [
        {**row, "initials": _initials(row["username"]), "hue": _hue(row["username"])}
        for row in leaderboard(creator_id=creator.pk, period=period)
    ]
    return render(
        request,
        "creators/page.html",
        {
            "creator": creator,
            "initials": _initials(creator.display_name),
            "gifts": gifts,
            "goals": goals,
            "has_aon_goal": any(g.all_or_nothing for g in goals),
            "split_text": creator_value_text(gift_quote(coins=first_gift.coins))
            if first_gift
            else "",
            "viewer_coins": wallet.balance if wallet else 0,
            "is_self": viewer is not None and viewer.pk == creator.user_id,
            "viewer_is_adult": viewer is not None and viewer.is_adult,
            "period": period,
            "periods": [(p, PERIOD_LABELS[p]) for p in PERIODS],
            "leaders": leaders,
            "live": live,
        },
    )


def creator_directory(request: HttpRequest) -> HttpResponse:
    """Find creators: search by name or handle, who is live now, popular this week."""
    query = request.GET.get("q", "").strip()[:80]
    live_now = creators_live_now()
    return render(
        request,
        "creators/directory.html",
        {
            "query": query,
            "results": list(creators_search(query=query)) if query else None,
            "live_now": live_now,
            "popular": creators_popular(),
            "live_ids": {c.pk for c in live_now},
        },
    )


def _chart(days: list[tuple[date, int]]) -> dict[str, Any]:
    """Bar geometry for the inline SVG: percentages across, pixels down (200 px tall)."""
    top, bottom, left = 16, 176, 7.0
    peak = max((value for _, value in days), default=0)
    steps = (m * 10**e for e in range(19) for m in (1, 2, 5))
    scale_max = 4 * next(step for step in steps if step * 4 >= peak)
    height = bottom - top
    slot = (100 - left) / len(days)
    bars = []
    for index, (day, value) in enumerate(days):
        bar_height = round(height * value / scale_max) if value else 0
        x = left + slot * index + slot * 0.15
        bars.append(
            {
                "x": f"{x:.2f}",
                "width": f"{slot * 0.7:.2f}",
                "y": bottom - bar_height,
                "height": bar_height,
                "label_x": f"{x + slot * 0.35:.2f}",
                "label": day.strftime("%d"),
                "title": f"{day:%a %d %b}: {value:,} diamonds",
                "is_today": index == len(days) - 1,
            }
        )
    grid = [
        {"y": round(bottom - height * i / 4), "label": f"{scale_max * i // 4:,}"} for i in range(5)
    ]
    summary = ", ".join(f"{day:%b %d} {value:,}" for day, value in days)
    return {
        "bars": bars,
        "grid": grid,
        "left": left,
        "summary": summary,
        "total": sum(v for _, v in days),
    }


def _payouts_template() -> str | None:
    try:
        name: str = select_template(
            ["creators/_payouts.html", "payouts/_dashboard.html"]
        ).template.name
        return name
    except TemplateDoesNotExist:
        return None


@login_required
def creator_dashboard(request: HttpRequest) -> HttpResponse:
    creator = creator_of(user=signed_in_user(request))
    if creator is None:
        return render(request, "creators/become.html", {})
    earnings = creator_earnings(creator=creator)
    live = creator_live_session(creator_id=creator.pk)
    recent_gifts = list(creator_recent_gifts(creator_id=creator.pk))
    return render(
        request,
        "creators/dashboard.html",
        {
            "creator": creator,
            "initials": _initials(creator.display_name),
            "earnings": earnings,
            "recent_gifts": recent_gifts,
            # Messages the creator's moderation hides or holds (moderation app) show as such.
            "veiled_ids": feed_hooks.veiled_ids(recent_gifts),
            "chart": _chart(creator_daily_diamonds(creator_id=creator.pk, days=14)),
            "payouts_template": _payouts_template(),
            "hold_days": settings.EARNINGS_HOLD_DAYS,
            "live": live,
            "overlay_url": (
                request.build_absolute_uri(f"/overlay/{creator.handle}/{live.live_id}/")
                if live
                else ""
            ),
        },
    )


@login_required
@require_POST
def creator_live_toggle(request: HttpRequest) -> HttpResponse:
    """The dashboard's go-live switch: ``action=start`` or ``action=end``."""
    creator = creator_of(user=signed_in_user(request))
    if creator is None:
        raise Http404("Not a creator.")
    if request.POST.get("action") == "start":
        creator_live_start(creator=creator)
    else:
        creator_live_end(creator=creator)
    return redirect("/creator/#live")
