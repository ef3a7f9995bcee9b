"""Other apps' admin actions, run by staff roles: role checks and one audit row each."""

import re

import pytest
from django.test import override_settings

from accounts.tests.factories import UserFactory
from staff.models import AuditLog
from staff.permissions import FINANCE, SUPPORT
from staff.tests.factories import staff_user, verified_client
from wallets.models import Discrepancy, Recharge, RechargeStatus
from wallets.services import recharge_create

pytestmark = pytest.mark.django_db


def _paid(user, coins=1000) -> Recharge:
    recharge = recharge_create(
        user=user, currency="USD", coins=coins, payment_method="pm_card_visa"
    )
    assert recharge.status == RechargeStatus.SUCCEEDED
    return recharge


def _refund(client, recharge, coins=None):
    data = {
        "action": "refund_action",
        "_selected_action": [recharge.pk],
        "apply": "1",
        "reason": "customer asked",
        "idempotency_key": f"k{recharge.pk}-{coins}",
    }
    if coins:
        data["coins"] = coins
    return client.post("/admin/wallets/recharge/", data, follow=True)


def test_support_refunds_within_the_limit_and_it_is_audited(settings):
    settings.SUPPORT_REFUND_LIMIT_COINS = 500
    support = staff_user(SUPPORT)
    recharge = _paid(UserFactory(), coins=1000)
    _refund(verified_client(support), recharge, coins=300)
    recharge.refresh_from_db()
    assert recharge.coins_refunded == 300
    row = AuditLog.objects.get(action="recharge_refund")
    assert row.actor == support
    assert row.object_id == str(recharge.pk)
    assert row.before["coins_refunded"] == 0
    assert row.after["coins_refunded"] == 300
    assert row.reason == "customer asked"


def test_support_cannot_refund_above_the_limit_but_finance_can(settings):
    settings.SUPPORT_REFUND_LIMIT_COINS = 500
    recharge = _paid(UserFactory(), coins=1000)
    response = _refund(verified_client(staff_user(SUPPORT)), recharge)
    assert b"Support can refund up to 500 coins" in response.content
    recharge.refresh_from_db()
    assert recharge.coins_refunded == 0
    assert not AuditLog.objects.exists()

    finance = staff_user(FINANCE)
    _refund(verified_client(finance), recharge)
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.REFUNDED
    assert AuditLog.objects.filter(action="recharge_refund", actor=finance).count() == 1


def _stripe_links(client, url) -> list[str]:
    html = client.get(url).content.decode()
    return re.findall(
        r'<a href="([^"]+)" target="_blank" rel="noopener noreferrer">Open in Stripe</a>', html
    )


def test_recharge_and_refund_pages_link_to_the_payment_in_the_stripe_dashboard():
    finance = staff_user(FINANCE)
    client = verified_client(finance)
    recharge = _paid(UserFactory(), coins=1000)
    _refund(client, recharge, coins=300)
    refund = recharge.refunds.get()
    assert refund.stripe_id.startswith("re_")
    recharge_page = f"/admin/wallets/recharge/{recharge.pk}/change/"
    refund_page = f"/admin/wallets/rechargerefund/{refund.pk}/change/"
    pi = recharge.payment_intent
    assert pi.startswith("pi_")

    with override_settings(STRIPE_SECRET_KEY="sk_test_abc"):
        test_mode = f"https://dashboard.stripe.com/test/payments/{pi}"
        # The recharge itself, then its refund in the inline.
        assert _stripe_links(client, recharge_page) == [test_mode, test_mode]
        assert _stripe_links(client, refund_page) == [test_mode]
    with override_settings(STRIPE_SECRET_KEY="sk_live_abc"):
        live = f"https://dashboard.stripe.com/payments/{pi}"
        assert _stripe_links(client, recharge_page) == [live, live]
        assert _stripe_links(client, refund_page) == [live]
    with override_settings(
        STRIPE_SECRET_KEY="sk_live_abc", STRIPE_DASHBOARD_URL="https://stripe.example/"
    ):
        assert _stripe_links(client, refund_page) == [f"https://stripe.example/payments/{pi}"]


