"""Issue 14 item 3: card testing through POST /recharges/ (real localstripe, real Redis).

localstripe declines ``pm_card_chargeCustomerFail`` (card 4000000000000341) at confirm and
gives every card PaymentMethod a fingerprint (sha1 of the number, 16 hex digits), the same
for every PaymentMethod made from one number, like Stripe's.
"""

import hashlib
import logging
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from accounts.roles import SUPPORT
from accounts.tests.factories import UserFactory
from config.throttles import MoneyThrottle, RechargeThrottle, SignupThrottle
from gifts.api import GiftSendView
from staff.tests.factories import staff_user, verified_client
from tests.helpers import client_for, idem
from wallets import stripe_gateway as gateway
from wallets.api import RechargesView
from wallets.models import Recharge, RechargeStatus
from wallets.services import wallet_get

DECLINED = "pm_card_chargeCustomerFail"
DECLINED_NUMBER = "4000000000000341"
DECLINED_FINGERPRINT = hashlib.sha1(DECLINED_NUMBER.encode()).hexdigest()[:16]  # noqa: S324


@pytest.fixture(autouse=True)
def _two_declines_an_hour(settings):
    settings.RECHARGE_DECLINES_MAX = 2
    settings.RECHARGE_DECLINE_WINDOW_SECONDS = 3600


def _buy(api, payment_method=DECLINED, address="198.51.100.1", currency="USD", **extra):
    body = {"coins": 500, "currency": currency}
    if payment_method:
        body["payment_method"] = payment_method
    return api.post(
        "/api/v1/recharges/", body, format="json", REMOTE_ADDR=address, **idem(), **extra
    )


def _new_card_method(number: str) -> str:
    """A fresh PaymentMethod for a card number, as a card tester makes one per try."""
    method = gateway.client().v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    return method.id


@pytest.mark.django_db
@pytest.mark.parametrize("currency", ["USD", "EUR", "GBP"])
def test_a_decline_is_generic_for_the_buyer_and_kept_for_staff(currency, caplog):
    user = UserFactory()
    with caplog.at_level(logging.WARNING, logger="wallets.services.declines"):
        response = _buy(client_for(user), currency=currency)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "failed"
    assert body["failure_code"] == "card_declined"
    assert body["failure_message"] == "Your card was declined."
    recharge = Recharge.objects.get(pk=body["id"])
    assert recharge.status == RechargeStatus.FAILED
    assert str(recharge.price.currency) == currency
    assert recharge.decline_reason.startswith("card_declined")  # Stripe's code, for staff
    assert recharge.card_fingerprint == DECLINED_FINGERPRINT
    assert wallet_get(user=user).balance == 0
    line = next(r.getMessage() for r in caplog.records if "card declined" in r.getMessage())
    assert f"recharge={recharge.pk}" in line
    assert "address=198.51.100.1" in line
    assert f"card={DECLINED_FINGERPRINT}" in line
    # The detail endpoint says the same to the buyer, never Stripe's reason.
    detail = client_for(user).get(f"/api/v1/recharges/{recharge.pk}/").json()
    assert detail["failure_code"] == "card_declined"
    assert "decline_reason" not in detail
    assert "card_fingerprint" not in detail


@pytest.mark.django_db
def test_staff_see_the_stripe_reason_in_the_admin():
    response = _buy(client_for(UserFactory()))
    recharge = Recharge.objects.get(pk=response.json()["id"])
    page = verified_client(staff_user(SUPPORT)).get(
        reverse("admin:wallets_recharge_change", args=[recharge.pk])
    )
    assert page.status_code == 200
    assert recharge.decline_reason in page.content.decode()
    assert DECLINED_FINGERPRINT in page.content.decode()


@pytest.mark.django_db
def test_declines_are_limited_per_user(settings):
    user = UserFactory()
    api = client_for(user)
    # Two declines from two addresses: only the user's own count reaches the limit.
    assert _buy(api, address="198.51.100.1").json()["failure_code"] == "card_declined"
    assert _buy(api, address="198.51.100.2").json()["failure_code"] == "card_declined"
    made = Recharge.objects.filter(user=user).count()
    for payment_method in (DECLINED, "pm_card_visa", None):  # any card, even Stripe.js
        refused = _buy(api, payment_method=payment_method, address="198.51.100.3")
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["code"] == "too_many_declines"
        assert set(error) == {"code", "message", "fields"}
        assert 3500 <= int(refused["Retry-After"]) <= 3600
    assert Recharge.objects.filter(user=user).count() == made  # no new PaymentIntent
    # Someone else, elsewhere, buys as usual.
    other = _buy(client_for(UserFactory()), payment_method="pm_card_visa", address="192.0.2.9")
    assert other.status_code == 201
    assert other.json()["status"] == "succeeded"


