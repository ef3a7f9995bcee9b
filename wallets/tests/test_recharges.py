import threading
import time

import pytest
from django.db import connection
from djmoney.money import Money

from accounts.tests.factories import MinorFactory, UserFactory
from tests.helpers import client_for, idem
from wallets import stripe_gateway as gateway
from wallets.ledger_checks import run_checks
from wallets.models import (
    Account,
    AccountKind,
    LedgerTransaction,
    Recharge,
    RechargeStatus,
    StripeCustomer,
    StripeEvent,
)
from wallets.services import (
    recharge_create,
    wallet_freeze,
    wallet_get,
)
from wallets.tests.factories import (
    confirm_at_stripe,
    event_payload,
    intent_dict,
    packages,
    post_event,
    sign,
)


def failures():
    return [(name, problems) for name, problems in run_checks() if problems]


def balance(user) -> int:
    return Account.objects.get(kind=AccountKind.WALLET, user=user).balance


# --- Units ----------------------------------------------------------------------------------


def test_minor_units_follow_the_currency_exponent():
    assert gateway.to_minor(Money("4.99", "USD")) == 499
    assert gateway.to_minor(Money("500", "JPY")) == 500
    assert gateway.from_minor(1999, "gbp") == Money("19.99", "GBP")
    assert gateway.from_minor(500, "JPY") == Money(500, "JPY")


# --- Packages -------------------------------------------------------------------------------


def test_coin_packages_are_priced_per_currency(api, db):
    packages()
    usd = api.get("/api/v1/coin-packages/?currency=USD").json()["results"]
    eur = api.get("/api/v1/coin-packages/?currency=EUR").json()["results"]
    assert [p["coins"] for p in usd] == [70, 350, 700, 1400, 3500, 7000]
    assert usd[0]["price"] == {"amount": "0.99", "currency": "USD"}
    assert eur[-1]["price"]["currency"] == "EUR"
    assert sum(p["best_value"] for p in usd) == 1
    assert api.get("/api/v1/coin-packages/?currency=XXX").status_code == 400


def test_seeding_packages_is_idempotent(db):
    packages()
    packages()
    assert Recharge.objects.count() == 0
    from wallets.models import CoinPackage, CoinPackagePrice

    assert CoinPackage.objects.count() == 6
    assert CoinPackagePrice.objects.count() == 18


# --- Creating recharges ---------------------------------------------------------------------


def test_retried_post_with_the_same_key_makes_one_payment_intent(user, user_api):
    package = packages()[1]
    headers = idem()
    body = {"package": package.pk, "currency": "EUR"}
    first = user_api.post("/api/v1/recharges/", body, format="json", **headers)
    again = user_api.post("/api/v1/recharges/", body, format="json", **headers)
    assert first.status_code == 201, first.json()
    assert again.status_code == 201
    assert again.json()["payment_intent"] == first.json()["payment_intent"]
    assert Recharge.objects.filter(user=user).count() == 1
    data = first.json()
    assert data["status"] == "pending"
    assert data["coins"] == 350
    assert data["price"] == {"amount": "4.99", "currency": "EUR"}
    assert data["client_secret"].startswith(data["payment_intent"])
    intent = gateway.payment_intent_retrieve(data["payment_intent"])
    assert intent.amount == 499
    assert intent.currency == "eur"
    # One Stripe customer per user, reused.
    user_api.post("/api/v1/recharges/", {"coins": 500, "currency": "USD"}, format="json", **idem())
    assert StripeCustomer.objects.filter(user=user).count() == 1
    assert len({r.payment_intent for r in Recharge.objects.filter(user=user)}) == 2


@pytest.mark.parametrize(
    "body",
    [
        {"package": 999999, "currency": "USD"},
        {"coins": -500, "currency": "USD"},
        {"coins": 0, "currency": "USD"},
        {"coins": 99, "currency": "USD"},
        {"coins": 100_001, "currency": "USD"},
        {"coins": 10**30, "currency": "USD"},
        {"coins": "500", "currency": "USD"},
        {"coins": 500.5, "currency": "USD"},
        {"coins": True, "currency": "USD"},
        {"package": "abc", "currency": "USD"},
        {"coins": 500, "currency": "JPY"},
        {"coins": 500, "currency": "usdollars"},
        {"coins": 500},
        {"currency": "USD"},
        {"coins": 500, "package": 1, "currency": "USD"},
        {"coins": 500, "currency": "USD", "payment_method": "pm_does_not_exist"},
    ],
)
def test_bad_input_is_a_4xx_and_writes_nothing(user, user_api, body):
    packages()
    response = user_api.post("/api/v1/recharges/", body, format="json", **idem())
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "validation_error"
    assert Recharge.objects.count() == 0
    assert LedgerTransaction.objects.count() == 0


def test_custom_amount_is_priced_from_the_unit_price(user_api, db):
    response = user_api.post(
        "/api/v1/recharges/", {"coins": 2500, "currency": "USD"}, format="json", **idem()
    )
    assert response.status_code == 201
    assert response.json()["price"] == {"amount": "35.75", "currency": "USD"}


