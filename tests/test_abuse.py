"""Rate limits, login lockout and CSRF: the abuse controls of issue 10 (item 4)."""

import uuid

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts import lockout
from accounts.api import RegisterView, TokenView
from accounts.tests.factories import UserFactory
from config.throttles import AuthIPThrottle, AuthUsernameThrottle, MoneyThrottle
from gifts.api import GiftSendView
from staff.tests.factories import staff_user
from tests.helpers import client_for
from wallets.api import RechargesView

PASSWORD = "correct horse battery staple 9"


@pytest.fixture
def tight_rates(monkeypatch):
    rates = {"auth": "3/min", "money": "3/min"}
    for cls in (AuthIPThrottle, AuthUsernameThrottle, MoneyThrottle):
        monkeypatch.setattr(cls, "THROTTLE_RATES", rates)
    return rates


def test_the_throttles_sit_on_the_abuse_prone_endpoints():
    assert AuthIPThrottle in RegisterView.throttle_classes
    view = TokenView()
    view.request = type("R", (), {"method": "POST"})()
    assert {type(t) for t in view.get_throttles()} == {AuthIPThrottle, AuthUsernameThrottle}
    assert MoneyThrottle in RechargesView.throttle_classes
    assert MoneyThrottle in GiftSendView.throttle_classes


@pytest.mark.django_db
def test_sign_up_is_rate_limited_per_address(api, tight_rates):
    statuses = []
    for i in range(5):
        response = api.post(
            "/api/v1/auth/register/",
            {
                "username": f"spam{i}-{uuid.uuid4().hex[:6]}",
                "email": f"spam{i}@example.com",
                "password": PASSWORD,
                "date_of_birth": "1990-01-01",
            },
            format="json",
        )
        statuses.append(response.status_code)
    assert statuses[:3] == [201, 201, 201]
    assert statuses[3:] == [429, 429]
    assert response.json()["error"]["code"] == "throttled"


@pytest.mark.django_db
def test_login_is_rate_limited_per_username_across_addresses(api, tight_rates):
    UserFactory(username="target", password=PASSWORD)
    statuses = [
        api.post(
            "/api/v1/auth/token/",
            {"username": "target", "password": "nope"},
            format="json",
            REMOTE_ADDR=f"10.0.0.{i}",
        ).status_code
        for i in range(5)
    ]
    assert statuses[:3] == [400, 400, 400]
    assert statuses[3:] == [429, 429]


