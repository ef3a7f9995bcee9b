"""Issue 21: what a newcomer met on the wallet's portal pages."""

import pytest


@pytest.mark.django_db
def test_limits_page_shows_saved_only_after_the_save_that_just_happened(user, client):
    client.force_login(user)
    good = client.post("/wallet/limits/", {"daily_limit": "500"}, follow=True)
    page = good.content.decode()
    assert "Your limits are saved." in page
    assert 'role="alert"' not in page

    bad = client.post("/wallet/limits/", {"daily_limit": "lots"})
    page = bad.content.decode()
    assert "must be a whole number" in page
    assert "Your limits are saved." not in page

    # A reload after the save does not repeat the flash either.
    again = client.get("/wallet/limits/").content.decode()
    assert "Your limits are saved." not in again


@pytest.mark.django_db
def test_limits_page_ignores_a_saved_flag_in_the_url(user, client):
    client.force_login(user)
    page = client.get("/wallet/limits/?saved=1").content.decode()
    assert "Your limits are saved." not in page


@pytest.mark.django_db
def test_staff_notes_stay_with_staff_and_the_owner_sees_plain_words(user, client):
    from tests.helpers import client_for
    from wallets.models import RechargeStatus
    from wallets.services import recharge_create, recharge_refund, wallet_adjust

    recharge = recharge_create(user=user, currency="USD", coins=500, payment_method="pm_card_visa")
    assert recharge.status == RechargeStatus.SUCCEEDED
    recharge_refund(
        recharge=recharge, coins=200, reason="suspected ring #42, see ticket", actor=None
    )
    wallet_adjust(user=user, coins=5, reason="goodwill after angry call", actor=None)

    client.force_login(user)
    page = client.get("/wallet/").content.decode()
    entries = client_for(user).get("/api/v1/wallet/entries/").json()["results"]
    memos = [entry["memo"] for entry in entries]

    for secret in ("suspected ring", "ticket", "angry call"):
        assert secret not in page
        assert not any(secret in memo for memo in memos)
    assert f"Refund of purchase #{recharge.pk}" in page
    assert f"Refund of purchase #{recharge.pk}" in memos
    assert "Coins from Applause" in memos


@pytest.mark.django_db
def test_an_old_receipt_states_the_balance_after_that_purchase_and_its_refunds(user, client):
    from wallets.services import recharge_create, recharge_refund, wallet_adjust

    first = recharge_create(user=user, currency="USD", coins=500, payment_method="pm_card_visa")
    recharge_create(user=user, currency="USD", coins=300, payment_method="pm_card_visa")
    wallet_adjust(user=user, coins=7, reason="goodwill", actor=None)
    recharge_refund(recharge=first, coins=200, reason="asked by phone", actor=None)

    client.force_login(user)
    page = client.get(f"/recharges/{first.pk}/receipt/").content.decode()
    assert 'data-testid="new-balance">500<' in page  # then, not today's 607
    assert 'data-testid="receipt-refund">−200 coins' in page
    assert "Refunded in all" in page


@pytest.mark.django_db
def test_self_refund_asks_for_confirmation_first(user, client):
    from wallets.models import RechargeRefund
    from wallets.services import recharge_create, wallet_get

    recharge = recharge_create(user=user, currency="GBP", coins=400, payment_method="pm_card_visa")
    client.force_login(user)
    receipt = f"/recharges/{recharge.pk}/receipt/"
    page = client.get(receipt).content.decode()
    assert 'data-testid="refund-button"' in page
    assert "refund-confirm" not in page

    # A POST without the confirmation step's answer refunds nothing and asks.
    response = client.post(f"/recharges/{recharge.pk}/refund/", {"key": "k1"})
    assert response.status_code == 302
    assert "refund=confirm" in response["Location"]
    assert not RechargeRefund.objects.exists()
    assert wallet_get(user=user).balance == 400

    page = client.get(receipt + "?refund=confirm").content.decode()
    assert 'data-testid="refund-confirm"' in page
    assert "cannot be undone" in page
    response = client.post(f"/recharges/{recharge.pk}/refund/", {"key": "k2", "confirm": "yes"})
    assert "refunded=1" in response["Location"]
    assert RechargeRefund.objects.filter(recharge=recharge).count() == 1
    assert wallet_get(user=user).balance == 0
