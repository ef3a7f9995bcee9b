"""End to end in headless Chromium: sign up, recharge with the test card, see the coins."""

import os
import urllib.parse
import urllib.request
import uuid

import pytest
from django.conf import settings

from tests.helpers import launch_chromium
from wallets.demo import seed_packages
from wallets.models import Recharge, RechargeStatus

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def stripe_webhook(live_server):
    """Point a localstripe webhook of our own at this live server (others may share it)."""
    hook = f"{settings.STRIPE_API_BASE.rstrip('/')}/_config/webhooks/test-{uuid.uuid4().hex}"
    url = f"{live_server.url}/api/v1/webhooks/stripe/"
    _post(hook, {"url": url, "secret": settings.STRIPE_WEBHOOK_SECRET})
    yield
    # localstripe cannot delete a webhook: narrow it to an event that never happens.
    _post(hook, {"url": url, "secret": settings.STRIPE_WEBHOOK_SECRET, "events[]": "none.never"})


def _post(url, data):
    body = urllib.parse.urlencode(data).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=5) as response:
        assert response.status == 200


@pytest.fixture
def page(live_server, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; our ORM calls here are sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.environ.get("CHROMIUM_PATH"):
        pytest.skip("CHROMIUM_PATH is not set")
    with playwright.sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(viewport={"width": 390, "height": 844})
        page = context.new_page()
        page.set_default_timeout(20000)
        yield page
        context.close()
        browser.close()


def _sign_up(page, base, username):
    page.goto(f"{base}/signup/")
    page.fill("input[name=username]", username)
    page.fill("input[name=email]", f"{username}@example.com")
    page.fill("input[name=date_of_birth]", "1990-05-17")
    password_fields = page.locator("input[type=password]")
    for i in range(password_fields.count()):
        password_fields.nth(i).fill("a-long-Secret-pass-123")
    page.click("form button[type=submit]")
    page.wait_for_url("**/recharge/**")


def _fill_card(page, number):
    """The offline card form (make run, tests): the number typed as the page prints it."""
    if page.locator("#card-number").count() == 0:
        return _fill_stripe_element(page, number.replace(" ", ""))
    page.locator("#card-number").type(number)
    page.locator("#card-expiry").type("1234")
    page.fill("#card-cvc", "123")


def _fill_stripe_element(page, number):
    # Stripe.js's Card Element (production); offline, localstripe's stand-in of it.
    card = page.locator("#card-element input")
    card.nth(0).fill(number)
    card.nth(1).fill("12")
    card.nth(2).fill("34")
    card.nth(3).fill("123")
    if card.count() > 4:
        card.nth(4).fill("10001")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("offline_form", [True, False], ids=["offline-form", "card-element"])
def test_sign_up_recharge_and_see_the_coins(
    live_server, stripe_webhook, page, settings, offline_form
):
    settings.STRIPE_OFFLINE_CARD_FORM = offline_form
    seed_packages()
    base = live_server.url
    _sign_up(page, base, f"fan{uuid.uuid4().hex[:8]}")
    page.click("label[for^=pkg-]:has-text('1,400')")
    pay = page.locator("#pay-button")
    assert pay.inner_text().strip() == "Pay $19.99"
    if offline_form:
        _fill_card(page, "4242 4242 4242 4242")  # as the page prints it
        assert page.locator("#card-number").input_value() == "4242 4242 4242 4242"
        assert page.locator("#card-expiry").input_value() == "12 / 34"
    else:
        assert page.locator("#card-number").count() == 0
        _fill_stripe_element(page, "4242424242424242")
    pay.click()
    page.wait_for_url("**/recharges/*/receipt/", timeout=20000)
    page.wait_for_selector("[data-testid=new-balance]", timeout=30000)
    assert page.locator("[data-testid=new-balance]").inner_text() == "1,470"
    assert "Total paid" in page.content()
    recharge = Recharge.objects.get()
    assert recharge.status == RechargeStatus.SUCCEEDED
    assert recharge.coins == 1470
    page.goto(f"{base}/wallet/")
    assert page.locator("[data-testid=balance]").inner_text() == "1,470"


@pytest.mark.django_db(transaction=True)
def test_declined_card_shows_an_error_and_credits_nothing(live_server, stripe_webhook, page):
    seed_packages()
    base = live_server.url
    _sign_up(page, base, f"fan{uuid.uuid4().hex[:8]}")
    page.fill("#custom-coins", "500")
    assert page.locator("#pay-button").inner_text().strip() == "Pay $7.15"
    _fill_card(page, "4000 0000 0000 0341")
    page.click("#pay-button")
    from playwright.sync_api import expect

    expect(page.locator("#card-errors")).to_contain_text("declined", ignore_case=True)
    assert "/recharge/" in page.url
    recharge = Recharge.objects.get()
    assert recharge.status == RechargeStatus.FAILED
    from wallets.models import LedgerTransaction

    assert not LedgerTransaction.objects.filter(kind="recharge").exists()
