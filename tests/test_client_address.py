"""Issue 14 item 6: one client address behind a proxy, and lockouts a stranger cannot trigger.

Throttles and lockout counters live in the real Redis of ``make test``.
"""

import logging
import uuid

import pytest
from django.core.cache import cache
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts import lockout
from accounts.client_address import client_address
from accounts.tests.factories import UserFactory
from config.throttles import AuthIPThrottle, SignupThrottle
from staff.models import AuditLog
from staff.tests.factories import staff_user

PASSWORD = "correct-horse-battery"  # the factories' password
BALANCER = "10.0.0.2"  # REMOTE_ADDR of every request that comes through the load balancer


def _request(remote="10.0.0.2", forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


# --- The helper -----------------------------------------------------------------------------


def test_without_trusted_proxies_the_header_is_ignored(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_address(_request("198.51.100.7", "203.0.113.9")) == "198.51.100.7"


def test_one_proxy_takes_the_entry_it_appended_never_the_forged_leftmost(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    # The client forged "1.2.3.4"; our balancer appended the address it saw.
    assert client_address(_request(BALANCER, "1.2.3.4, 203.0.113.9")) == "203.0.113.9"
    assert client_address(_request(BALANCER, "203.0.113.9")) == "203.0.113.9"


def test_two_proxies_take_the_second_entry_from_the_right(settings):
    settings.TRUSTED_PROXY_COUNT = 2  # a CDN, then our balancer
    forwarded = "6.6.6.6, 203.0.113.9, 192.0.2.50"  # forged, client (by the CDN), CDN
    assert client_address(_request(BALANCER, forwarded)) == "203.0.113.9"


def test_a_header_shorter_than_the_proxy_chain_is_not_trusted(settings):
    settings.TRUSTED_PROXY_COUNT = 2
    # Fewer entries than proxies: the request skipped our chain; only REMOTE_ADDR is ours.
    assert client_address(_request("198.51.100.7", "6.6.6.6")) == "198.51.100.7"
    assert client_address(_request("198.51.100.7")) == "198.51.100.7"


def test_garbage_ports_and_ipv6(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    assert client_address(_request(BALANCER, "not-an-address")) == BALANCER
    assert client_address(_request(BALANCER, "203.0.113.9:5123")) == "203.0.113.9"
    assert client_address(_request(BALANCER, "[2001:DB8::1]:443")) == "2001:db8::1"
    assert client_address(_request(BALANCER, "x, 2001:db8::2")) == "2001:db8::2"


# --- Throttles ------------------------------------------------------------------------------


@pytest.fixture
def tight_signups(monkeypatch):
    rates = {"auth": "100/min", "signup": "3/hour"}
    for cls in (AuthIPThrottle, SignupThrottle):
        monkeypatch.setattr(cls, "THROTTLE_RATES", rates)


def _sign_up(api, **extra):
    name = f"u{uuid.uuid4().hex[:10]}"
    return api.post(
        "/api/v1/auth/register/",
        {
            "username": name,
            "email": f"{name}@example.com",
            "password": PASSWORD,
            "date_of_birth": "1990-01-01",
        },
        format="json",
        **extra,
    )


@pytest.mark.django_db
def test_a_forged_forwarded_header_does_not_dodge_the_throttle(api, settings, tight_signups):
    settings.TRUSTED_PROXY_COUNT = 0
    statuses = [
        _sign_up(api, REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"10.9.{i}.1").status_code
        for i in range(5)
    ]
    assert statuses == [201, 201, 201, 429, 429]


@pytest.mark.django_db
def test_behind_the_balancer_each_client_has_its_own_budget(api, settings, tight_signups):
    settings.TRUSTED_PROXY_COUNT = 1
    first = [
        _sign_up(api, REMOTE_ADDR=BALANCER, HTTP_X_FORWARDED_FOR=f"6.6.6.{i}, 203.0.113.9")
        for i in range(4)
    ]
    assert [r.status_code for r in first] == [201, 201, 201, 429]
    assert first[-1].json()["error"]["code"] == "throttled"
    assert int(first[-1]["Retry-After"]) > 0
    # Another client behind the same balancer is not held back by the first one.
    other = _sign_up(api, REMOTE_ADDR=BALANCER, HTTP_X_FORWARDED_FOR="203.0.113.10")
    assert other.status_code == 201


# --- Lockout --------------------------------------------------------------------------------


def _token(api, username, password, client_ip, remote=BALANCER):
    return api.post(
        "/api/v1/auth/token/",
        {"username": username, "password": password},
        format="json",
        REMOTE_ADDR=remote,
        HTTP_X_FORWARDED_FOR=client_ip,
    )


@pytest.mark.django_db
def test_behind_the_balancer_a_stranger_does_not_lock_the_owner_out(api, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.LOGIN_LOCKOUT_FAILURES = 3
    UserFactory(username="creator1", password=PASSWORD)
    for _ in range(3):
        assert _token(api, "creator1", "guess", "203.0.113.66").status_code == 400
    assert _token(api, "creator1", PASSWORD, "203.0.113.66").status_code == 429
    # The stranger forging the owner's address on the left changes nothing.
    assert _token(api, "creator1", PASSWORD, "198.51.100.1, 203.0.113.66").status_code == 429
    # The owner, through the same balancer from their own address, gets in.
    assert _token(api, "creator1", PASSWORD, "198.51.100.1").status_code == 200


@pytest.mark.django_db
def test_a_stranger_with_many_addresses_does_not_lock_the_owner_out(api, settings):
    settings.LOGIN_LOCKOUT_FAILURES = 1
    UserFactory(username="creator2", password=PASSWORD)
    # The owner signed in from home before (so even the per-username rate limit spares it).
    assert _token(api, "creator2", PASSWORD, "-", remote="198.51.100.1").status_code == 200
    for i in range(5):  # five addresses, each up to its own lock
        assert _token(api, "creator2", "guess", "-", remote=f"203.0.113.{i}").status_code == 400
        assert _token(api, "creator2", "guess", "-", remote=f"203.0.113.{i}").status_code == 429
    assert _token(api, "creator2", PASSWORD, "-", remote="198.51.100.1").status_code == 200
    # A first-time address too: no lock for the username this far below its own limit.
    assert _token(api, "creator2", PASSWORD, "-", remote="198.51.100.2").status_code == 200


@pytest.mark.django_db
def test_the_per_username_lock_comes_far_above_and_spares_known_addresses(api, settings):
    settings.LOGIN_LOCKOUT_FAILURES = 2
    settings.LOGIN_LOCKOUT_USERNAME_FAILURES = 6
    UserFactory(username="creator3", password=PASSWORD)
    # The owner signed in from home before.
    assert _token(api, "creator3", PASSWORD, "-", remote="198.51.100.1").status_code == 200
    for i in range(6):  # a botnet: one guess per address
        assert _token(api, "creator3", "guess", "-", remote=f"203.0.113.{i}").status_code == 400
    locked = _token(api, "creator3", PASSWORD, "-", remote="192.0.2.99")
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "account_locked"
    assert _token(api, "creator3", PASSWORD, "-", remote="198.51.100.1").status_code == 200


@pytest.mark.django_db
def test_each_further_failure_doubles_the_lock(api, settings):
    settings.LOGIN_LOCKOUT_FAILURES = 2
    settings.LOGIN_LOCKOUT_FIRST_SECONDS = 60
    settings.LOGIN_LOCKOUT_SECONDS = 200
    UserFactory(username="creator4", password=PASSWORD)
    lock_key = lockout._keys("creator4", "203.0.113.5")["pair_lock"]
    waits = []
    for _ in range(2):
        assert _token(api, "creator4", "guess", "-", remote="203.0.113.5").status_code == 400
    for _ in range(3):
        locked = _token(api, "creator4", PASSWORD, "-", remote="203.0.113.5")
        assert locked.status_code == 429
        waits.append(int(locked["Retry-After"]))
        cache.delete(lock_key)  # this lock runs out; the count is remembered
        assert _token(api, "creator4", "guess", "-", remote="203.0.113.5").status_code == 400
    assert [58 <= waits[0] <= 60, 118 <= waits[1] <= 120, 198 <= waits[2] <= 200] == [True] * 3
    # Tries while locked are refused unread and do not lengthen it.
    assert lockout.pair_lock_seconds(2) == 60
    # A successful login (once the lock ran out) starts the pair afresh.
    cache.delete(lock_key)
    assert _token(api, "creator4", PASSWORD, "-", remote="203.0.113.5").status_code == 200
    assert _token(api, "creator4", "guess", "-", remote="203.0.113.5").status_code == 400
    assert _token(api, "creator4", PASSWORD, "-", remote="203.0.113.5").status_code == 200


@pytest.mark.django_db
def test_portal_login_behind_the_balancer_locks_the_stranger_only(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.LOGIN_LOCKOUT_FAILURES = 3
    UserFactory(username="creator5", password=PASSWORD)
    stranger = Client(REMOTE_ADDR=BALANCER, HTTP_X_FORWARDED_FOR="203.0.113.66")
    for _ in range(3):
        stranger.post(reverse("login"), {"username": "creator5", "password": "x"})
    stranger.post(reverse("login"), {"username": "creator5", "password": PASSWORD})
    assert "_auth_user_id" not in stranger.session
    owner = Client(REMOTE_ADDR=BALANCER, HTTP_X_FORWARDED_FOR="198.51.100.1")
    response = owner.post(reverse("login"), {"username": "creator5", "password": PASSWORD})
    assert response.status_code == 302
    assert "_auth_user_id" in owner.session


@pytest.mark.django_db
def test_admin_lock_audit_row_and_logs_carry_the_client_address(settings, caplog):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.LOGIN_LOCKOUT_FAILURES = 2
    member = staff_user()
    client = Client(REMOTE_ADDR=BALANCER, HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.77")
    with caplog.at_level(logging.INFO):
        for _ in range(2):
            client.post(reverse("admin:login"), {"username": member.username, "password": "x"})
    row = AuditLog.objects.get(action="admin_login_locked", object_id=str(member.pk))
    assert row.ip == "203.0.113.77"
    assert any(
        "client=203.0.113.77" in r.getMessage()
        for r in caplog.records
        if r.name == "applause.request"
    )
    assert any("address=203.0.113.77" in r.getMessage() for r in caplog.records)
    # The owner's own address is not locked: the password leads on to the code step.
    owner = Client(REMOTE_ADDR=BALANCER, HTTP_X_FORWARDED_FOR="198.51.100.1")
    response = owner.post(
        reverse("admin:login"), {"username": member.username, "password": PASSWORD}
    )
    assert response.status_code == 302
