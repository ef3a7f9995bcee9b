"""What a person sees on the creator dashboard and the limits page (#21, item 16)."""

import os

import pytest
from django.conf import settings
from django.test import Client

from payouts.tests.factories import make_payout_creator
from tests.helpers import launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Font sizes (px) of the running text and of the notes in the two payout cards.
CARD_FONT_SIZES = """() => {
  const cards = [...document.querySelectorAll('#payouts-title ~ .grid > .card')];
  const size = (el) => getComputedStyle(el).fontSize;
  return {
    cards: cards.length,
    text: [...new Set(cards.flatMap((c) => [...c.querySelectorAll('p:not(.help)')]).map(size))],
    notes: [...new Set(cards.flatMap((c) => [...c.querySelectorAll('p.help')]).map(size))],
  };
}"""


def _signed_in_page(browser, live_server, user, width):
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    page = context.new_page()
    page.set_default_timeout(20000)
    return page


@pytest.fixture
def browser(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.environ.get("CHROMIUM_PATH"):
        pytest.skip("CHROMIUM_PATH is not set")
    with playwright.sync_playwright() as p:
        browser = launch_chromium(p)
        yield browser
        browser.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_payout_cards_share_one_text_size_and_fit_the_screen(live_server, browser, width):
    creator = make_payout_creator(100)  # a verified method, below the minimum: a "blocked" card
    page = _signed_in_page(browser, live_server, creator.user, width)
    page.goto(f"{live_server.url}/creator/")

    sizes = page.evaluate(CARD_FONT_SIZES)
    assert sizes["cards"] == 2
    assert len(sizes["text"]) == 1, sizes  # method, blocked reason: one body size
    assert len(sizes["notes"]) == 1, sizes  # hold note and weekly-run note: one note size
    assert sizes["notes"][0] != sizes["text"][0]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("width", [1280, 390])
def test_change_my_limits_heading_sits_at_the_top_of_its_panel(live_server, browser, width):
    creator = make_payout_creator(0)
    page = _signed_in_page(browser, live_server, creator.user, width)
    page.goto(f"{live_server.url}/wallet/limits/")

    gap = page.evaluate(
        """() => {
          const form = document.querySelector('form[aria-labelledby="set-title"]');
          const heading = document.getElementById('set-title');
          const padding = parseFloat(getComputedStyle(form).paddingTop);
          return heading.getBoundingClientRect().top - form.getBoundingClientRect().top - padding;
        }"""
    )
    # The CSRF field before the heading used to push it down by a whole stack gap (20 px).
    assert abs(gap) < 2