@pytest.mark.django_db
def test_money_posts_are_rate_limited_per_user(user, tight_rates):
    api = client_for(user)
    statuses = [
        api.post(
            "/api/v1/gifts/send/",
            {"creator": "nobody", "gift": "rose"},
            format="json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        ).status_code
        for _ in range(4)
    ]
    assert 429 not in statuses[:3]
    assert statuses[3] == 429
    recharge = api.post(
        "/api/v1/recharges/",
        {"coins": 500, "currency": "USD"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert recharge.status_code == 429  # the same per-user budget for every money POST
    # Reads are not money POSTs: still answered.
    assert api.get("/api/v1/wallet/").status_code == 200


# --- Lockout ------------------------------------------------------------------------------


def _token(api, username, password, address="10.1.1.1"):
    return api.post(
        "/api/v1/auth/token/",
        {"username": username, "password": password},
        format="json",
        REMOTE_ADDR=address,
    )


@pytest.mark.django_db
def test_api_login_locks_after_repeated_failures_even_for_the_right_password(api, settings):
    settings.LOGIN_LOCKOUT_FAILURES = 3
    UserFactory(username="victim", password=PASSWORD)
    assert [_token(api, "victim", "guess").status_code for _ in range(3)] == [400] * 3
    locked = _token(api, "victim", PASSWORD)
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "account_locked"
    # Case and spaces do not dodge it.
    assert _token(api, " VICTIM ", PASSWORD).status_code == 429
    # Another address is not locked out by someone else's guesses (below the per-user limit).
    assert _token(api, "victim", PASSWORD, address="10.2.2.2").status_code == 200


@pytest.mark.django_db
def test_api_lockout_per_username_across_many_addresses(api, settings):
    settings.LOGIN_LOCKOUT_FAILURES = 2  # per address
    settings.LOGIN_LOCKOUT_USERNAME_FAILURES = 8  # per username (100 by default)
    UserFactory(username="botnet-target", password=PASSWORD)
    for i in range(8):
        assert _token(api, "botnet-target", "guess", address=f"10.9.0.{i}").status_code == 400
    assert _token(api, "botnet-target", PASSWORD, address="10.9.9.9").status_code == 429


@pytest.mark.django_db
def test_api_successful_login_resets_the_failure_count(api, settings):
    settings.LOGIN_LOCKOUT_FAILURES = 3
    UserFactory(username="forgetful", password=PASSWORD)
    for _ in range(2):
        assert _token(api, "forgetful", "guess").status_code == 400
    assert _token(api, "forgetful", PASSWORD).status_code == 200
    for _ in range(2):
        assert _token(api, "forgetful", "guess").status_code == 400
    assert _token(api, "forgetful", PASSWORD).status_code == 200


@pytest.mark.django_db
def test_lockout_ends_by_itself(api, settings):
    settings.LOGIN_LOCKOUT_FAILURES = 2
    UserFactory(username="patient", password=PASSWORD)
    for _ in range(2):
        _token(api, "patient", "guess")
    assert _token(api, "patient", PASSWORD).status_code == 429
    cache.delete(lockout._keys("patient", "10.1.1.1")["pair_lock"])  # the lock runs out
    assert _token(api, "patient", PASSWORD).status_code == 200


@pytest.mark.django_db
def test_portal_login_locks_after_repeated_failures(settings):
    settings.LOGIN_LOCKOUT_FAILURES = 3
    UserFactory(username="portaluser", password=PASSWORD)
    client = Client()
    for _ in range(3):
        response = client.post(reverse("login"), {"username": "portaluser", "password": "x"})
        assert response.status_code == 200  # the form again, with an error
    response = client.post(reverse("login"), {"username": "portaluser", "password": PASSWORD})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    # A fresh user is unaffected.
    UserFactory(username="someoneelse", password=PASSWORD)
    response = client.post(reverse("login"), {"username": "someoneelse", "password": PASSWORD})
    assert response.status_code == 302


@pytest.mark.django_db
def test_admin_login_locks_after_repeated_failures(settings):
    settings.LOGIN_LOCKOUT_FAILURES = 3
    user = staff_user()
    user.set_password(PASSWORD)
    user.save()
    client = Client()
    url = reverse("admin:login")
    for _ in range(3):
        assert client.post(url, {"username": user.username, "password": "x"}).status_code == 200
    response = client.post(url, {"username": user.username, "password": PASSWORD})
    assert response.status_code == 200  # no step 2: the password step refused it
    # Once the lock runs out, the right password leads on to the code step (a redirect).
    cache.delete(lockout._keys(user.username, "127.0.0.1")["pair_lock"])
    response = client.post(url, {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302


# --- CSRF ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_portal_forms_refuse_a_post_without_the_csrf_token():
    UserFactory(username="csrfuser", password=PASSWORD)
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": "csrfuser", "password": PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session
    response = client.post(
        reverse("signup"),
        {"username": "x", "email": "x@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert response.status_code == 403
    # With the token (taken from the form), the same login works.
    page = client.get(reverse("login"))
    token = page.cookies["csrftoken"].value
    response = client.post(
        reverse("login"),
        {"username": "csrfuser", "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302


@pytest.mark.django_db
def test_session_authenticated_api_post_needs_the_csrf_token(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(
        "/api/v1/gifts/send/",
        {"creator": "x", "gift": "y"},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert response.status_code == 403
