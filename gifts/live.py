"""The live gift feed: Server-Sent Events for stream overlays, and the overlay page.

``GET /api/v1/creators/{handle}/live/{live_id}/events/`` streams one ``gift`` event per
GiftEvent of that creator's live stream, within a second of its commit, each carrying its
combo (``gifts.combos``: same sender + gift within ``LIVE_COMBO_SECONDS``): ``combo_id``
stays the same while ``count`` grows, so an overlay updates one card instead of stacking
duplicates. The SSE ``id`` is the GiftEvent id; a reconnect with ``Last-Event-ID`` resumes
after it with the combo counts restored from the rows, so nothing is shown or counted twice.

Delivery: the stream polls the database (one indexed query per ``LIVE_POLL_SECONDS``, 0.4 s
by default) instead of a Redis pub/sub, so it works the same on SQLite in ``make run`` and on
PostgreSQL, across any number of workers, with no extra moving part (measurements and the
trade-off: docs/statements-and-live.md). Under ASGI (uvicorn) the stream is an async
generator, so an open overlay costs a coroutine and not a worker thread; under WSGI (the test
live server, runserver) a plain generator does the same work.

Each process holds at most ``LIVE_SYNC_STREAMS_MAX`` streams under WSGI (by default half its
threads, so overlays can never take every thread the API needs) and ``LIVE_ASYNC_STREAMS_MAX``
under ASGI; past that a new stream is refused with 503 ``live_streams_busy`` and a
Retry-After, and the overlay page tries again after it.

So that one client cannot take those slots (issue 14 item 7), across every process (leases
in Redis, ``gifts.live_leases``): at most ``LIVE_STREAMS_PER_ADDRESS`` open streams per client
address (429 ``live_streams_limit``) and ``LIVE_STREAMS_PER_LIVE`` per (creator, live) (503
``live_streams_busy``); opening one is throttled per address (``THROTTLE_LIVE_OPEN``, 429
``throttled``); and a stream with no gift for ``LIVE_STREAM_IDLE_SECONDS`` ends (EventSource
reconnects at once with ``Last-Event-ID``, so an overlay misses nothing, while a client that
only holds connections open has to come back through the throttle and the caps).

Public on purpose, like an overlay URL: what it shows (sender's username, gift, count,
message) is what the live stream shows anyway. No auth, no cookies read, no CSRF.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, close_old_connections, connection
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.client_address import client_address
from config.api import error_responses
from config.errors import ServiceBusy
from config.throttles import LiveOpenThrottle
from creators.models import Creator
from creators.selectors import creator_find
from gifts import feed_hooks
from gifts.badges import badges_for
from gifts.combos import ComboTracker, combo_window, tracker_at
from gifts.goal_feed import GoalWatch
from gifts.live_leases import LEASES, Lease
from gifts.models import GiftEvent
from gifts.services import CONTEXT_ID_RE, CreatorNotFound

HEARTBEAT_SECONDS = 15
# Under WSGI the server learns that an overlay went away only when a write fails (the second
# write after the peer closed): beat more often there so its thread and slot come back soon.
SYNC_HEARTBEAT_SECONDS = 4
# A gift transaction commits within this long of its id being taken (late commits).
SETTLE_SECONDS = 3.0
BATCH = 200


def big_gift_coins() -> int:
    """A gift whose unit price is at least this many coins gets the big animation."""
    coins: int = settings.LIVE_BIG_GIFT_COINS
    return coins


class EventStreamRenderer(BaseRenderer):
    """Lets clients send ``Accept: text/event-stream``; errors still render as JSON text."""

    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        return json.dumps(data).encode() if data is not None else b""


# --- Reading new events ----------------------------------------------------------------------


def _fetch(creator_id: int, live_id: str, after_id: int) -> list[GiftEvent]:
    close_old_connections()  # a long stream outlives CONN_MAX_AGE and server restarts
    return list(
        GiftEvent.objects.filter(creator_id=creator_id, live_id=live_id, pk__gt=after_id)
        .select_related("sender", "gift")
        .order_by("pk")[:BATCH]
    )


def _fetch_ids(ids: list[int]) -> list[GiftEvent]:
    return list(
        GiftEvent.objects.filter(pk__in=ids).select_related("sender", "gift").order_by("pk")
    )


def _latest_id(creator_id: int, live_id: str) -> int:
    return (
        GiftEvent.objects.filter(creator_id=creator_id, live_id=live_id)
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
        or 0
    )


def _frame(event: GiftEvent, tracker: ComboTracker, *, show_message: bool = True) -> str:
    hit = tracker.add_event(event)
    gift = event.gift
    data = {
        "id": event.pk,
        "combo_id": hit.combo.combo_id,
        "count": hit.count,
        "hits": hit.hits,
        "coins": hit.coins,
        "quantity": event.quantity,
        "sender": event.sender.username,
        "badges": badges_for(
            creator_id=event.creator_id, user_id=event.sender_id, username=event.sender.username
        ),
        "gift": {
            "slug": gift.slug,
            "name": gift.name,
            "coins": gift.coins,
            "image_url": gift.image_url,
        },
        "message": event.message if show_message else "",
        "big": gift.coins >= big_gift_coins(),
        "at": event.created_at.isoformat(),
        "combo_expires_at": hit.combo.expires_at.isoformat(),
    }
    return f"id: {event.pk}\nevent: gift\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class _Stream:
    """The state of one open stream; the sync and async drivers share it.

    Gifts to one live commit in any order across senders, so an event with a lower id can
    become visible after a higher one was sent. Ids above ``settled_id`` are re-checked on
    every poll until they are ``SETTLE_SECONDS`` old; ``seen`` keeps them from being sent twice.
    """

    def __init__(self, creator_id: int, live_id: str, after_id: int | None):
        self.creator_id = creator_id
        self.live_id = live_id
        self.after_id = after_id
        self.settled_id = after_id or 0
        self.seen: dict[int, float] = {}  # id -> when we sent it (monotonic)
        self.tracker: ComboTracker | None = None
        self.last_sent = time.monotonic()
        self.last_gift = time.monotonic()  # or the stream's start: idle streams end
        self.lease: Lease | None = None
        self.watchers: list[feed_hooks.Watcher] = []
        self.goals = GoalWatch(creator_id, live_id)
        self.goal_frames_at_start = ""

    def start(self) -> None:
        if self.after_id is None:
            self.after_id = _latest_id(self.creator_id, self.live_id)
        self.settled_id = self.after_id
        self.tracker = tracker_at(
            creator_id=self.creator_id, live_id=self.live_id, upto_id=self.after_id
        )
        self.watchers = feed_hooks.watchers_for(self.creator_id, self.live_id)
        # Read here (start runs in a thread under ASGI), sent after the hello.
        self.goal_frames_at_start = self.goals.opening()

    def poll(self) -> str:
        if self.tracker is None or self.after_id is None:
            raise RuntimeError("poll() before start()")
        events = _fetch(self.creator_id, self.live_id, self.after_id)
        if self.after_id > self.settled_id:
            unsettled = GiftEvent.objects.filter(
                creator_id=self.creator_id,
                live_id=self.live_id,
                pk__gt=self.settled_id,
                pk__lt=self.after_id,
            ).values_list("pk", flat=True)
            late = [pk for pk in unsettled if pk not in self.seen]
            if late:
                events = _fetch_ids(late) + events
        frames = []
        now = time.monotonic()
        veiled = feed_hooks.veiled_ids([e for e in events if e.pk not in self.seen])
        for event in events:
            if event.pk in self.seen:
                continue
            frames.append(_frame(event, self.tracker, show_message=event.pk not in veiled))
            self.seen[event.pk] = now
            self.after_id = max(self.after_id, event.pk)
        frames.append(self.goals.after_gifts({e.goal_id for e in events if e.goal_id}))
        settled = [pk for pk, at in self.seen.items() if now - at > SETTLE_SECONDS]
        if settled:
            self.settled_id = max(self.settled_id, max(settled))
            self.seen = {pk: at for pk, at in self.seen.items() if pk > self.settled_id}
        # Pins starting or ending, messages hidden after the fact (the moderation app).
        frames.extend(watcher.frames() for watcher in self.watchers)
        return "".join(frames)

    def tick(self, heartbeat_seconds: float) -> str:
        """One poll: the new gifts' frames, else a keep-alive comment when one is due, else ''."""
        chunk = self.poll()
        now = time.monotonic()
        if chunk:
            self.last_gift = now
        if self.lease is not None:
            self.lease.renew_if_due()
        if chunk or now - self.last_sent >= heartbeat_seconds:
            self.last_sent = now
            return chunk or f": keep-alive {timezone.now().isoformat()}\n\n"
        return ""

    def is_open(self, started: float, max_seconds: float, idle_seconds: float) -> bool:
        now = time.monotonic()
        return now - started < max_seconds and now - self.last_gift < idle_seconds

    def opening(self) -> str:
        window_ms = int(combo_window().total_seconds() * 1000)
        hello = json.dumps({"combo_window_ms": window_ms, "big_gift_coins": big_gift_coins()})
        # ``retry``: how soon EventSource reconnects (with Last-Event-ID) after a drop. ``id``:
        # where this stream starts, so a reconnect before the first gift misses none either.
        hello_frame = f"retry: 1000\nid: {self.after_id}\nevent: hello\ndata: {hello}\n\n"
        return hello_frame + self.goal_frames_at_start


