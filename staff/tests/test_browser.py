"""The staff console in headless Chromium: 2FA sign-in, money actions, role limits."""

import os

import pytest

from accounts.tests.factories import PASSWORD, UserFactory
from staff.models import AdjustmentRequest, AuditLog
from staff.permissions import FINANCE, SUPPORT
from staff.tests.factories import current_code, device_of, staff_user
from tests.helpers import launch_chromium
from wallets.models import Discrepancy
from wallets.services import wallet_adjust, wallet_get

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser(live_server, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; our ORM calls here are sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.environ.get("CHROMIUM_PATH"):
        pytest.skip("CHROMIUM_PATH is not set")
    with playwright.sync_playwright() as p:
        browser = launch_chromium(p)
        yield browser
        browser.close()


def _page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20000)
    return page


def _sign_in(page, base, user):
    page.goto(f"{base}/admin/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/otp/**")
    # The password alone opened nothing: this is the code step.
    assert page.locator("#id_otp_token").is_visible()
    page.fill("#id_otp_token", current_code(device_of(user)))
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    assert page.locator(".staff-dashboard").is_visible()


def _csrf_post(page, url, form):
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    return page.request.post(url, form=form, headers={"X-CSRFToken": token}, max_redirects=0)


@pytest.fixture
def dana(db):
    user = UserFactory(username="dana", email="dana@example.com")
    wallet_adjust(user=user, coins=500, reason="seed", actor=None, idempotency_key="seed:dana")
    return user


def _awaiting_payout(settings):
    from decimal import Decimal

    from payouts.models import Payout
    from payouts.services import payout_batch_run
    from payouts.tests.factories import make_payout_creator

    settings.PAYOUT_APPROVAL_ABOVE = Decimal("10")
    creator = make_payout_creator(4000)  # USD 20: waits for approval
    payout_batch_run()
    return Payout.objects.get(creator=creator)


def test_finance_signs_in_with_totp_adjusts_approves_and_resolves(
    browser, live_server, dana, settings
):
    base = live_server.url
    finance = staff_user(FINANCE)
    payout = _awaiting_payout(settings)
    assert payout.status == "awaiting_approval"
    discrepancy = Discrepancy.objects.create(
        kind="amount_mismatch",
        object_type="payment_intent",
        object_id="pi_browser",
        expected="USD 9.99",
        found="USD 99.00",
    )
    page = _page(browser)
    _sign_in(page, base, finance)

    # Wallet console: find dana by email, credit with a reason.
    page.goto(f"{base}/admin/staff/wallet/?q=dana%40example.com")
    page.click("#result_list a:has-text('dana')")
    assert "500 coins" in page.inner_text("#wallet-balance")
    page.fill("#adjust-coins", "250")
    page.fill("#adjust-reason", "goodwill for a failed stream")
    page.click("#adjust-form input[type=submit]")
    page.wait_for_selector(".messagelist .success")
    assert "750 coins" in page.inner_text("#wallet-balance")
    assert page.locator("#ledger-entries").inner_text().count("goodwill for a failed stream") == 1
    assert wallet_get(user=dana).balance == 750

    # Payouts: approve the one waiting.
    page.goto(f"{base}/admin/payouts/payout/?status__exact=awaiting_approval")
    page.check(f"input[name=_selected_action][value='{payout.pk}']")
    page.select_option("select[name=action]", "approve_action")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist .success")
    payout.refresh_from_db()
    assert payout.status == "requested"
    assert payout.approved_by == finance

    # Reconciliation queue: resolve with a note.
    page.goto(f"{base}/admin/wallets/discrepancy/?status__exact=open")
    page.check(f"input[name=_selected_action][value='{discrepancy.pk}']")
    page.select_option("select[name=action]", "resolve_action")
    page.click("button[name=index]")
    page.fill("textarea[name=note]", "Stripe shows 9.99: our row was edited by hand")
    page.click("input[type=submit][value=Resolve]")
    page.wait_for_selector(".messagelist .success")
    discrepancy.refresh_from_db()
    assert discrepancy.status == "resolved"
    assert discrepancy.resolved_by == finance

    actions = set(AuditLog.objects.filter(actor=finance).values_list("action", flat=True))
    assert {"admin_login", "wallet_credit", "payout_approve", "discrepancy_resolve"} <= actions


def test_the_dashboard_fits_a_phone_screen(browser, live_server):
    page = browser.new_context(viewport={"width": 390, "height": 900}).new_page()
    page.set_default_timeout(20000)
    _sign_in(page, live_server.url, staff_user(FINANCE))
    # The charts used to keep a 420 px minimum column and push the page sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator(".staff-chart").first.bounding_box()["width"] <= 390


def test_support_cannot_adjust_or_approve(browser, live_server, dana, settings):
    base = live_server.url
    payout = _awaiting_payout(settings)
    maker = staff_user(FINANCE)
    support = staff_user(SUPPORT)
    request = AdjustmentRequest.objects.create(
        user=dana, coins=50_000, reason="promo", requested_by=maker
    )
    page = _page(browser)
    _sign_in(page, base, support)

    wallet = wallet_get(user=dana)
    page.goto(f"{base}/admin/staff/wallet/{wallet.pk}/change/")
    assert page.locator("#adjust-form").count() == 0
    assert page.locator("#freeze-form").count() == 1  # support may freeze
    response = _csrf_post(
        page,
        f"{base}/admin/staff/wallet/{wallet.pk}/adjust/",
        {"coins": "100", "reason": "sneaky", "nonce": "0" * 32},
    )
    assert response.status == 403

    page.goto(f"{base}/admin/staff/adjustmentrequest/{request.pk}/change/")
    assert "Only finance can approve" in page.inner_text("#content")
    assert page.locator("#approve-adjustment-form").count() == 0
    response = _csrf_post(page, f"{base}/admin/staff/adjustmentrequest/{request.pk}/approve/", {})
    assert response.status == 403

    # Payouts: the approve action is not offered, and a crafted POST approves nothing.
    page.goto(f"{base}/admin/payouts/payout/")
    assert page.locator("select[name=action] option[value=approve_action]").count() == 0
    _csrf_post(
        page,
        f"{base}/admin/payouts/payout/",
        {"action": "approve_action", "_selected_action": str(payout.pk)},
    )
    payout.refresh_from_db()
    assert payout.status == "awaiting_approval"

    request.refresh_from_db()
    assert request.status == "pending"
    assert wallet_get(user=dana).balance == 500
    assert not AuditLog.objects.filter(actor=support).exclude(action="admin_login").exists()
