"""Goals in real Chromium (issue #19): the creator page's progress bar and the split shown
before paying, and the overlay's bar moving with a gift through the live feed."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import UserFactory
from gifts.goals import goal_create
from gifts.models import GiftEvent
from gifts.tests.factories import GiftFactory, fund, make_creator
from gifts.tests.test_browser import browser  # noqa: F401 (the fixture)
from wallets.services import wallet_get

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_gift_toward_a_goal_moves_the_bars_on_the_page_and_the_overlay(live_server, browser):  # noqa: F811
    from playwright.sync_api import expect

    from creators.services import creator_live_start

    GiftFactory(slug="lion", name="Lion", coins=700, sort_order=1)
    creator = make_creator("onair")
    session = creator_live_start(creator=creator)
    goal = goal_create(
        creator=creator,
        actor=creator.user,
        title="24-hour stream",
        target_coins=1400,
        deadline=timezone.now() + timedelta(days=1),
        live_id=session.live_id,
        all_or_nothing=True,
    )
    viewer = fund(UserFactory(), 1000)
    client = Client()
    client.force_login(viewer)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    context = browser.new_context(viewport={"width": 390, "height": 900})
    context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_server.url}]
    )

    overlay = context.new_page()
    overlay.goto(f"{live_server.url}/overlay/onair/{session.live_id}/")
    bar = overlay.locator(f"#overlay-goals [data-goal-id='{goal.pk}']")
    expect(bar).to_contain_text("24-hour stream")
    expect(bar).to_contain_text("0 / 1,400 coins")
    expect(bar.locator(".goal-aon")).to_have_text("All or nothing")

    page = context.new_page()
    page.goto(f"{live_server.url}/creators/onair/")
    on_page = page.locator(f".goal-list [data-goal-id='{goal.pk}']")
    expect(on_page).to_contain_text("0 / 1,400 coins")
    # The split before paying, from the quote: 700 coins → 700 diamonds × $0.005.
    expect(page.locator("#gift-split")).to_contain_text("The creator receives ≈ $3.50 of this")
    page.select_option("#gift-goal", str(goal.pk))
    page.click("#gift-send")
    expect(page.locator("#gift-status")).to_contain_text("The creator receives ≈ $3.50 of this")
    expect(on_page).to_contain_text("700 / 1,400 coins")
    assert on_page.locator("progress").get_attribute("max") == "1400"

    # The overlay's bar follows through the live feed's goal event.
    expect(bar).to_contain_text("700 / 1,400 coins")
    event = GiftEvent.objects.get(sender=viewer)
    assert (event.goal_id, event.live_id) == (goal.pk, session.live_id)
    assert wallet_get(user=viewer).balance == 300
    context.close()
    connections.close_all()