class LiveStreamsBusy(ServiceBusy):
    code = "live_streams_busy"
    default_message = "Too many live streams are open on this server; trying again shortly."


class _Slots:
    """How many streams this process holds open, per kind, against its limit."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = {"sync": 0, "async": 0}

    def limit(self, kind: str) -> int:
        name = "LIVE_ASYNC_STREAMS_MAX" if kind == "async" else "LIVE_SYNC_STREAMS_MAX"
        return int(getattr(settings, name))

    def take(self, kind: str, lease: Lease | None = None) -> _Slot:
        with self.lock:
            if self.open[kind] >= self.limit(kind):
                raise LiveStreamsBusy()
            self.open[kind] += 1
        return _Slot(self, kind, lease)

    def give_back(self, kind: str) -> None:
        with self.lock:
            self.open[kind] -= 1


SLOTS = _Slots()


class _Slot:
    """One taken stream slot, given back exactly once however the stream ends."""

    def __init__(self, slots: _Slots, kind: str, lease: Lease | None = None) -> None:
        self.slots, self.kind, self.lease = slots, kind, lease
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots.give_back(self.kind)
            if self.lease is not None:
                self.lease.release()

    def __del__(self) -> None:  # a response dropped before it was ever served or closed
        self.release()


class _HeldStream:
    """The WSGI response body: the stream's frames, and the slot back when the server closes it.

    Django calls ``close()`` when the response is done (finished, or the client went away),
    even if the body was never iterated; a bare generator's ``finally`` would not run then.
    Under ASGI a client that goes away cancels the request instead, without ``close()``: the
    async stream gives its slot back in its own ``finally`` (see ``_run_async``), and one
    never started gives it back when dropped (``_Slot.__del__``).
    """

    def __init__(self, frames: Iterator[str], slot: _Slot) -> None:
        self.frames, self.slot = frames, slot

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self.frames)

    def close(self) -> None:
        try:
            close = getattr(self.frames, "close", None)
            if close is not None:
                close()
        finally:
            self.slot.release()


def _run_async(stream: _Stream, slot: _Slot) -> AsyncIterator[str]:
    poll = float(settings.LIVE_POLL_SECONDS)
    max_seconds = float(settings.LIVE_STREAM_MAX_SECONDS)
    idle_seconds = float(settings.LIVE_STREAM_IDLE_SECONDS)

    async def generate() -> AsyncIterator[str]:
        started = time.monotonic()
        try:
            await sync_to_async(stream.start)()
            yield stream.opening()
            while stream.is_open(started, max_seconds, idle_seconds):
                chunk = await sync_to_async(stream.tick)(HEARTBEAT_SECONDS)
                if chunk:
                    yield chunk
                await asyncio.sleep(poll)
        finally:
            slot.release()
            # The per-request thread's connection (sync_to_async runs in it) ends with the
            # stream. After a client disconnect Django may run this in another thread; then
            # the connection is closed with its thread instead.
            with contextlib.suppress(DatabaseError):
                await sync_to_async(connection.close)()

    return generate()


def _run_sync(stream: _Stream) -> Iterator[str]:
    poll = float(settings.LIVE_POLL_SECONDS)
    max_seconds = float(settings.LIVE_STREAM_MAX_SECONDS)
    idle_seconds = float(settings.LIVE_STREAM_IDLE_SECONDS)
    started = time.monotonic()
    stream.start()
    yield stream.opening()
    while stream.is_open(started, max_seconds, idle_seconds):
        chunk = stream.tick(SYNC_HEARTBEAT_SECONDS)
        if chunk:
            yield chunk
        time.sleep(poll)


def _resume_id(request: Request) -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or ""
    raw = raw.strip()
    return int(raw) if raw.isdigit() and len(raw) <= 18 else None


def _live_creator(handle: str, live_id: str) -> Creator:
    creator = creator_find(handle=handle)
    if creator is None or not creator.is_active:
        raise CreatorNotFound()
    if not CONTEXT_ID_RE.match(live_id or ""):
        raise CreatorNotFound("There is no such live stream.")
    return creator


class LiveEventsView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type[BaseAuthentication]] = []
    throttle_classes = [LiveOpenThrottle]
    renderer_classes = [JSONRenderer, EventStreamRenderer]

    @extend_schema(
        summary="Live gift feed (Server-Sent Events) for stream overlays",
        description=(
            "A `text/event-stream`: `event: gift` per gift on that live stream, `data` a JSON "
            "object `{id, combo_id, count, hits, coins, quantity, sender, badges: [{kind, label, "
            "value}], gift: {slug, name, "
            "coins, image_url}, message, big, at, combo_expires_at}`. A combo (same sender and "
            "gift within LIVE_COMBO_SECONDS, extended by each hit) keeps its `combo_id` while "
            "`count` grows. The SSE `id` is the gift event id (on the opening `hello` event, "
            "the id the stream starts after): reconnect with `Last-Event-ID` "
            "(or `?last_event_id=`) to resume without gaps or double counts. Without it the "
            "stream starts at the newest gift. `event: goal` (no SSE id) carries a goal's "
            "progress as GET creators/{handle}/goals/ gives it: the live's goals after the "
            "hello, then whenever a gift or the deadline changes one. Heartbeat comments every 15 s (4 s under WSGI); the stream ends "
            "after LIVE_STREAM_MAX_SECONDS and EventSource reconnects. Public, no auth. "
            "503 `live_streams_busy` (with Retry-After) when this server holds as many streams "
            "as it allows (LIVE_SYNC_STREAMS_MAX / LIVE_ASYNC_STREAMS_MAX) or this live has "
            "LIVE_STREAMS_PER_LIVE open. 429 `live_streams_limit` (with Retry-After) when your "
            "address already has LIVE_STREAMS_PER_ADDRESS streams open; 429 `throttled` past "
            "THROTTLE_LIVE_OPEN openings per address. A stream with no gift for "
            "LIVE_STREAM_IDLE_SECONDS ends; EventSource reconnects with Last-Event-ID and "
            "misses nothing."
        ),
        parameters=[
            OpenApiParameter(
                "Last-Event-ID",
                OpenApiTypes.STR,
                location=OpenApiParameter.HEADER,
                required=False,
                description="The last gift event id received; the stream resumes after it.",
            ),
            OpenApiParameter(
                "last_event_id",
                OpenApiTypes.INT,
                required=False,
                description="Same as the Last-Event-ID header (for a first connection).",
            ),
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                response=OpenApiTypes.STR, description="The event stream."
            ),
            **error_responses(
                {404: ["creator_not_found"]},
                {429: ["live_streams_limit"]},
                {503: ["live_streams_busy"]},
            ),
        },
    )
    def get(self, request: Request, handle: str, live_id: str) -> StreamingHttpResponse:
        creator = _live_creator(handle, live_id)
        stream = _Stream(creator.pk, live_id, _resume_id(request))
        kind = "async" if isinstance(request._request, ASGIRequest) else "sync"
        lease = LEASES.take(
            address=client_address(request) or "-", creator_id=creator.pk, live_id=live_id
        )
        try:
            slot = SLOTS.take(kind, lease)
        except LiveStreamsBusy:
            lease.release()
            raise
        stream.lease = lease
        body: AsyncIterator[str] | _HeldStream
        body = _run_async(stream, slot) if kind == "async" else _HeldStream(_run_sync(stream), slot)
        response = StreamingHttpResponse(body, content_type="text/event-stream; charset=utf-8")
        response["Cache-Control"] = "no-cache, no-transform"
        response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
        return response


# --- The overlay page --------------------------------------------------------------------------


def overlay_page(request: HttpRequest, handle: str, live_id: str) -> HttpResponse:
    """A transparent page for OBS-style browser sources: gift cards, combos, big-gift bursts."""
    try:
        creator = _live_creator(handle, live_id)
    except CreatorNotFound:
        raise Http404("No such creator or live stream.")
    return render(
        request,
        "gifts/overlay.html",
        {
            "creator": creator,
            "live_id": live_id,
            "events_url": f"/api/v1/creators/{creator.handle}/live/{live_id}/events/",
            "big_gift_coins": big_gift_coins(),
        },
    )
