"""Gift combos on a live stream, derived from GiftEvent rows alone.

A combo is the same sender sending the same gift on the same live stream again within
``LIVE_COMBO_SECONDS`` (default 5) of their previous send: each hit extends the window. The
combo's id is the id of its first GiftEvent and its count is the sum of the quantities of its
events. Because this is a function of the rows (ordered by id; one sender's gifts are
serialised by their wallet row, so id order is time order for a combo), every server worker,
every reconnect (``Last-Event-ID``) and every replay computes the same combos: an event is
counted once, by the one combo it belongs to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from config.keyset import keyset
from gifts.models import GiftEvent

# How far back to look for a combo still open at a resume point (several windows: a late
# commit can stamp an event slightly before one already seen).
RESUME_LOOKBACK_WINDOWS = 3
# A combo chain's events read a query at a time, newest first.
CHAIN_PAGE = 200


def combo_window() -> timedelta:
    return timedelta(seconds=settings.LIVE_COMBO_SECONDS)


@dataclass
class Combo:
    combo_id: int
    sender_id: int
    gift_id: int
    count: int
    hits: int
    coins: int
    last_at: datetime

    @property
    def expires_at(self) -> datetime:
        return self.last_at + combo_window()


@dataclass(frozen=True)
class Hit:
    """What one GiftEvent does to its combo."""

    event_id: int
    combo: Combo
    count: int
    hits: int
    coins: int


class ComboTracker:
    """Feeds GiftEvents of one live stream in id order; tells each one's combo and count."""

    def __init__(self) -> None:
        self.open: dict[tuple[int, int], Combo] = {}

    def add(
        self,
        *,
        event_id: int,
        sender_id: int,
        gift_id: int,
        quantity: int,
        coins: int,
        created_at: datetime,
    ) -> Hit:
        key = (sender_id, gift_id)
        combo = self.open.get(key)
        if combo is None or created_at - combo.last_at > combo_window():
            combo = Combo(event_id, sender_id, gift_id, 0, 0, 0, created_at)
            self.open[key] = combo
        combo.count += quantity
        combo.hits += 1
        combo.coins += coins
        combo.last_at = max(combo.last_at, created_at)
        return Hit(event_id, combo, combo.count, combo.hits, combo.coins)

    def add_event(self, event: GiftEvent) -> Hit:
        return self.add(
            event_id=event.pk,
            sender_id=event.sender_id,
            gift_id=event.gift_id,
            quantity=event.quantity,
            coins=event.coins,
            created_at=event.created_at,
        )


def combos_of(events: Iterable[GiftEvent]) -> list[Hit]:
    """Every event's hit, for events of one live stream (any order: sorted by id here)."""
    tracker = ComboTracker()
    return [tracker.add_event(e) for e in sorted(events, key=lambda e: e.pk)]


def tracker_at(*, creator_id: int, live_id: str, upto_id: int) -> ComboTracker:
    """The combos still open right after event ``upto_id``: what a resuming stream continues.

    Each sender+gift seen shortly before the resume point has its chain followed back to its
    first hit, so the counts are the same as for a stream that never disconnected.
    """
    tracker = ComboTracker()
    base = GiftEvent.objects.filter(creator_id=creator_id, live_id=live_id, pk__lte=upto_id)
    last = base.order_by("-pk").values_list("created_at", flat=True).first()
    if last is None:
        return tracker
    recent_since = last - combo_window() * RESUME_LOOKBACK_WINDOWS
    keys = set(
        base.filter(created_at__gte=recent_since).values_list("sender_id", "gift_id").distinct()
    )
    for sender_id, gift_id in sorted(keys):
        chain = []
        newer_at = None
        # Newest first, CHAIN_PAGE a query (keyset, not a server-side cursor: the live feed
        # runs outside a transaction, and behind PgBouncer's transaction pooling a cursor is
        # gone by the next fetch, #23); the chain usually ends within the first page.
        rows = keyset(
            base.filter(sender_id=sender_id, gift_id=gift_id).values_list(
                "pk", "quantity", "coins", "created_at"
            ),
            order=("-pk",),
            size=CHAIN_PAGE,
            key=lambda row: (row[0],),
        )
        for pk, quantity, coins, created_at in rows:
            if newer_at is not None and newer_at - created_at > combo_window():
                break
            chain.append((pk, quantity, coins, created_at))
            newer_at = created_at
        for pk, quantity, coins, created_at in reversed(chain):
            tracker.add(
                event_id=pk,
                sender_id=sender_id,
                gift_id=gift_id,
                quantity=quantity,
                coins=coins,
                created_at=created_at,
            )
    return tracker
