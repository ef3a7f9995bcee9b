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
    from conftest import client_for
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