@pytest.mark.django_db
def test_declines_are_limited_per_client_address_across_accounts(settings):
    settings.TRUSTED_PROXY_COUNT = 1  # behind the load balancer: the forwarded address counts
    balancer = {"HTTP_X_FORWARDED_FOR": "203.0.113.50"}
    for _ in range(2):
        declined = _buy(client_for(UserFactory()), address="10.0.0.2", **balancer)
        assert declined.json()["failure_code"] == "card_declined"
    fresh_account = client_for(UserFactory())
    refused = _buy(fresh_account, payment_method="pm_card_visa", address="10.0.0.2", **balancer)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_declines"
    # A forged address on the left does not reset it.
    forged = {"HTTP_X_FORWARDED_FOR": "1.2.3.4, 203.0.113.50"}
    assert _buy(fresh_account, address="10.0.0.2", **forged).status_code == 429
    # Another client behind the same balancer is not affected.
    other = {"HTTP_X_FORWARDED_FOR": "203.0.113.51"}
    ok = _buy(fresh_account, payment_method="pm_card_visa", address="10.0.0.2", **other)
    assert ok.status_code == 201


@pytest.mark.django_db
def test_declines_are_limited_per_card_across_accounts_and_addresses():
    for i in range(2):  # a new PaymentMethod, account and address each time: one card
        declined = _buy(
            client_for(UserFactory()),
            payment_method=_new_card_method(DECLINED_NUMBER),
            address=f"203.0.113.{i}",
        )
        assert declined.json()["failure_code"] == "card_declined"
    refused = _buy(
        client_for(UserFactory()),
        payment_method=_new_card_method(DECLINED_NUMBER),
        address="203.0.113.9",
    )
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_declines"
    # Another card, by that same fresh account and address, still goes through.
    buyer = client_for(UserFactory())
    ok = _buy(buyer, payment_method=_new_card_method("4242424242424242"), address="203.0.113.9")
    assert ok.status_code == 201
    assert ok.json()["status"] == "succeeded"


@pytest.mark.django_db
def test_a_replayed_decline_counts_once():
    api = client_for(UserFactory())
    key = {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}
    body = {"coins": 500, "currency": "EUR", "payment_method": DECLINED}
    first = api.post("/api/v1/recharges/", body, format="json", **key)
    again = api.post("/api/v1/recharges/", body, format="json", **key)
    assert first.json() == again.json()
    assert first.json()["failure_code"] == "card_declined"
    # The replay was not a second decline: one more try is still allowed.
    assert _buy(api, address="127.0.0.1").json()["failure_code"] == "card_declined"
    assert _buy(api, address="127.0.0.1").status_code == 429


@pytest.mark.django_db
def test_an_unknown_payment_method_is_a_400_and_no_decline(user_api):
    response = _buy(user_api, payment_method="pm_does_not_exist")
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["payment_method"]
    assert Recharge.objects.count() == 0


# --- Throttles ------------------------------------------------------------------------------


def _per_second(rate: str) -> float:
    count, period = rate.split("/")
    return int(count) / {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]


def test_buying_coins_has_a_tighter_throttle_than_gifts():
    assert RechargeThrottle in RechargesView.throttle_classes
    assert RechargeThrottle not in GiftSendView.throttle_classes
    assert MoneyThrottle in GiftSendView.throttle_classes
    rates = RechargeThrottle.THROTTLE_RATES
    assert _per_second(rates["recharge"]) * 100 < _per_second(rates["money"])


@pytest.mark.django_db
def test_the_purchase_throttle_refuses_before_the_gift_one(monkeypatch):
    rates = {"money": "100/min", "recharge": "2/hour"}
    for cls in (MoneyThrottle, RechargeThrottle):
        monkeypatch.setattr(cls, "THROTTLE_RATES", rates)
    api = client_for(UserFactory())
    assert [_buy(api, payment_method=None).status_code for _ in range(2)] == [201, 201]
    refused = _buy(api, payment_method=None)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert int(refused["Retry-After"]) > 60
    gift = api.post("/api/v1/gifts/send/", {"creator": "x", "gift": "y"}, format="json", **idem())
    assert gift.status_code != 429


@pytest.mark.django_db
def test_sign_up_is_throttled_per_address_on_the_portal_and_the_api(monkeypatch):
    monkeypatch.setattr(SignupThrottle, "THROTTLE_RATES", {"signup": "2/hour"})

    def portal(address):
        name = f"p{uuid.uuid4().hex[:10]}"
        return Client(REMOTE_ADDR=address).post(
            reverse("signup"),
            {
                "username": name,
                "email": f"{name}@example.com",
                "password": "correct-horse-battery-9",
                "date_of_birth": "1990-01-01",
            },
        )

    assert portal("203.0.113.7").status_code == 302
    assert portal("203.0.113.7").status_code == 302
    refused = portal("203.0.113.7")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "Too many sign-ups" in refused.content.decode()
    name = f"a{uuid.uuid4().hex[:10]}"
    api_signup = Client(REMOTE_ADDR="203.0.113.7").post(
        "/api/v1/auth/register/",
        {
            "username": name,
            "email": f"{name}@example.com",
            "password": "correct-horse-battery-9",
            "date_of_birth": "1990-01-01",
        },
        content_type="application/json",
    )
    assert api_signup.status_code == 429  # one budget per address for both
    assert portal("203.0.113.8").status_code == 302
