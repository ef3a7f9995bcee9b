"""Supporter badges shown beside a viewer's name: on live feed events and the overlay, in
leaderboards, and in ``GET creators/{handle}/fans/{username}/``.

A badge is ``{"kind", "label", "value"}``. Gifts gives two from its own tallies (no write on
the gift path): ``level`` (the viewer's supporter level, ``gifts.selectors.viewer_level``) and
``top3`` (rank 1-3 on the creator's board of the week). Apps above gifts add theirs with
``register`` (memberships: ``member`` with the months), so gifts never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model

from gifts.selectors import leaderboard, viewer_level

Badge = dict[str, Any]
Provider = Callable[[int, int], list[Badge]]
_PROVIDERS: list[Provider] = []


def register(provider: Provider) -> Provider:
    """Add ``provider(creator_id, user_id) -> [badge]``; its badges come first."""
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)
    return provider


def _own(creator_id: int, user_id: int, username: str | None) -> list[Badge]:
    level = viewer_level(user_id=user_id)
    badges: list[Badge] = [{"kind": "level", "label": f"Level {level}", "value": level}]
    if username is None:
        username = (
            get_user_model().objects.filter(pk=user_id).values_list("username", flat=True).first()
        )
    week = leaderboard(creator_id=creator_id, period="week")[:3]
    for rank, row in enumerate(week, start=1):
        if row["username"] == username:
            badges.append({"kind": "top3", "label": f"#{rank} this week", "value": rank})
    return badges


def badges_for(*, creator_id: int, user_id: int, username: str | None = None) -> list[Badge]:
    badges: list[Badge] = []
    for provider in _PROVIDERS:
        badges += provider(creator_id, user_id)
    return badges + _own(creator_id, user_id, username)


def badges_by_username(*, creator_id: int, usernames: list[str]) -> dict[str, list[Badge]]:
    ids = dict(
        get_user_model().objects.filter(username__in=usernames).values_list("username", "pk")
    )
    return {
        name: badges_for(creator_id=creator_id, user_id=ids[name], username=name)
        for name in usernames
        if name in ids
    }
