"""A viewer sends a gift from a creator's page in real Chromium and sees it land."""

import os

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

from accounts.tests.factories import UserFactory
from gifts.models import GiftEvent
from gifts.tests.factories import GiftFactory, fund, make_creator
from tests.helpers import launch_chromium
from wallets.services import wallet_get

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def browser():
    # Playwright's sync API runs an event loop in this thread; our ORM calls here are plain
    # synchronous test code, so tell Django that is fine.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        yield browser
        browser.close()
    # Under Playwright's sync API the test body runs in its own context (greenlet), so Django
    # opened a separate connection for it: close it, or it outlives the test database.
    connections.close_all()


def test_viewer_sends_a_gift_from_the_creator_page(live_server, browser):
    GiftFactory(slug="rose", name="Rose", coins=1, sort_order=1)
    GiftFactory(slug="heart", name="Heart", coins=5, sort_order=2)
    make_creator("star")
    rival = fund(UserFactory(username="rival"), 100)
    from gifts.services import gift_send

    gift_send(sender=rival, creator_handle="star", gift_slug="rose", quantity=3, client_key="r")
    viewer = fund(UserFactory(username="viewer1"), 100)
    client = Client()
    client.force_login(viewer)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value

    context = browser.new_context()
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": live_server.url}]
    )
    page = context.new_page()
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/creators/star/")
    assert page.locator("[data-balance]").inner_text() == "100"
    assert page.locator("#leaderboard li").count() == 1

    page.locator("label[for=gift-heart]").click()
    page.fill("#gift-quantity", "2")
    page.fill("#gift-message", "hello <b>there</b>")
    assert page.locator("#gift-send").inner_text() == "Send 2 × Heart · 10 coins"
    page.click("#gift-send")
    expect(page.locator("#gift-status")).to_contain_text("Sent 2 × Heart to @star")

    assert page.locator("[data-balance]").inner_text() == "90"
    assert "90" in page.locator(".coin-pill").inner_text()
    rows = page.locator("#leaderboard li")
    assert rows.count() == 2
    assert rows.nth(0).get_attribute("data-username") == "viewer1"
    assert rows.nth(0).get_attribute("data-coins") == "10"
    event = GiftEvent.objects.get(sender=viewer)
    assert (event.quantity, event.coins, event.message) == (2, 10, "hello there")
    assert wallet_get(user=viewer).balance == 90

    # Too expensive: a clear message, nothing spent.
    page.fill("#gift-quantity", "50")
    page.click("#gift-send")
    expect(page.locator("#gift-status")).to_contain_text("Not enough coins")
    assert wallet_get(user=viewer).balance == 90

    # A reload shows the server's view: the balance and the leaderboard agree.
    page.goto(f"{live_server.url}/creators/star/?period=all")
    assert page.locator("[data-balance]").inner_text() == "90"
    assert page.locator("#leaderboard li").nth(0).get_attribute("data-username") == "viewer1"
    context.close()
    connections.close_all()


@pytest.mark.parametrize("width", [1280, 390])
def test_gifts_from_the_creator_page_reach_the_live_overlay(live_server, browser, width):
    from creators.services import creator_live_start

    GiftFactory(slug="rose", name="Rose", coins=1, sort_order=1)
    creator = make_creator("onair")
    session = creator_live_start(creator=creator)
    viewer = fund(UserFactory(), 20)
    client = Client()
    client.force_login(viewer)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value

    context = browser.new_context(viewport={"width": width, "height": 800})
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )
    page = context.new_page()
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/creators/onair/")
    expect(page.locator("[data-testid=live-badge]")).to_be_visible()
    page.click("#gift-send")
    expect(page.locator("#gift-status")).to_contain_text("Sent")
    event = GiftEvent.objects.get(sender=viewer)
    assert event.live_id == session.live_id
    context.close()
    connections.close_all()


def test_on_a_phone_send_stays_in_reach_below_a_long_gift_grid(live_server, browser):
    for i in range(16):
        GiftFactory(slug=f"g{i}", name=f"Gift {i}", coins=1, sort_order=i)
    make_creator("phone")
    viewer = fund(UserFactory(), 20)
    client = Client()
    client.force_login(viewer)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    context = browser.new_context(viewport={"width": 390, "height": 760})
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )
    page = context.new_page()
    page.goto(f"{live_server.url}/creators/phone/")
    page.locator("label[for=gift-g1]").click()  # a gift at the top of the grid
    send = page.locator("#gift-send").bounding_box()
    assert send is not None
    assert send["y"] + send["height"] <= 760  # visible without scrolling
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    context.close()
    connections.close_all()
