"""The moderation app's part of an open live feed (``gifts.feed_hooks``): ``pinned`` when a
message joins the live's pinned strip, ``unpinned`` when it leaves it (its time is up, the
creator dismissed it, or it was hidden), ``message_hidden`` when a message already shown is
hidden (the overlay drops its text).

Checked every ``LIVE_PIN_POLL_SECONDS``. Every stream of one live shares one look (cached
for that long across processes): two indexed queries per live and poll, however many
overlays are open. The frames carry no SSE ``id``, so ``Last-Event-ID`` stays the last
gift's id; a stream that (re)connects starts with a ``pinned`` event per message pinned now.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from moderation.models import MessageDecision
from moderation.selectors import pinned_messages

# Hidden messages are looked for this far back on every look: far more than a poll apart, and
# a decision's ``changed_at`` is taken before its transaction commits.
HIDDEN_LOOKBACK = timedelta(seconds=15)


def live_state(*, creator_id: int, live_id: str) -> dict:
    """``{"pins": [pin dicts], "hidden": [gift event ids hidden lately]}`` for one live,
    shared by its open streams for ``LIVE_PIN_POLL_SECONDS``."""
    poll = float(settings.LIVE_PIN_POLL_SECONDS)
    key = f"moderation:live:{creator_id}:{live_id}"
    if poll > 0:
        state = cache.get(key)
        if isinstance(state, dict):
            return state
    now = timezone.now()
    hidden = list(
        MessageDecision.objects.filter(
            creator_id=creator_id,
            live_id=live_id,
            changed_at__gte=now - HIDDEN_LOOKBACK,
            hidden_at__isnull=False,
        ).values_list("gift_event_id", flat=True)
    )
    pins = pinned_messages(creator_id=creator_id, live_id=live_id, now=now)
    state = {"pins": [pin.as_dict() for pin in pins], "hidden": sorted(hidden)}
    if poll > 0:
        cache.set(key, state, poll)
    return state


def _frame(kind: str, data: dict) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class PinWatcher:
    def __init__(self, creator_id: int, live_id: str) -> None:
        self.creator_id, self.live_id = creator_id, live_id
        self.pinned: dict[int, dict] = {}
        self.next_check = 0.0
        self.hidden_seen: set[int] | None = None  # None: the first look (nothing to withdraw)

    def frames(self) -> str:
        now = time.monotonic()
        if now < self.next_check:
            return ""
        self.next_check = now + float(settings.LIVE_PIN_POLL_SECONDS)
        state = live_state(creator_id=self.creator_id, live_id=self.live_id)
        frames = []
        hidden = set(state["hidden"])
        if self.hidden_seen is not None:
            for event_id in sorted(hidden - self.hidden_seen):
                frames.append(_frame("message_hidden", {"id": event_id}))
            self.hidden_seen |= hidden
        else:
            self.hidden_seen = hidden
        pins = {pin["id"]: pin for pin in state["pins"]}
        for gone in sorted(set(self.pinned) - set(pins)):
            frames.append(_frame("unpinned", {"id": gone}))
        for pin_id, pin in pins.items():
            if pin_id not in self.pinned:
                frames.append(_frame("pinned", pin))
        self.pinned = pins
        return "".join(frames)
