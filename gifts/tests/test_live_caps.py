"""Issue 14 item 7: one client cannot starve the live feed (real Redis leases, WSGI streams)."""

import time

import pytest
from django.conf import settings as django_settings
from django.core.signals import request_finished
from django.db import close_old_connections

from config.throttles import LiveOpenThrottle
from gifts.live import SLOTS
from gifts.live_leases import LEASE_SECONDS, LiveStreamsLimit, StreamLeases
from gifts.tests.factories import make_creator

STREAM = "/api/v1/creators/streamer/live/live1/events/"
OTHER_LIVE = "/api/v1/creators/streamer/live/live2/events/"


@pytest.fixture
def streamer(db, settings):
    settings.LIVE_SYNC_STREAMS_MAX = 50  # the per-process cap is not what these tests test
    return make_creator("streamer")


def _close(response) -> None:
    """What the server does when a response ends, without closing the test's DB connection."""
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def _open(client, path=STREAM, address="198.51.100.1", **extra):
    return client.get(path, REMOTE_ADDR=address, **extra)


def test_open_streams_are_capped_per_client_address(client, streamer, settings):
    settings.LIVE_STREAMS_PER_ADDRESS = 2
    held = [_open(client), _open(client, OTHER_LIVE)]
    assert [r.status_code for r in held] == [200, 200]
    refused = _open(client)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "live_streams_limit"
    assert set(refused.json()["error"]) == {"code", "message", "fields"}
    assert int(refused["Retry-After"]) > 0
    elsewhere = _open(client, address="198.51.100.2")
    assert elsewhere.status_code == 200
    _close(held.pop())
    again = _open(client)  # a closed stream gives its place back at once
    assert again.status_code == 200
    for response in [*held, elsewhere, again]:
        _close(response)


def test_behind_the_balancer_the_forwarded_address_is_capped(client, streamer, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.LIVE_STREAMS_PER_ADDRESS = 1
    first = _open(client, address="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert first.status_code == 200
    forged = _open(client, address="10.0.0.2", HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.5")
    assert forged.status_code == 429
    other = _open(client, address="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.6")
    assert other.status_code == 200  # another viewer behind the same balancer
    _close(first)
    _close(other)


def test_open_streams_are_capped_per_live(client, streamer, settings):
    settings.LIVE_STREAMS_PER_LIVE = 2
    held = [_open(client, address=f"203.0.113.{i}") for i in range(2)]
    assert [r.status_code for r in held] == [200, 200]
    refused = _open(client, address="203.0.113.9")
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "live_streams_busy"
    assert refused["Retry-After"] == "10"
    other_live = _open(client, OTHER_LIVE, address="203.0.113.9")
    assert other_live.status_code == 200
    for response in [*held, other_live]:
        _close(response)
    assert SLOTS.open["sync"] == 0


@pytest.mark.skipif(
    "django_redis" not in django_settings.CACHES["default"]["BACKEND"],
    reason="the shared count needs Redis (make test has it)",
)
def test_the_count_is_shared_by_every_process_and_a_dead_ones_places_expire(streamer, settings):
    from django_redis import get_redis_connection

    settings.LIVE_STREAMS_PER_ADDRESS = 1
    here, another_process = StreamLeases(), StreamLeases()
    lease = here.take(address="203.0.113.7", creator_id=streamer.pk, live_id="live1")
    with pytest.raises(LiveStreamsLimit):
        another_process.take(address="203.0.113.7", creator_id=streamer.pk, live_id="live9")
    # The process holding it dies without giving it back: its lease stops being renewed.
    redis = get_redis_connection("default")
    for key in lease.keys:
        score = redis.zscore(key, lease.member)
        assert time.time() < score <= time.time() + LEASE_SECONDS
        redis.zadd(key, {lease.member: time.time() - 1})  # its lease ran out
    taken = another_process.take(address="203.0.113.7", creator_id=streamer.pk, live_id="live9")
    taken.release()


def test_an_idle_stream_ends_so_its_place_comes_back(client, transactional_db, settings):
    # transactional_db: the stream runs in this thread and checks its connection as a server
    # thread does, which would end a test transaction's connection.
    settings.LIVE_SYNC_STREAMS_MAX = 50
    make_creator("streamer")
    settings.LIVE_STREAM_IDLE_SECONDS = 1
    settings.LIVE_STREAM_MAX_SECONDS = 30
    settings.LIVE_POLL_SECONDS = 0.05
    settings.LIVE_STREAMS_PER_ADDRESS = 1
    response = _open(client)
    assert response.status_code == 200
    started = time.monotonic()
    frames = b"".join(
        chunk if isinstance(chunk, bytes) else chunk.encode()
        for chunk in response.streaming_content
    )
    assert time.monotonic() - started < 10  # ended idle, long before LIVE_STREAM_MAX_SECONDS
    assert b"event: hello" in frames
    _close(response)
    again = _open(client)
    assert again.status_code == 200
    _close(again)


def test_opening_streams_is_throttled_per_address(client, streamer, monkeypatch):
    monkeypatch.setattr(LiveOpenThrottle, "THROTTLE_RATES", {"live_open": "3/min"})
    for _ in range(3):
        response = _open(client)
        assert response.status_code == 200
        _close(response)
    refused = _open(client)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert int(refused["Retry-After"]) > 0
    other = _open(client, address="198.51.100.2")
    assert other.status_code == 200
    _close(other)
