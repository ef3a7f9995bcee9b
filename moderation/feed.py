"""The moderation app's part of an open live feed (``gifts.feed_hooks``): ``pinned`` when a
message joins the live's pinned strip, ``unpinned`` when it leaves it (its time is up, the
creator dismissed it, or it was hidden), ``message_hidden`` when a message already shown is
hidden (the overlay drops its text).

Checked every ``LIVE_PIN_POLL_SECONDS`` (two indexed queries; the creator's rules are cached).
The frames carry no SSE ``id``, so ``Last-Event-ID`` stays the last gift's id; a stream that
(re)connects starts with a ``pinned`` event per message pinned now.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from moderation.models import MessageDecision
from moderation.selectors import Pin, pinned_messages

# A decision's ``changed_at`` is taken before its transaction commits: look back this far.
SETTLE = timedelta(seconds=5)


def _frame(kind: str, data: dict) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class PinWatcher:
    def __init__(self, creator_id: int, live_id: str) -> None:
        self.creator_id, self.live_id = creator_id, live_id
        self.pinned: dict[int, Pin] = {}
        self.next_check = 0.0
        self.since = timezone.now() - SETTLE
        self.hidden_sent: set[int] = set()

    def frames(self) -> str:
        now = time.monotonic()
        if now < self.next_check:
            return ""
        self.next_check = now + float(settings.LIVE_PIN_POLL_SECONDS)
        frames = []
        checked_at = timezone.now()
        hidden = list(
            MessageDecision.objects.filter(
                creator_id=self.creator_id,
                live_id=self.live_id,
                changed_at__gte=self.since,
                hidden_at__isnull=False,
            ).values_list("gift_event_id", flat=True)
        )
        for event_id in sorted(set(hidden) - self.hidden_sent):
            frames.append(_frame("message_hidden", {"id": event_id}))
            self.hidden_sent.add(event_id)
        self.since = checked_at - SETTLE
        pins = {
            pin.id: pin
            for pin in pinned_messages(
                creator_id=self.creator_id, live_id=self.live_id, now=checked_at
            )
        }
        for gone in sorted(set(self.pinned) - set(pins)):
            frames.append(_frame("unpinned", {"id": gone}))
        for pin in pins.values():
            if pin.id not in self.pinned:
                frames.append(_frame("pinned", pin.as_dict()))
        self.pinned = pins
        return "".join(frames)
