"""The creator's control room and the overlay in real Chromium: a pinned message and the
live's goal show on the overlay (the pin in its tier's colour) and in the room; the creator
dismisses the pin, holds and approves a message and mutes a viewer from the room, by
keyboard, on a 360 px phone."""

import os
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import UserFactory
from creators.services import creator_live_start
from gifts.goals import goal_create
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator
from tests.helpers import launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIERS = [(100, 30, "#1e88e5"), (1000, 120, "#f9a825")]


@pytest.fixture
def browser():
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        yield browser
        browser.close()
    connections.close_all()


def _signed_in(browser, live_server, user, **context):
    client = Client()
    client.force_login(user)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    ctx = browser.new_context(**context)
    ctx.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    return ctx.new_page()


def _gift(sender, message, live_id, goal=None, gift_slug="crown"):
    return gift_send(
        sender=sender,
        creator_handle="onair",
        gift_slug=gift_slug,
        live_id=live_id,
        message=message,
        client_key=str(uuid.uuid4()),
        goal=goal,
    )


def test_control_room_and_overlay_pinned_strip(live_server, browser, settings):
    from playwright.sync_api import expect

    settings.LIVE_PIN_TIERS = TIERS
    settings.LIVE_PIN_POLL_SECONDS = 0.2
    GiftFactory(slug="crown", name="Crown", coins=1000)
    # Another gift for the held message: the same sender and gift within a few seconds join
    # the earlier card's combo (its id), which on a fast machine hid the new card's own id.
    GiftFactory(slug="tiara", name="Tiara", coins=1000)
    creator = make_creator("onair")
    live_id = creator_live_start(creator=creator).live_id
    fan = fund(UserFactory(username="fan"), 100_000)
    troll = fund(UserFactory(username="troll"), 100_000)
    goal = goal_create(
        creator=creator,
        actor=creator.user,
        title="New microphone",
        target_coins=5000,
        deadline=timezone.now() + timedelta(days=1),
        live_id=live_id,
    )

    overlay = browser.new_context().new_page()
    overlay.goto(f"{live_server.url}/overlay/onair/{live_id}/")
    expect(overlay.locator("#overlay")).to_have_attribute("data-state", "live")

    first = _gift(fan, "Hello from the front row", live_id, goal=goal.pk)
    pin = overlay.locator(f'.pin[data-pin="{first.pk}"]')
    expect(pin).to_contain_text("Hello from the front row", timeout=5000)
    expect(pin).to_contain_text("fan")
    assert pin.evaluate("el => getComputedStyle(el).borderLeftColor") == "rgb(249, 168, 37)"
    # The gift went toward the live's goal: the overlay's goal bar moved.
    overlay_goal = overlay.locator(f'#overlay-goals .goal[data-goal-id="{goal.pk}"]')
    expect(overlay_goal).to_contain_text("1,000", timeout=5000)

    room = _signed_in(browser, live_server, creator.user, viewport={"width": 360, "height": 800})
    room.goto(f"{live_server.url}/creator/live/")
    pins = room.get_by_test_id("room-pins")
    expect(pins).to_contain_text("Hello from the front row")
    room_goal = room.get_by_test_id("room-goals")
    expect(room_goal).to_contain_text("New microphone")
    expect(room_goal).to_contain_text("1,000 / 5,000 coins")
    assert room.evaluate("document.documentElement.scrollWidth") <= 360

    # Dismiss by keyboard: the pin leaves the room and, through the feed, the overlay.
    room.get_by_role("button", name="Dismiss the message from fan").focus()
    room.keyboard.press("Enter")
    expect(room.get_by_text("Message taken off the pinned strip.")).to_be_visible()
    expect(room.get_by_test_id("room-pins")).to_have_count(0)
    expect(pin).to_have_count(0, timeout=5000)

    # Hold every message: a new one waits in the queue, the overlay shows the gift without
    # its text, and only an approval pins it.
    room.locator("#hold-messages").check()
    room.get_by_role("button", name="Save rules").click()
    expect(room.get_by_text("Moderation settings saved.")).to_be_visible()
    held = _gift(fan, "Please approve me", live_id, gift_slug="tiara")
    card = overlay.locator(f'.gift-card[data-combo-id="{held.pk}"]')
    expect(card).to_be_visible(timeout=5000)
    expect(card).not_to_contain_text("Please approve me")
    room.reload()
    expect(room.get_by_test_id("room-held")).to_contain_text("Please approve me")
    room.get_by_role("button", name="Approve the message from fan").focus()
    room.keyboard.press("Enter")
    expect(room.get_by_text("Message approved.")).to_be_visible()
    expect(overlay.locator(f'.pin[data-pin="{held.pk}"]')).to_contain_text(
        "Please approve me", timeout=5000
    )

    # Mute a viewer from the message list: their messages are hidden, their gifts still come.
    room.locator("#hold-messages").uncheck()
    room.get_by_role("button", name="Save rules").click()
    rude = _gift(troll, "rude words", live_id)
    expect(overlay.locator(f'.pin[data-pin="{rude.pk}"]')).to_be_visible(timeout=5000)
    room.reload()
    room.get_by_role("button", name="Mute troll").click()
    expect(room.get_by_test_id("muted-list")).to_contain_text("troll")
    expect(room.get_by_test_id("room-recent")).not_to_contain_text("rude words")
    expect(overlay.locator(f'.pin[data-pin="{rude.pk}"]')).to_have_count(0, timeout=5000)
    assert room.evaluate("document.documentElement.scrollWidth") <= 360
    overlay.close()
