"""The live feed's moderation events (``pinned``, ``unpinned``, ``message_hidden``) and its
gift frames without the text of hidden or held messages, read from the feed's own stream
state (the HTTP transport is covered by gifts/tests/test_live.py)."""

import json

import pytest

from accounts.tests.factories import UserFactory
from gifts.live import _Stream
from gifts.tests.factories import fund
from moderation.services import (
    message_approve,
    message_dismiss,
    moderation_update,
    reports_resolve,
    viewer_mute,
)

# The feed closes a connection left inside a transaction (a long stream outlives
# CONN_MAX_AGE): these tests commit like the live server does.
pytestmark = pytest.mark.django_db(transaction=True)


def _events(chunk: str) -> list[tuple[str, dict]]:
    out = []
    for block in chunk.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


@pytest.fixture
def stream(star, settings):
    settings.LIVE_PIN_POLL_SECONDS = 0
    feed = _Stream(star.pk, "live1", None)
    feed.start()
    return feed


def test_feed_pins_and_unpins_a_message(star, fan, send, stream):
    event = send(fan, star, message="pin me")
    events = _events(stream.poll())
    assert [kind for kind, _ in events] == ["gift", "pinned"]
    assert events[0][1]["message"] == "pin me"
    pin = events[1][1]
    assert (pin["id"], pin["username"], pin["message"], pin["coins"]) == (
        event.pk,
        "fan",
        "pin me",
        1000,
    )
    assert pin["until"]
    assert pin["colour"].startswith("#")
    assert _events(stream.poll()) == []  # still pinned: nothing new

    message_dismiss(creator=star, actor=star.user, event_id=event.pk)
    assert _events(stream.poll()) == [("unpinned", {"id": event.pk})]


def test_a_new_stream_starts_with_the_current_pins(star, fan, send, settings):
    settings.LIVE_PIN_POLL_SECONDS = 0
    event = send(fan, star, message="already pinned")
    fresh = _Stream(star.pk, "live1", None)
    fresh.start()
    kinds = _events(fresh.poll())
    assert [(kind, data["id"]) for kind, data in kinds] == [("pinned", event.pk)]


def test_hidden_and_held_messages_leave_the_gift_without_text(star, fan, send, stream):
    viewer_mute(creator=star, actor=star.user, username="fan")
    muted = send(fan, star, message="muted words")
    gift, *rest = _events(stream.poll())
    assert gift[0] == "gift"
    assert gift[1]["id"] == muted.pk
    assert gift[1]["message"] == ""
    assert gift[1]["coins"] == 1000
    assert rest == []  # not pinned either

    other = fund(UserFactory(username="other"), 100_000)
    moderation_update(creator=star, actor=star.user, hold_messages=True)
    held = send(other, star, message="wait for it")
    events = _events(stream.poll())
    assert [(k, d["message"]) for k, d in events] == [("gift", "")]
    message_approve(creator=star, actor=star.user, event_id=held.pk)
    events = _events(stream.poll())
    assert [(k, d["id"], d["message"]) for k, d in events] == [("pinned", held.pk, "wait for it")]


def test_a_message_hidden_after_the_fact_is_withdrawn(star, fan, send, stream):
    event = send(fan, star, message="reported later")
    assert [k for k, _ in _events(stream.poll())] == ["gift", "pinned"]
    reports_resolve(actor=None, event_id=event.pk, hide=True)
    assert _events(stream.poll()) == [
        ("message_hidden", {"id": event.pk}),
        ("unpinned", {"id": event.pk}),
    ]
    assert _events(stream.poll()) == []


def test_streams_of_one_live_share_one_look(
    star, fan, send, settings, django_assert_max_num_queries
):
    settings.LIVE_PIN_POLL_SECONDS = 5
    event = send(fan, star, message="shared")
    streams = [_Stream(star.pk, "live1", None) for _ in range(5)]
    for feed in streams:
        feed.start()
    first = _events(streams[0].poll())
    assert [(kind, data["id"]) for kind, data in first] == [("pinned", event.pk)]
    # The other four read the cached look: their polls add no pin or decision query.
    with django_assert_max_num_queries(4 * 2):  # each poll: new gifts + nothing else
        for feed in streams[1:]:
            assert [k for k, _ in _events(feed.poll())] == ["pinned"]
