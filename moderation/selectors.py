"""Reads: what becomes of each gift message (shown, held, hidden), the pinned strip of a live,
the creator's approval queue and the support team's report queue.

A message's fate is worked out here, when it is read, from the creator's rules (blocked
words, muted viewers, hold periods) and the decisions taken on it; the gift itself writes
nothing for moderation, so the one-round-trip gift stays one round trip.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.utils import timezone

from gifts.models import GiftEvent
from moderation.models import (
    CreatorModeration,
    HoldPeriod,
    MessageDecision,
    MutedViewer,
)

SHOWN, HELD, HIDDEN, NO_MESSAGE = "shown", "held", "hidden", "none"
POLICY_CACHE_SECONDS = 2


@dataclass(frozen=True)
class Policy:
    """A creator's moderation rules at one moment."""

    creator_id: int
    blocked_words: tuple[str, ...] = ()
    hold_messages: bool = False
    muted_ids: frozenset[int] = frozenset()
    holds: tuple[tuple[datetime, datetime | None], ...] = ()

    def blocks(self, message: str) -> bool:
        lowered = message.casefold()
        return any(
            re.search(rf"(?<!\w){re.escape(word)}(?!\w)", lowered) for word in self.blocked_words
        )

    def held_at(self, at: datetime) -> bool:
        return any(start <= at and (end is None or at < end) for start, end in self.holds)


def _policy_key(creator_id: int) -> str:
    return f"moderation:policy:{creator_id}"


def policy_forget(*, creator_id: int) -> None:
    """Called (after commit) by every service that changes a creator's rules."""
    cache.delete(_policy_key(creator_id))


def policy_for(*, creator_id: int, cached: bool = True) -> Policy:
    """The creator's rules; cached for a couple of seconds (open live feeds read them often)
    and forgotten whenever the creator changes them."""
    if cached:
        hit = cache.get(_policy_key(creator_id))
        if isinstance(hit, Policy):
            return hit
    settings_row = CreatorModeration.objects.filter(creator_id=creator_id).first()
    policy = Policy(
        creator_id=creator_id,
        blocked_words=tuple(
            w.casefold() for w in (settings_row.blocked_words if settings_row else [])
        ),
        hold_messages=bool(settings_row and settings_row.hold_messages),
        muted_ids=frozenset(
            MutedViewer.objects.filter(creator_id=creator_id).values_list("user_id", flat=True)
        ),
        holds=tuple(
            HoldPeriod.objects.filter(creator_id=creator_id)
            .order_by("started_at")
            .values_list("started_at", "ended_at")
        ),
    )
    cache.set(_policy_key(creator_id), policy, POLICY_CACHE_SECONDS)
    return policy


def message_fate(
    event: GiftEvent, *, policy: Policy, decision: MessageDecision | None = None
) -> str:
    """``shown``, ``held`` (waiting for the creator's approval), ``hidden`` or ``none``."""
    if not event.message:
        return NO_MESSAGE
    if decision is not None and decision.hidden_at is not None:
        return HIDDEN
    if event.sender_id in policy.muted_ids or policy.blocks(event.message):
        return HIDDEN
    if policy.held_at(event.created_at) and (decision is None or decision.approved_at is None):
        return HELD
    return SHOWN


def message_fates(events: Sequence[GiftEvent]) -> dict[int, str]:
    """Each event's fate (events of any creators); one query for the decisions."""
    with_text = [e for e in events if e.message]
    decisions = MessageDecision.objects.in_bulk([e.pk for e in with_text]) if with_text else {}
    policies: dict[int, Policy] = {}
    fates = {}
    for event in events:
        if event.creator_id not in policies:
            policies[event.creator_id] = policy_for(creator_id=event.creator_id)
        fates[event.pk] = message_fate(
            event, policy=policies[event.creator_id], decision=decisions.get(event.pk)
        )
    return fates


def veiled_message_ids(events: Sequence[GiftEvent]) -> set[int]:
    """The gift feed's veil (``gifts.feed_hooks``): messages that are not (yet) to be shown."""
    return {pk for pk, fate in message_fates(events).items() if fate in (HELD, HIDDEN)}


# --- Pinned messages --------------------------------------------------------------------------


@dataclass(frozen=True)
class PinTier:
    rank: int  # 1 = the smallest tier
    min_coins: int
    seconds: int
    colour: str


