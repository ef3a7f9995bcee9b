"""Pieces of other apps' pages that memberships fills in: the tiers (with a Join button) and
the loyalty board on a creator's page, the tier editor on the creator dashboard."""

import uuid

from django import template

from gifts.selectors import leaderboard
from memberships.selectors import membership_live, tiers_of

register = template.Library()


@register.inclusion_tag("memberships/_creator_tiers.html", takes_context=True)
def membership_tiers(context, creator):
    user = context["request"].user
    viewer = user if user.is_authenticated else None
    current = membership_live(member_id=viewer.pk, creator_id=creator.pk) if viewer else None
    return {
        "creator": creator,
        "tiers": list(tiers_of(creator_id=creator.pk)),
        "user": user,
        "current": current,
        "is_self": viewer is not None and viewer.pk == creator.user_id,
        "client_key": str(uuid.uuid4()),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("memberships/_loyalty_board.html", takes_context=True)
def loyalty_board(context, creator, period="week"):
    user = context["request"].user
    return {
        "rows": leaderboard(creator_id=creator.pk, period=period, metric="days"),
        "period": period,
        "me": user.get_username() if user.is_authenticated else "",
    }


@register.inclusion_tag("memberships/_tier_editor.html", takes_context=True)
def tier_editor(context, creator):
    from django.conf import settings

    from creators.selectors import diamonds_value
    from gifts.services import diamonds_for
    from memberships.models import TIERS_MAX

    tiers = list(tiers_of(creator_id=creator.pk))
    monthly_diamonds = diamonds_for(sum(getattr(t, "monthly_coins", 0) or 0 for t in tiers))
    return {
        "creator": creator,
        "tiers": tiers,
        "can_add": len(tiers) < TIERS_MAX,
        "members": sum(getattr(t, "members", 0) for t in tiers),
        "monthly_diamonds": monthly_diamonds,
        "monthly_value": diamonds_value(monthly_diamonds),
        "notice_days": settings.MEMBERSHIP_PRICE_NOTICE_DAYS,
        "csrf_token": context.get("csrf_token"),
    }