def test_the_stripe_link_is_escaped():
    from wallets.admin import stripe_dashboard_link

    with override_settings(STRIPE_SECRET_KEY="sk_test_abc"):
        html = stripe_dashboard_link('pi_"><script>')
    assert "<script>" not in html
    assert '"><' not in html
    assert 'href="https://dashboard.stripe.com/test/payments/pi_%22%3E%3Cscript%3E"' in html
    with override_settings(STRIPE_SECRET_KEY="sk_live_abc", STRIPE_DASHBOARD_URL='https://x/"a'):
        html = stripe_dashboard_link("pi_1")
    assert 'href="https://x/&quot;a/payments/pi_1"' in html
    assert stripe_dashboard_link(None) == "-"


def _resolve(client, discrepancy):
    return client.post(
        "/admin/wallets/discrepancy/",
        {
            "action": "resolve_action",
            "_selected_action": [discrepancy.pk],
            "apply": "1",
            "note": "checked with Stripe: fine",
        },
        follow=True,
    )


def test_finance_resolves_a_discrepancy_with_a_note_and_support_cannot():
    discrepancy = Discrepancy.objects.create(
        kind="amount_mismatch",
        object_type="payment_intent",
        object_id="pi_1",
        expected="1",
        found="2",
    )
    _resolve(verified_client(staff_user(SUPPORT)), discrepancy)
    discrepancy.refresh_from_db()
    assert discrepancy.status == "open"
    assert not AuditLog.objects.exists()

    finance = staff_user(FINANCE)
    _resolve(verified_client(finance), discrepancy)
    discrepancy.refresh_from_db()
    assert discrepancy.status == "resolved"
    assert discrepancy.resolved_by == finance
    row = AuditLog.objects.get(action="discrepancy_resolve")
    assert row.actor == finance
    assert row.reason == "checked with Stripe: fine"
    assert row.before == {"status": "open"}
    assert row.after == {"status": "resolved"}


def _awaiting_payout(settings):
    from decimal import Decimal

    from payouts.models import Payout, PayoutStatus
    from payouts.services import payout_batch_run
    from payouts.tests.factories import make_payout_creator

    settings.PAYOUT_APPROVAL_ABOVE = Decimal("10")
    creator = make_payout_creator(4000)  # USD 20: above the approval threshold
    payout_batch_run()
    payout = Payout.objects.get(creator=creator)
    assert payout.status == PayoutStatus.AWAITING_APPROVAL
    return payout


def _approve(client, payout):
    return client.post(
        "/admin/payouts/payout/",
        {"action": "approve_action", "_selected_action": [payout.pk]},
        follow=True,
    )


def test_finance_approves_a_payout_and_it_is_audited(settings):
    payout = _awaiting_payout(settings)
    finance = staff_user(FINANCE)
    _approve(verified_client(finance), payout)
    payout.refresh_from_db()
    assert payout.status == "requested"
    assert payout.approved_by == finance
    row = AuditLog.objects.get(action="payout_approve")
    assert row.actor == finance
    assert row.before == {"status": "awaiting_approval"}


def test_support_cannot_approve_a_payout_even_with_a_stray_permission(settings):
    from django.contrib.auth.models import Permission

    payout = _awaiting_payout(settings)
    support = staff_user(SUPPORT)
    _approve(verified_client(support), payout)
    # Granted by hand (a misconfiguration): the role check in the action still refuses.
    support.user_permissions.add(
        Permission.objects.get(codename="approve_payout", content_type__app_label="staff")
    )
    response = _approve(verified_client(support), payout)
    assert b"finance role" in response.content
    payout.refresh_from_db()
    assert payout.status == "awaiting_approval"
    assert payout.approved_by is None
    assert not AuditLog.objects.filter(action__startswith="payout").exists()


def test_release_now_needs_finance_and_is_audited():
    from gifts.tests.factories import make_creator

    creator = make_creator("releaser")
    data = {"action": "release_now", "_selected_action": [creator.pk]}
    assert verified_client(staff_user(SUPPORT)).post(
        "/admin/creators/creator/", data
    ).status_code in (
        200,
        302,
        403,
    )
    assert not AuditLog.objects.filter(action="earnings_release").exists()
    finance = staff_user(FINANCE)
    verified_client(finance).post("/admin/creators/creator/", data)
    row = AuditLog.objects.get(action="earnings_release")
    assert row.actor == finance
    assert row.object_id == str(creator.pk)