def test_minors_cannot_buy(db):
    minor = MinorFactory()
    response = client_for(minor).post(
        "/api/v1/recharges/", {"coins": 500, "currency": "USD"}, format="json", **idem()
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "age_restricted"
    assert Recharge.objects.count() == 0


def test_frozen_wallet_cannot_buy(user, user_api):
    wallet_freeze(user=user, reason="fraud review")
    response = user_api.post(
        "/api/v1/recharges/", {"coins": 500, "currency": "USD"}, format="json", **idem()
    )
    assert response.status_code == 423
    assert response.json()["error"]["code"] == "wallet_frozen"


def test_daily_purchase_limit(user, user_api, settings):
    settings.DAILY_PURCHASE_LIMIT = 1000
    ok = user_api.post(
        "/api/v1/recharges/", {"coins": 800, "currency": "USD"}, format="json", **idem()
    )
    over = user_api.post(
        "/api/v1/recharges/", {"coins": 300, "currency": "USD"}, format="json", **idem()
    )
    assert ok.status_code == 201
    assert over.status_code == 403
    assert over.json()["error"]["code"] == "limit_exceeded"
    assert Recharge.objects.count() == 1


def test_payment_method_confirms_at_once_and_credits(user, user_api):
    package = packages()[2]
    response = user_api.post(
        "/api/v1/recharges/",
        {"package": package.pk, "currency": "USD", "payment_method": "pm_card_visa"},
        format="json",
        **idem(),
    )
    assert response.status_code == 201
    assert response.json()["status"] == "succeeded"
    assert balance(user) == 735
    assert user_api.get("/api/v1/wallet/").json() == {"coins": 735, "frozen": False}
    assert failures() == []


def test_declined_card_fails_and_credits_nothing(user, user_api):
    response = user_api.post(
        "/api/v1/recharges/",
        {"coins": 500, "currency": "USD", "payment_method": "pm_card_chargeCustomerFail"},
        format="json",
        **idem(),
    )
    assert response.status_code == 201
    assert response.json()["status"] == "failed"
    assert "declined" in response.json()["failure_message"].lower()
    assert wallet_get(user=user).balance == 0
    assert not LedgerTransaction.objects.filter(kind="recharge").exists()


def test_another_users_recharge_is_404(user, user_api, db):
    other = UserFactory()
    recharge = recharge_create(user=other, currency="USD", coins=500)
    assert user_api.get(f"/api/v1/recharges/{recharge.pk}/").status_code == 404
    assert client_for(other).get(f"/api/v1/recharges/{recharge.pk}/").status_code == 200
    from django.test import Client

    browser = Client()
    browser.force_login(user)
    assert browser.get(f"/recharges/{recharge.pk}/receipt/").status_code == 404


# --- Webhooks -------------------------------------------------------------------------------


def _paid_pending_recharge(user, coins=700) -> Recharge:
    recharge = recharge_create(user=user, currency="USD", coins=coins)
    intent = confirm_at_stripe(recharge.payment_intent)
    assert intent.status == "succeeded"
    return recharge


def test_duplicate_and_reordered_webhooks_credit_once(user, api):
    recharge = _paid_pending_recharge(user)
    obj = intent_dict(recharge.payment_intent)
    failed_first = event_payload("payment_intent.payment_failed", obj)
    succeeded = event_payload("payment_intent.succeeded", obj)
    # The failure report arrives first: the PaymentIntent is re-read and found succeeded.
    assert post_event(api, failed_first).status_code == 200
    for _ in range(3):
        assert post_event(api, succeeded).status_code == 200
    assert post_event(api, event_payload("payment_intent.succeeded", obj)).status_code == 200
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.SUCCEEDED
    assert balance(user) == 700
    assert LedgerTransaction.objects.filter(idempotency_key=recharge.ledger_key).count() == 1
    assert StripeEvent.objects.count() == 3
    assert failures() == []


def test_payment_failed_webhook_marks_failed(user, api):
    recharge = recharge_create(user=user, currency="USD", coins=500)
    confirm_at_stripe(recharge.payment_intent, "pm_card_chargeCustomerFail")
    obj = intent_dict(recharge.payment_intent)
    assert post_event(api, event_payload("payment_intent.payment_failed", obj)).status_code == 200
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.FAILED
    assert wallet_get(user=user).balance == 0


@pytest.mark.parametrize(
    "signature",
    [
        lambda p: sign(p, secret="whsec_forged"),
        lambda p: sign(p, timestamp=int(time.time()) - 3600),
        lambda p: "",
        lambda p: "t=1,v1=deadbeef",
    ],
)
def test_forged_or_stale_webhooks_are_refused(user, api, signature):
    recharge = _paid_pending_recharge(user)
    payload = event_payload("payment_intent.succeeded", intent_dict(recharge.payment_intent))
    response = post_event(api, payload, signature(payload))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert StripeEvent.objects.count() == 0
    recharge.refresh_from_db()
    assert recharge.status == RechargeStatus.PENDING
    assert wallet_get(user=user).balance == 0


def test_unknown_payment_webhook_is_harmless(api, db):
    obj = {"id": "pi_not_ours", "object": "payment_intent", "amount": 100, "currency": "usd"}
    response = post_event(api, event_payload("payment_intent.succeeded", obj))
    assert response.status_code == 200
    assert LedgerTransaction.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_duplicate_webhooks_credit_once(api):
    user = UserFactory()
    recharge = _paid_pending_recharge(user, coins=1000)
    obj = intent_dict(recharge.payment_intent)
    same_event = event_payload("payment_intent.succeeded", obj)
    payloads = [same_event] * 10 + [
        event_payload("payment_intent.succeeded", obj) for _ in range(10)
    ]
    statuses: list[int] = []
    barrier = threading.Barrier(len(payloads))

    def deliver(payload):
        from rest_framework.test import APIClient

        try:
            barrier.wait()
            statuses.append(post_event(APIClient(), payload).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * len(payloads)
    assert balance(user) == 1000
    assert LedgerTransaction.objects.filter(kind="recharge").count() == 1
    assert StripeEvent.objects.count() == 11
    assert failures() == []
