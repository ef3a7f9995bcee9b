"""What apps above gifts add to the live feed and the gift lists, without gifts importing them
(the same pattern as ``gifts.badges.register``).

- A *veil* says which gift events' messages must not be shown (a creator's moderation: muted
  viewers, blocked words, messages held for approval or hidden). The gift still shows and
  counts, without its text.
- A *watcher* is made once per open live stream (``watcher(creator_id, live_id)``) and is
  asked on every poll for extra SSE frames (``frames() -> str``, "" when it has none): the
  moderation app's ``pinned`` / ``unpinned`` events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

Veil = Callable[[Sequence[Any]], set[int]]


class Watcher(Protocol):
    def frames(self) -> str: ...


WatcherFactory = Callable[[int, str], Watcher]

_VEILS: list[Veil] = []
_WATCHERS: list[WatcherFactory] = []


def register_veil(veil: Veil) -> Veil:
    if veil not in _VEILS:
        _VEILS.append(veil)
    return veil


def register_watcher(factory: WatcherFactory) -> WatcherFactory:
    if factory not in _WATCHERS:
        _WATCHERS.append(factory)
    return factory


def veiled_ids(events: Sequence[Any]) -> set[int]:
    """Ids of the gift events (of ``events``) whose message must not be shown."""
    with_text = [event for event in events if event.message]
    hidden: set[int] = set()
    if not with_text:
        return hidden
    for veil in _VEILS:
        hidden |= veil(with_text)
    return hidden


def watchers_for(creator_id: int, live_id: str) -> list[Watcher]:
    return [factory(creator_id, live_id) for factory in _WATCHERS]
