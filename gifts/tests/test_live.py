"""The live gift feed over real HTTP under ASGI (uvicorn), and the overlay in real Chromium."""

import contextlib
import http.client
import json
import os
import queue
import socket
import threading
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from accounts.tests.factories import UserFactory
from gifts.combos import combos_of
from gifts.models import GiftEvent
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator
from tests.helpers import launch_chromium


@pytest.fixture
def asgi_server(transactional_db, settings):
    """uvicorn serving config.asgi in a thread of this process, on the test database."""
    import uvicorn

    from config.asgi import application

    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            application,
            host="127.0.0.1",
            port=port,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}", port=port)
    server.should_exit = True
    thread.join(10)


class SSEClient:
    """Reads an event stream in a thread; ``next()`` returns parsed events as they arrive."""

    def __init__(self, port: int, path: str, last_event_id: str | None = None):
        self.events: queue.Queue = queue.Queue()
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", path, headers=headers)
        self.response = self.conn.getresponse()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        fields: dict = {}
        try:
            while True:
                line = self.response.readline()
                if not line:
                    return
                line = line.decode().rstrip("\n")
                if not line:
                    if fields:
                        self.events.put(fields)
                    fields = {}
                elif line.startswith(":"):
                    continue
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value.lstrip(" ")
        except Exception:  # the test closed the connection: the stream just ends
            return

    def next(self, timeout: float = 2.0) -> dict:
        return self.events.get(timeout=timeout)

    def gifts(self, n: int, timeout: float = 3.0) -> list[dict]:
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            event = self.next(max(0.01, deadline - time.monotonic()))
            if event.get("event") == "gift":
                out.append({"sse_id": event["id"], **json.loads(event["data"])})
        return out

    def close(self):
        with contextlib.suppress(OSError):
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def _send(sender, creator, gift, live_id="live1", quantity=1):
    return gift_send(
        sender=sender,
        creator_handle=creator.handle,
        gift_slug=gift.slug,
        quantity=quantity,
        live_id=live_id,
        client_key=str(uuid.uuid4()),
    )


@pytest.fixture
def stage(transactional_db):
    rose = GiftFactory(slug="rose", name="Rose", coins=1)
    lion = GiftFactory(slug="lion", name="Lion", coins=1000)
    creator = make_creator("streamer")
    alice = fund(UserFactory(username="alice"), 100_000)
    bob = fund(UserFactory(username="bob"), 100_000)
    return SimpleNamespace(rose=rose, lion=lion, creator=creator, alice=alice, bob=bob)


def test_a_gift_reaches_the_stream_within_a_second(asgi_server, stage):
    client = SSEClient(asgi_server.port, "/api/v1/creators/streamer/live/live1/events/")
    try:
        assert client.response.status == 200
        assert client.response.getheader("Content-Type").startswith("text/event-stream")
        assert client.next()["event"] == "hello"
        _send(stage.bob, stage.creator, stage.rose, live_id="other-live")  # not this stream
        sent_at = time.monotonic()
        event = _send(stage.alice, stage.creator, stage.lion)

        (gift,) = client.gifts(1, timeout=1.0)

        assert time.monotonic() - sent_at < 1.0
        assert gift["id"] == event.pk
        assert gift["sse_id"] == str(event.pk)
        assert (gift["sender"], gift["gift"]["slug"], gift["count"]) == ("alice", "lion", 1)
        assert gift["combo_id"] == event.pk
        assert gift["big"] is True
    finally:
        client.close()
    call_command("verify_ledger")


def test_combos_count_rapid_repeats_once_and_resume_after_a_reconnect(asgi_server, stage):
    path = "/api/v1/creators/streamer/live/live1/events/"
    first = SSEClient(asgi_server.port, path)
    second = SSEClient(asgi_server.port, path)  # another "worker": must agree
    try:
        assert first.next()["event"] == "hello"
        assert second.next()["event"] == "hello"
        a = [_send(stage.alice, stage.creator, stage.rose) for _ in range(3)]
        b = _send(stage.bob, stage.creator, stage.rose, quantity=2)
        a.append(_send(stage.alice, stage.creator, stage.rose, quantity=4))
        lion = _send(stage.alice, stage.creator, stage.lion)

        seen = first.gifts(6)
        assert second.gifts(6) == seen
    finally:
        first.close()
        second.close()
    by_id = {g["id"]: g for g in seen}
    assert [by_id[e.pk]["combo_id"] for e in a] == [a[0].pk] * 4
    assert [by_id[e.pk]["count"] for e in a] == [1, 2, 3, 7]
    assert (by_id[b.pk]["combo_id"], by_id[b.pk]["count"]) == (b.pk, 2)
    assert (by_id[lion.pk]["combo_id"], by_id[lion.pk]["count"]) == (lion.pk, 1)

    # Disconnected; Alice keeps tapping. The reconnect resumes after the last id it saw.
    more = [_send(stage.alice, stage.creator, stage.rose) for _ in range(2)]
    again = SSEClient(asgi_server.port, path, last_event_id=seen[-1]["sse_id"])
    try:
        resumed = again.gifts(2)
        with pytest.raises(queue.Empty):
            again.gifts(1, timeout=1.0)  # nothing shown twice
    finally:
        again.close()
    assert [g["id"] for g in resumed] == [e.pk for e in more]
    assert [(g["combo_id"], g["count"]) for g in resumed] == [(a[0].pk, 8), (a[0].pk, 9)]
    # The same combos, recomputed from the rows alone.
    hits = {h.event_id: h for h in combos_of(GiftEvent.objects.filter(live_id="live1"))}
    assert all(hits[g["id"]].count == g["count"] for g in seen + resumed)
    call_command("verify_ledger")