def pin_tiers() -> list[PinTier]:
    return [
        PinTier(rank=i, min_coins=coins, seconds=seconds, colour=colour)
        for i, (coins, seconds, colour) in enumerate(sorted(settings.LIVE_PIN_TIERS), start=1)
    ]


def pin_tier(coins: int) -> PinTier | None:
    """The highest tier whose threshold ``coins`` reaches, or None (not pinned)."""
    reached = [tier for tier in pin_tiers() if coins >= tier.min_coins]
    return reached[-1] if reached else None


@dataclass(frozen=True)
class Pin:
    id: int
    username: str
    message: str
    coins: int
    until: datetime
    tier: int
    colour: str

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "username": self.username,
            "message": self.message,
            "coins": self.coins,
            "until": self.until.isoformat(),
            "tier": self.tier,
            "colour": self.colour,
        }


def pinned_messages(*, creator_id: int, live_id: str, now: datetime | None = None) -> list[Pin]:
    """The live's pinned strip: gifts with a shown message, pinned from when they were sent
    (or approved, when held) for their tier's time, until then unless dismissed. Biggest first.
    """
    now = now or timezone.now()
    tiers = pin_tiers()
    if not tiers:
        return []
    window = timedelta(seconds=max(tier.seconds for tier in tiers))
    policy = policy_for(creator_id=creator_id)
    recent = Q(created_at__gte=now - window)
    if policy.holds:
        # A held message's pin starts when it is approved.
        recent |= Q(decision__approved_at__gte=now - window)
    candidates = (
        GiftEvent.objects.filter(
            recent,
            creator_id=creator_id,
            live_id=live_id,
            coins__gte=tiers[0].min_coins,
            created_at__lte=now,
        )
        .exclude(message="")
        .select_related("sender", "decision")
        .order_by("-created_at", "-pk")
    )
    pins = []
    for event in candidates:
        decision = getattr(event, "decision", None)
        if decision is not None and decision.dismissed_at is not None:
            continue
        if message_fate(event, policy=policy, decision=decision) != SHOWN:
            continue
        tier = pin_tier(event.coins)
        if tier is None:
            continue
        start = event.created_at
        if decision is not None and decision.approved_at and policy.held_at(event.created_at):
            start = decision.approved_at
        until = start + timedelta(seconds=tier.seconds)
        if until <= now:
            continue
        pins.append(
            Pin(
                id=event.pk,
                username=event.sender.username,
                message=event.message,
                coins=event.coins,
                until=until,
                tier=tier.rank,
                colour=tier.colour,
            )
        )
    pins.sort(key=lambda pin: (-pin.coins, pin.id))
    return pins


# --- Queues -----------------------------------------------------------------------------------


def messages_held(*, creator_id: int, live_id: str | None = None, limit: int = 100) -> list:
    """The creator's approval queue: messages sent while holding was on, not yet decided;
    oldest first."""
    policy = policy_for(creator_id=creator_id, cached=False)
    if not policy.holds:
        return []
    when = Q()
    for start, end in policy.holds:
        when |= Q(created_at__gte=start) & (Q() if end is None else Q(created_at__lt=end))
    events = (
        GiftEvent.objects.filter(when, creator_id=creator_id)
        .exclude(message="")
        .filter(Q(decision__isnull=True) | Q(decision__approved_at__isnull=True))
        .filter(Q(decision__isnull=True) | Q(decision__hidden_at__isnull=True))
        .select_related("sender", "decision")
        .order_by("created_at", "pk")
    )
    if live_id:
        events = events.filter(live_id=live_id)
    return [
        e
        for e in events[: limit * 2]
        if message_fate(e, policy=policy, decision=getattr(e, "decision", None)) == HELD
    ][:limit]


def messages_recent(*, creator_id: int, live_id: str, limit: int = 30) -> list[dict]:
    """A live's newest gift messages with their fate (the control room's message list)."""
    events = list(
        GiftEvent.objects.filter(creator_id=creator_id, live_id=live_id)
        .exclude(message="")
        .select_related("sender", "decision")
        .order_by("-created_at", "-pk")[:limit]
    )
    policy = policy_for(creator_id=creator_id, cached=False)
    return [
        {
            "event": e,
            "fate": message_fate(e, policy=policy, decision=getattr(e, "decision", None)),
        }
        for e in events
    ]


def muted_viewers(*, creator_id: int) -> QuerySet[MutedViewer]:
    return MutedViewer.objects.filter(creator_id=creator_id).select_related("user")
