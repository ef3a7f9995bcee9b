"""In real Chromium: a creator sets up a tier and sees the member; a viewer joins with coins
from the creator's page and their member badge shows on the live overlay."""

import os
import uuid

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

from accounts.tests.factories import UserFactory
from gifts.services import gift_send
from gifts.tests.factories import GiftFactory, fund, make_creator
from memberships.models import Membership, Tier
from memberships.tests.factories import join, make_tier
from tests.helpers import launch_chromium
from wallets.services import wallet_get

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def browser():
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        yield browser
        browser.close()
    connections.close_all()


def signed_in_page(browser, user, base_url: str):
    client = Client()
    client.force_login(user)
    context = browser.new_context()
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": base_url,
            }
        ]
    )
    return context.new_page()


def test_a_creator_sets_up_a_tier_and_sees_its_members(live_server, browser):
    from playwright.sync_api import expect

    creator = make_creator("tiered")
    page = signed_in_page(browser, creator.user, live_server.url)
    page.goto(f"{live_server.url}/creator/")
    page.fill("#tier-new-name", "Fan club")
    page.fill("#tier-new-coins", "150")
    page.fill("#tier-new-perks", "A badge on the overlay")
    page.click("#tier-new button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Fan club")
    tier = Tier.objects.get(creator=creator)
    assert (tier.name, tier.coins_per_month) == ("Fan club", 150)
    expect(page.locator('[data-tiers="members"]')).to_have_text("0")

    join(fund(UserFactory(), 1000), creator, tier)
    page.reload()
    expect(page.locator('[data-tiers="members"]')).to_have_text("1")
    expect(page.locator('[data-tiers="monthly"]')).to_have_text("150")
    expect(page.locator(f'[data-tier-form="{tier.pk}"]')).to_contain_text("1 member")


def test_a_viewer_joins_with_coins_and_the_overlay_shows_the_member_badge(live_server, browser):
    from playwright.sync_api import expect

    creator = make_creator("streamer2")
    tier = make_tier(creator, name="Fan club", coins=100)
    rose = GiftFactory(slug="rose-live", name="Rose", coins=1)
    viewer = fund(UserFactory(username="joiner"), 500)
    page = signed_in_page(browser, viewer, live_server.url)
    page.goto(f"{live_server.url}/creators/streamer2/")
    page.click(f'[data-join="{tier.pk}"]')
    expect(page).to_have_url(f"{live_server.url}/wallet/memberships/")
    expect(page.locator('[data-status="active"]')).to_be_visible()
    assert wallet_get(user=viewer).balance == 400
    assert Membership.objects.get(member=viewer).months == 1

    overlay = browser.new_context().new_page()
    overlay.goto(f"{live_server.url}/overlay/streamer2/live1/")
    expect(overlay.locator("#overlay")).to_have_attribute("data-state", "live")
    event = gift_send(
        sender=viewer,
        creator_handle="streamer2",
        gift_slug=rose.slug,
        live_id="live1",
        client_key=str(uuid.uuid4()),
    )
    card = overlay.locator(f'.gift-card[data-combo-id="{event.pk}"]')
    expect(card).to_contain_text("joiner", timeout=5000)
    badge = card.locator('[data-badge="member"]')
    expect(badge).to_have_text("Fan club · 1 month")
