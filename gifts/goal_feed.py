"""``goal`` events on the live feed (issue #19): a stream's goals and their progress.

The live feed (``gifts.live``) asks a ``GoalWatch`` for frames: on opening, the live's goals
(its own and the creator's period goals, open or just closed); after each poll that brought
gifts toward a goal, that goal's progress; and every ``LIVE_GOAL_REFRESH_SECONDS`` (5) while
it shows any open goal, a refresh, so a goal closing at its deadline (met or missed) reaches
the overlay without a gift. A frame is sent only when the goal changed. Goal frames carry no
SSE ``id``: ``Last-Event-ID`` stays the last gift's.

``data`` is a goal as ``GET creators/{handle}/goals/`` gives it:
``{id, title, description, target_coins, raised_coins, deadline, live_id, all_or_nothing,
status, percent}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from gifts.goals import GoalProgress, goals_progress
from gifts.models import GoalStatus


def goal_frame(goal: GoalProgress) -> str:
    return f"event: goal\ndata: {json.dumps(goal.as_dict(), separators=(',', ':'))}\n\n"


class GoalWatch:
    def __init__(self, creator_id: int, live_id: str):
        self.creator_id = creator_id
        self.live_id = live_id
        self.sent: dict[int, dict[str, Any]] = {}
        self.refreshed = time.monotonic()

    def _frames(self, goals: Iterable[GoalProgress]) -> str:
        frames = []
        for goal in goals:
            data = goal.as_dict()
            if self.sent.get(goal.id) != data:
                self.sent[goal.id] = data
                frames.append(goal_frame(goal))
        return "".join(frames)

    def opening(self) -> str:
        """The goals an overlay shows when it connects: this live's and the period's, open
        ones first (at most 5)."""
        goals = goals_progress(creator_id=self.creator_id, live_id=self.live_id, limit=20)
        goals.sort(key=lambda g: (g.status != GoalStatus.OPEN, g.deadline))
        return self._frames(goals[:5])

    def after_gifts(self, goal_ids: set[int]) -> str:
        if not goal_ids:
            return self.tick()
        self.refreshed = time.monotonic()
        ids = goal_ids | {i for i, d in self.sent.items() if d["status"] == GoalStatus.OPEN}
        return self._frames(goals_progress(creator_id=self.creator_id, goal_ids=sorted(ids)))

    def tick(self) -> str:
        """A refresh of the open goals shown, when due (deadlines close them without a gift)."""
        every = float(settings.LIVE_GOAL_REFRESH_SECONDS)
        open_ids = sorted(i for i, d in self.sent.items() if d["status"] == GoalStatus.OPEN)
        if not open_ids or time.monotonic() - self.refreshed < every:
            return ""
        self.refreshed = time.monotonic()
        return self._frames(goals_progress(creator_id=self.creator_id, goal_ids=open_ids))