def test_a_pause_longer_than_the_window_starts_a_new_combo():
    start = timezone.now()

    def event(pk, seconds, sender=1, gift=1, quantity=1):
        return SimpleNamespace(
            pk=pk,
            sender_id=sender,
            gift_id=gift,
            quantity=quantity,
            coins=quantity,
            created_at=start + timedelta(seconds=seconds),
        )

    hits = combos_of(
        [event(1, 0), event(2, 4), event(3, 8.5), event(4, 14), event(5, 14.5, sender=2)]
    )
    # 1, 2 and 3 chain (each within 5 s of the previous hit); 4 comes 5.5 s after 3.
    assert [(h.combo.combo_id, h.count) for h in hits] == [(1, 1), (1, 2), (1, 3), (4, 1), (5, 1)]


def test_unknown_creator_or_bad_live_id_is_a_json_404(client, db):
    make_creator("quiet")
    assert client.get("/api/v1/creators/nobody/live/x/events/").status_code == 404
    response = client.get("/api/v1/creators/quiet/live/bad%20id/events/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "creator_not_found"
    assert client.get("/overlay/nobody/live1/").status_code == 404


@pytest.mark.browser
@pytest.mark.slow
def test_overlay_shows_combos_and_animates_a_big_gift(asgi_server, stage):
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_context().new_page()
            calm = browser.new_context(reduced_motion="reduce").new_page()
            for each in (page, calm):
                each.goto(f"{asgi_server.url}/overlay/streamer/live1/")
                expect(each.locator("#overlay")).to_have_attribute("data-state", "live")
            assert page.evaluate("getComputedStyle(document.body).backgroundColor") in (
                "rgba(0, 0, 0, 0)",
                "transparent",
            )

            roses = [_send(stage.bob, stage.creator, stage.rose) for _ in range(3)]
            card = page.locator(f'.gift-card[data-combo-id="{roses[0].pk}"]')
            expect(card).to_have_attribute("data-count", "3", timeout=3000)
            expect(card).to_contain_text("×3")
            assert page.locator(".gift-card").count() == 1  # one card per combo
            assert "gift-card--big" not in (card.get_attribute("class") or "")

            big = _send(stage.alice, stage.creator, stage.lion)
            lion = page.locator(f'.gift-card--big[data-combo-id="{big.pk}"]')
            expect(lion).to_be_visible(timeout=3000)
            expect(lion).to_contain_text("alice")
            assert lion.evaluate("el => getComputedStyle(el).animationName") == "big-gift"
            still = calm.locator(f'.gift-card--big[data-combo-id="{big.pk}"]')
            expect(still).to_be_visible(timeout=3000)
            assert still.evaluate("el => getComputedStyle(el).animationName") == "none"
        finally:
            browser.close()
    connections.close_all()
    call_command("verify_ledger")


# --- How many streams a process holds: the API must never starve behind open overlays -----

STREAM = "/api/v1/creators/streamer/live/live1/events/"


def _wait_until(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _close(response) -> None:
    """What the server does when a response ends (Django's test client does the same dance:
    its request_finished must not close the test's database connection)."""
    from django.core.signals import request_finished
    from django.db import close_old_connections

    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def test_sync_streams_past_the_limit_are_refused_and_slots_come_back(client, db, settings):
    from gifts.live import SLOTS

    settings.LIVE_SYNC_STREAMS_MAX = 1
    make_creator("streamer")
    before = SLOTS.open["sync"]
    first = client.get(STREAM)
    assert first.status_code == 200

    refused = client.get(STREAM)

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "live_streams_busy"
    assert refused["Retry-After"] == "10"
    _close(first)  # the server closes a finished (or abandoned) response
    assert SLOTS.open["sync"] == before
    again = client.get(STREAM)
    assert again.status_code == 200
    _close(again)
    assert SLOTS.open["sync"] == before


def test_async_stream_slot_comes_back_when_the_client_goes_away(asgi_server, stage, settings):
    from gifts.live import SLOTS

    settings.LIVE_ASYNC_STREAMS_MAX = 1
    first = SSEClient(asgi_server.port, STREAM)
    try:
        assert first.next()["event"] == "hello"
        status, body = _get(asgi_server.port, STREAM)
        assert status == 503
        assert json.loads(body)["error"]["code"] == "live_streams_busy"
    finally:
        first.close()
    # uvicorn sees the disconnect and cancels the stream: its slot must come back.
    assert _wait_until(lambda: SLOTS.open["async"] == 0)
    third = SSEClient(asgi_server.port, STREAM)
    try:
        assert third.response.status == 200
        assert third.next()["event"] == "hello"
    finally:
        third.close()


@pytest.mark.slow
@pytest.mark.parametrize("web_server", ["gunicorn", "granian"])
def test_under_the_production_server_open_overlays_leave_threads_for_the_api(
    transactional_db, settings, web_server
):
    """make serve's server (scripts/serve.py: gunicorn or granian), one worker with two
    threads: one overlay may hold a thread, a second is refused, and the API still answers
    beside it."""
    import subprocess
    import sys
    from pathlib import Path

    make_creator("streamer")
    db = settings.DATABASES["default"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        ),
        "DEBUG": "0",
        "SECRET_KEY": "live-test-" + uuid.uuid4().hex * 2,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "WEB_SERVER": web_server,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_WORKERS": "1",
        "WEB_THREADS": "2",
        "LOG_LEVEL": "WARNING",
        # The wait below polls for a free slot many times a second: not what the opening
        # throttle is for (gifts/tests/test_live_caps.py tests it).
        "THROTTLE_LIVE_OPEN": "100000/min",
    }
    env.pop("LIVE_SYNC_STREAMS_MAX", None)
    server = subprocess.Popen(
        [sys.executable, "scripts/serve.py"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def get(path: str) -> tuple[int, bytes]:
        return _get(port, path)

    try:
        assert _wait_until(lambda: get("/healthz")[0] == 200, 30), f"{web_server} did not start"
        overlay = SSEClient(port, STREAM)
        try:
            assert overlay.next(timeout=5)["event"] == "hello"
            status, body = get(STREAM)
            assert status == 503
            assert json.loads(body)["error"]["code"] == "live_streams_busy"
            started = time.monotonic()
            assert get("/api/v1/gifts/")[0] == 200
            assert get("/healthz")[0] == 200
            assert time.monotonic() - started < 5
        finally:
            overlay.close()
        # Once the overlay is gone (the server notices when a heartbeat write fails), a new one
        # is let in.
        assert _wait_until(lambda: _opens(port), 20)
    finally:
        os.killpg(server.pid, 9)
        server.wait()
        connections.close_all()


def _get(port: int, path: str) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def _opens(port: int) -> bool:
    client = SSEClient(port, STREAM)
    try:
        return client.response.status == 200
    finally:
        client.close()


@pytest.mark.browser
@pytest.mark.slow
def test_a_refused_overlay_tries_again_and_shows_the_gifts_it_missed(asgi_server, stage, settings):
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import expect, sync_playwright

    settings.LIVE_ASYNC_STREAMS_MAX = 1
    first = _send(stage.bob, stage.creator, stage.rose)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_context().new_page()
            refusals: list[int] = []
            page.on(
                "response",
                lambda r: (
                    refusals.append(r.status) if "/events/" in r.url and r.status == 503 else None
                ),
            )
            page.goto(f"{asgi_server.url}/overlay/streamer/live1/")
            expect(page.locator("#overlay")).to_have_attribute("data-state", "live")
            expect(page.locator(".gift-card")).to_have_count(0)
            # The server now holds all the streams it allows: the overlay's reconnect is refused.
            settings.LIVE_ASYNC_STREAMS_MAX = 0
            page.evaluate("window.stop()")  # drops the open stream, as a network blip would
            expect(page.locator("#overlay")).to_have_attribute(
                "data-state", "reconnecting", timeout=5000
            )
            missed = _send(stage.alice, stage.creator, stage.lion)
            # (Playwright delivers the response events while it waits.)
            assert _wait_until(lambda: bool(refusals) or page.wait_for_timeout(200), 20)
            settings.LIVE_ASYNC_STREAMS_MAX = 1

            card = page.locator(f'.gift-card--big[data-combo-id="{missed.pk}"]')
            expect(card).to_be_visible(timeout=25_000)
            expect(page.locator("#overlay")).to_have_attribute("data-state", "live")
            assert page.locator(f'.gift-card[data-combo-id="{first.pk}"]').count() == 0
        finally:
            browser.close()
    connections.close_all()
