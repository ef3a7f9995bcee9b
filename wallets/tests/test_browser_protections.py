"""Viewer protections in headless Chromium: the cooling-off dialog, spending limits, the
purchase history and the receipt's self-refund button (double-clicked)."""

import re
import uuid

import pytest
from django.core.management import call_command
from django.db import connections

from wallets import stripe_gateway as gateway
from wallets.demo import seed_packages
from wallets.models import Account, AccountKind, Recharge, RechargeRefund, RechargeStatus
from wallets.tests.test_browser import _fill_card, _sign_up, page, stripe_webhook  # noqa: F401


def stripe_refunds(recharge) -> list:
    assert recharge.payment_intent
    return gateway.refunds_for_payment_intent(recharge.payment_intent)


pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _buy_custom(page, coins, number="4242424242424242"):  # noqa: F811
    page.goto(page.url.split("/recharge")[0] + "/recharge/")
    page.fill("#custom-coins", str(coins))
    _fill_card(page, number)
    page.click("#pay-button")


@pytest.mark.django_db(transaction=True)
def test_cooling_off_limits_history_and_self_refund(live_server, stripe_webhook, page):  # noqa: F811
    from playwright.sync_api import expect

    seed_packages()
    base = live_server.url
    username = f"fan{uuid.uuid4().hex[:8]}"
    _sign_up(page, base, username)
    assert (
        "Spent coins are not refundable" in page.locator("[data-testid=refund-policy]").inner_text()
    )

    # A large purchase asks "are you sure?"; cancelling charges nothing.
    _buy_custom(page, 6000)
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("6,000 coins")
    page.click("[data-testid=confirm-cancel]")
    expect(page.locator("#pay-status")).to_contain_text("cancelled")
    assert not Recharge.objects.exists()
    page.click("#pay-button")
    page.click("[data-testid=confirm-yes]")
    page.wait_for_url("**/recharges/*/receipt/")
    page.wait_for_selector("[data-testid=new-balance]")
    assert page.locator("[data-testid=new-balance]").inner_text() == "6,000"

    # Self refund from the receipt; a double click refunds once.
    recharge = Recharge.objects.get()
    page.locator("[data-testid=refund-button]").click()
    page.locator("[data-testid=refund-confirm]").dblclick()
    expect(page.locator("[data-testid=refund-done]")).to_contain_text("6,000 coins were removed")
    assert RechargeRefund.objects.count() == 1
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.REFUNDED
    assert len(stripe_refunds(recharge)) == 1
    assert Account.objects.get(kind=AccountKind.WALLET, user=recharge.user).balance == 0
    expect(page.locator("[data-testid=refund-button]")).to_have_count(0)

    # Spending limits: lowering is immediate, raising waits 24 hours.
    page.goto(f"{base}/wallet/limits/")
    page.fill("#daily_limit", "1000")
    page.click("text=Save limits")
    expect(page.locator("[data-testid=daily-limit]")).to_have_text("1,000 coins")
    page.fill("#daily_limit", "5000")
    page.click("text=Save limits")
    expect(page.locator("[data-testid=daily-limit]")).to_have_text("1,000 coins")
    expect(page.locator("[data-testid=daily-pending]")).to_contain_text("5,000 coins")

    # Today's 6,000 (refunded) still counts as bought: the limit refuses more.
    page.goto(f"{base}/recharge/")
    page.click("label[for^=pkg-]:has-text('350')")
    _fill_card(page, "4242424242424242")
    page.click("#pay-button")
    expect(page.locator("#card-errors")).to_contain_text("daily limit of 1,000 coins")
    assert Recharge.objects.count() == 1

    # The purchase history shows the month with its totals.
    page.goto(f"{base}/wallet/purchases/")
    total = page.locator("[data-testid=month-total]").first.inner_text()
    assert re.search(r"0 coins", total)
    assert "6,000 coins refunded" in total
    call_command("verify_ledger")
    connections.close_all()
